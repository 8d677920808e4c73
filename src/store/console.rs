//! What the status page reads: channels a page at a time (searchable, each
//! with its owner, last post and lag) and the bots' `getUpdates` leases.
//! Each query is bounded: a page of at most [`CHANNEL_PAGE_MAX`] rows, its
//! last post and subscribers read per row through an index.

use chrono::{DateTime, Utc};

use super::error::OpContext;
use super::{Store, StoreError};

/// The most channels one page shows.
pub const CHANNEL_PAGE_MAX: i64 = 200;

/// A channel as the status page shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConsoleChannel {
    pub id: i64,
    pub telegram_id: Option<i64>,
    pub username: Option<String>,
    pub title: Option<String>,
    /// `pending`, `active`, `invalid`, `gone`.
    pub status: String,
    /// Why it cannot be read now, when it cannot.
    pub unreadable: Option<String>,
    pub bot_is_admin: bool,
    /// The instance holding its lease (several instances).
    pub lease_owner: Option<String>,
    /// Its high-water mark.
    pub last_message_id: i64,
    /// When kuryer detected its last recorded post.
    pub last_post_at: Option<DateTime<Utc>>,
    /// Seconds between the last post's publication and its detection.
    pub lag_s: Option<f64>,
    /// Active subscriptions.
    pub subscribers: i64,
}

/// One page of channels and how many match in all.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelPage {
    pub channels: Vec<ConsoleChannel>,
    pub total: i64,
}

/// A bot's `getUpdates` lease.
#[derive(Debug, Clone, PartialEq)]
pub struct BotLease {
    pub bot_id: i64,
    pub owner: Option<String>,
    pub taken_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Channels whose name, title or Telegram id contains `search` (all
    /// when empty), by id, page `page` (from 0) of `per_page`.
    pub async fn console_channels(
        &self,
        search: &str,
        page: i64,
        per_page: i64,
    ) -> Result<ChannelPage, StoreError> {
        const OP: &str = "list channels for the status page";
        let per_page = per_page.clamp(1, CHANNEL_PAGE_MAX);
        let offset = page.max(0) * per_page;
        let pattern = format!(
            "%{}%",
            search
                .trim()
                .trim_start_matches('@')
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        const FILTER: &str = "($1 = '%%' OR c.username ILIKE $1 OR c.title ILIKE $1
                                OR c.telegram_id::text LIKE $1)";
        let c = self.read_conn(OP).await?;
        let total: i64 = c
            .query_one(
                &format!("SELECT count(*) FROM channels c WHERE {FILTER}"),
                &[&pattern],
            )
            .await
            .op(OP)?
            .get(0);
        let rows = c
            .query(
                &format!(
                    "SELECT c.id, c.telegram_id, c.username, c.title, c.status, c.unreadable,
                            c.bot_is_admin, c.lease_owner, c.last_message_id,
                            p.detected_at,
                            extract(epoch FROM p.detected_at - p.published_at)::float8,
                            (SELECT count(*) FROM subscriptions s
                              WHERE s.channel_id = c.id AND s.is_active)
                       FROM channels c
                       LEFT JOIN LATERAL (
                            SELECT detected_at, published_at FROM posts
                             WHERE channel_id = c.id ORDER BY detected_at DESC LIMIT 1
                       ) p ON true
                      WHERE {FILTER}
                      ORDER BY c.id LIMIT $2 OFFSET $3"
                ),
                &[&pattern, &per_page, &offset],
            )
            .await
            .op(OP)?;
        let channels = rows
            .iter()
            .map(|r| ConsoleChannel {
                id: r.get(0),
                telegram_id: r.get(1),
                username: r.get(2),
                title: r.get(3),
                status: r.get(4),
                unreadable: r.get(5),
                bot_is_admin: r.get(6),
                lease_owner: r.get(7),
                last_message_id: r.get(8),
                last_post_at: r.get(9),
                lag_s: r.get(10),
                subscribers: r.get(11),
            })
            .collect();
        Ok(ChannelPage { channels, total })
    }

    /// Every bot's `getUpdates` lease (one row a configured bot).
    pub async fn console_bot_leases(&self) -> Result<Vec<BotLease>, StoreError> {
        const OP: &str = "list bot leases";
        let c = self.read_conn(OP).await?;
        let rows = c
            .query(
                "SELECT bot_id, owner, taken_at FROM bot_leases ORDER BY bot_id LIMIT 100",
                &[],
            )
            .await
            .op(OP)?;
        Ok(rows
            .iter()
            .map(|r| BotLease {
                bot_id: r.get(0),
                owner: r.get(1),
                taken_at: r.get(2),
            })
            .collect())
    }
}
