//! The bot's people and their chats: users as `/start` registers them (the
//! bot they started, their language), and the destinations they link.

use kuryer_actors::model::DestinationKind;
use serde::Serialize;

use super::error::OpContext;
use super::subscriptions::parse_kind;
use super::{Store, StoreError};

/// A user as the bot needs them on every command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotUser {
    /// `users.id`.
    pub id: i64,
    /// Telegram's user id.
    pub telegram_id: i64,
    /// `uz`, `ru` or `en`.
    pub language: String,
    /// The bot they started (`None`: the first bot).
    pub bot_id: Option<i64>,
    /// Created by this call.
    pub created: bool,
}

/// A destination as `/list`, the routing keyboard and the API show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationView {
    /// `destinations.id`.
    pub id: i64,
    /// The Telegram chat.
    pub chat_id: i64,
    /// Its kind.
    pub kind: DestinationKind,
    /// Its title (groups and channels).
    pub title: Option<String>,
    /// False once the bot was removed or blocked there.
    pub active: bool,
}

/// What `/link` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    /// The chat is now a destination of the user (`destinations.id`, and
    /// whether it was new or made active again).
    Linked {
        /// `destinations.id`.
        destination_id: i64,
        /// True when newly created.
        created: bool,
    },
    /// Another user owns that chat as a destination.
    OwnedByOther,
}

/// A destination lost because our bot left or was removed from its chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostDestination {
    /// `destinations.id`.
    pub destination_id: i64,
    /// The owner's Telegram id.
    pub owner_telegram_id: i64,
    /// The owner's language.
    pub owner_language: String,
    /// The bot serving the owner's private chat.
    pub owner_bot_id: Option<i64>,
    /// The chat's title.
    pub title: Option<String>,
}

impl Store {
    /// Registers a user at `/start` (language from Telegram's
    /// `language_code`, only when new: a language chosen with `/lang` stays),
    /// remembers the bot they started when they had none, and makes their
    /// private chat a destination served by that bot.
    pub async fn start_user(
        &self,
        telegram_id: i64,
        language: &str,
        bot_id: i64,
    ) -> Result<BotUser, StoreError> {
        const OP: &str = "register user";
        let mut c = self.conn(OP).await?;
        let tx = c.transaction().await.op(OP)?;
        let row = tx
            .query_one(
                "INSERT INTO users (telegram_id, language, bot_id) VALUES ($1, $2, $3)
                 ON CONFLICT (telegram_id) DO UPDATE
                    SET bot_id = COALESCE(users.bot_id, EXCLUDED.bot_id), is_blocked = false,
                        updated_at = now()
                 RETURNING id, language, bot_id, (xmax = 0)",
                &[&telegram_id, &language, &bot_id],
            )
            .await
            .op(OP)?;
        let user = BotUser {
            id: row.get(0),
            telegram_id,
            language: row.get(1),
            bot_id: row.get(2),
            created: row.get(3),
        };
        tx.execute(
            "INSERT INTO destinations (chat_id, kind, owner_user_id, bot_id)
             VALUES ($1, 'private', $2, $3)
             ON CONFLICT (chat_id, message_thread_id) DO UPDATE
                SET bot_id = COALESCE(destinations.bot_id, EXCLUDED.bot_id),
                    is_active = true, deactivated_reason = NULL, updated_at = now()",
            &[&telegram_id, &user.id, &user.bot_id],
        )
        .await
        .op(OP)?;
        tx.commit().await.op(OP)?;
        Ok(user)
    }

    /// The user, or `None` when they never started the bot nor were
    /// subscribed through the API.
    pub async fn bot_user(&self, telegram_id: i64) -> Result<Option<BotUser>, StoreError> {
        const OP: &str = "read user";
        let c = self.conn(OP).await?;
        let stmt = c
            .prepare_cached("SELECT id, language, bot_id FROM users WHERE telegram_id = $1")
            .await
            .op(OP)?;
        Ok(c.query_opt(&stmt, &[&telegram_id])
            .await
            .op(OP)?
            .map(|r| BotUser {
                id: r.get(0),
                telegram_id,
                language: r.get(1),
                bot_id: r.get(2),
                created: false,
            }))
    }

    /// Sets a user's language (`uz`, `ru` or `en`).
    pub async fn set_language(&self, telegram_id: i64, language: &str) -> Result<(), StoreError> {
        const OP: &str = "set language";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE users SET language = $2, updated_at = now() WHERE telegram_id = $1",
            &[&telegram_id, &language],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Makes a group or channel a destination of `owner` (who must exist),
    /// served by `bot_id`. A chat another user linked stays theirs, unless
    /// it was taken from them for no longer being its admin
    /// ([`Store::drop_destination_owner`]).
    pub async fn link_destination(
        &self,
        owner_telegram_id: i64,
        chat_id: i64,
        kind: DestinationKind,
        title: Option<&str>,
        bot_id: i64,
    ) -> Result<LinkOutcome, StoreError> {
        self.link_destination_topic(owner_telegram_id, (chat_id, 0), kind, title, bot_id)
            .await
    }

    /// [`Store::link_destination`] of one topic of a forum (`thread` > 0),
    /// or of the whole chat (`thread` = 0).
    pub async fn link_destination_topic(
        &self,
        owner_telegram_id: i64,
        (chat_id, thread): (i64, i32),
        kind: DestinationKind,
        title: Option<&str>,
        bot_id: i64,
    ) -> Result<LinkOutcome, StoreError> {
        const OP: &str = "link destination";
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                "WITH owner AS (SELECT id FROM users WHERE telegram_id = $1)
                 INSERT INTO destinations (chat_id, kind, owner_user_id, bot_id, title,
                                           message_thread_id)
                 SELECT $2, $3, owner.id, $4, $5, $6 FROM owner
                 ON CONFLICT (chat_id, message_thread_id) DO UPDATE
                    SET is_active = true, deactivated_reason = NULL, bot_id = EXCLUDED.bot_id,
                        title = COALESCE(EXCLUDED.title, destinations.title), kind = EXCLUDED.kind,
                        owner_user_id = EXCLUDED.owner_user_id, updated_at = now()
                  WHERE destinations.owner_user_id = EXCLUDED.owner_user_id
                     OR (NOT destinations.is_active
                         AND destinations.deactivated_reason = 'owner_not_admin')
                 RETURNING id, (xmax = 0)",
                &[
                    &owner_telegram_id,
                    &chat_id,
                    &kind.as_str(),
                    &bot_id,
                    &title,
                    &thread,
                ],
            )
            .await
            .op(OP)?;
        Ok(match row {
            Some(r) => LinkOutcome::Linked {
                destination_id: r.get(0),
                created: r.get(1),
            },
            None => LinkOutcome::OwnedByOther,
        })
    }

    /// Deactivates the destination in `chat_id` (our bot left or was removed
    /// there); `None` when it was no active destination.
    pub async fn lose_destination_chat(
        &self,
        chat_id: i64,
        reason: &str,
    ) -> Result<Option<LostDestination>, StoreError> {
        const OP: &str = "deactivate destination";
        let c = self.conn(OP).await?;
        // A forum may be linked as several topics: all go; the first is
        // reported (the others leave the registry on their first failed send).
        let row = c
            .query_opt(
                "WITH lost AS (
                   UPDATE destinations d SET is_active = false, deactivated_reason = $2,
                          updated_at = now()
                     FROM users u
                    WHERE d.chat_id = $1 AND d.is_active AND d.kind <> 'private'
                      AND u.id = d.owner_user_id
                    RETURNING d.id, u.telegram_id, u.language, u.bot_id, d.title,
                              d.message_thread_id)
                 SELECT id, telegram_id, language, bot_id, title FROM lost
                  ORDER BY message_thread_id LIMIT 1",
                &[&chat_id, &reason],
            )
            .await
            .op(OP)?;
        Ok(row.map(|r| LostDestination {
            destination_id: r.get(0),
            owner_telegram_id: r.get(1),
            owner_language: r.get(2),
            owner_bot_id: r.get(3),
            title: r.get(4),
        }))
    }

    /// The destinations a user owns, their private chat first.
    pub async fn destinations_of(
        &self,
        owner_telegram_id: i64,
    ) -> Result<Vec<DestinationView>, StoreError> {
        const OP: &str = "list destinations";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT d.id, d.chat_id, d.kind, d.title, d.is_active
                   FROM destinations d JOIN users u ON u.id = d.owner_user_id
                  WHERE u.telegram_id = $1
                  ORDER BY d.kind <> 'private', d.id",
                &[&owner_telegram_id],
            )
            .await
            .op(OP)?;
        rows.iter()
            .map(|r| {
                Ok(DestinationView {
                    id: r.get(0),
                    chat_id: r.get(1),
                    kind: parse_kind(OP, r.get(2))?,
                    title: r.get(3),
                    active: r.get(4),
                })
            })
            .collect()
    }
}
