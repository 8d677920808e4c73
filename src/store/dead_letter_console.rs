//! Dead letters read back (migration 0016): listed, shown, claimed for a
//! replay, settled as replayed or returned with the new reason, discarded.
//! Every list is bounded and reads through `dead_letters_state_idx` or the
//! primary key.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::error::OpContext;
use super::{Store, StoreError};

/// The most rows one list answers.
pub const DEAD_LETTER_PAGE_MAX: i64 = 500;

/// A dead letter without its raw bytes (what lists show).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeadLetter {
    pub id: i64,
    /// `update` or `post`.
    pub kind: String,
    /// `waiting`, `replaying`, `replayed` or `discarded`.
    pub state: String,
    /// `channels.id`, when known.
    pub channel_id: Option<i64>,
    /// Telegram's chat id, when known.
    pub chat_id: Option<i64>,
    pub message_id: Option<i64>,
    pub update_id: Option<i64>,
    /// The latest reason it failed.
    pub reason: String,
    /// Reasons of earlier failures (the first, then each failed replay).
    pub earlier_reasons: Vec<String>,
    /// Replays tried so far.
    pub replays: i32,
    /// Bytes of the kept update or post.
    pub raw_bytes: i32,
    pub created_at: DateTime<Utc>,
    /// When it was replayed or discarded.
    pub settled_at: Option<DateTime<Utc>>,
}

/// What a list asks for; `None` is any.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterQuery {
    pub kind: Option<String>,
    pub state: Option<String>,
    /// Kept at or after this moment.
    pub since: Option<DateTime<Utc>>,
    /// Only ids below this one (the next page of a newest-first list).
    pub before_id: Option<i64>,
    /// At most this many (capped at [`DEAD_LETTER_PAGE_MAX`]).
    pub limit: i64,
}

/// The answer to a claim, replay or discard of one id.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Now `replaying` (a claim) or `discarded`: its kind and raw bytes.
    Taken { kind: String, raw: Vec<u8> },
    /// No such id.
    NotFound,
    /// It is not waiting: its state.
    NotWaiting(String),
}

const COLUMNS: &str = "id, kind, state, channel_id, chat_id, message_id, update_id, reason,
    earlier_reasons, replays, coalesce(octet_length(raw), 0), created_at, settled_at";

fn dead_letter(r: &Row) -> DeadLetter {
    DeadLetter {
        id: r.get(0),
        kind: r.get(1),
        state: r.get(2),
        channel_id: r.get(3),
        chat_id: r.get(4),
        message_id: r.get(5),
        update_id: r.get(6),
        reason: r.get(7),
        earlier_reasons: r.get(8),
        replays: r.get(9),
        raw_bytes: r.get(10),
        created_at: r.get(11),
        settled_at: r.get(12),
    }
}

impl Store {
    /// Dead letters, newest first, as `q` asks.
    pub async fn dead_letter_list(
        &self,
        q: &DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        const OP: &str = "list dead letters";
        let limit = q.limit.clamp(1, DEAD_LETTER_PAGE_MAX);
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM dead_letters
                      WHERE ($1::text IS NULL OR kind = $1)
                        AND ($2::text IS NULL OR state = $2)
                        AND ($3::timestamptz IS NULL OR created_at >= $3)
                        AND ($4::bigint IS NULL OR id < $4)
                      ORDER BY id DESC LIMIT $5"
                ),
                &[&q.kind, &q.state, &q.since, &q.before_id, &limit],
            )
            .await
            .op(OP)?;
        Ok(rows.iter().map(dead_letter).collect())
    }

    /// One dead letter and its raw bytes.
    pub async fn dead_letter_get(
        &self,
        id: i64,
    ) -> Result<Option<(DeadLetter, Vec<u8>)>, StoreError> {
        const OP: &str = "read a dead letter";
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                &format!("SELECT {COLUMNS}, coalesce(raw, '') FROM dead_letters WHERE id = $1"),
                &[&id],
            )
            .await
            .op(OP)?;
        Ok(row.map(|r| (dead_letter(&r), r.get(13))))
    }

    /// Claims a waiting dead letter for a replay: `replaying`, one more
    /// replay counted. Only one of two callers racing gets it.
    pub async fn dead_letter_claim(&self, id: i64) -> Result<Claim, StoreError> {
        self.take(
            "claim a dead letter",
            "UPDATE dead_letters SET state = 'replaying', replays = replays + 1
              WHERE id = $1 AND state = 'waiting' RETURNING kind, coalesce(raw, '')",
            id,
        )
        .await
    }

    /// Lets a waiting dead letter go: `discarded`, kept for the record.
    pub async fn dead_letter_discard(&self, id: i64) -> Result<Claim, StoreError> {
        self.take(
            "discard a dead letter",
            "UPDATE dead_letters SET state = 'discarded', settled_at = now()
              WHERE id = $1 AND state = 'waiting' RETURNING kind, coalesce(raw, '')",
            id,
        )
        .await
    }

    async fn take(&self, op: &'static str, sql: &str, id: i64) -> Result<Claim, StoreError> {
        let c = self.conn(op).await?;
        if let Some(r) = c.query_opt(sql, &[&id]).await.op(op)? {
            return Ok(Claim::Taken {
                kind: r.get(0),
                raw: r.get(1),
            });
        }
        let state = c
            .query_opt("SELECT state FROM dead_letters WHERE id = $1", &[&id])
            .await
            .op(op)?;
        Ok(state.map_or(Claim::NotFound, |r| Claim::NotWaiting(r.get(0))))
    }

    /// A claimed dead letter went through: `replayed`.
    pub async fn dead_letter_replayed(&self, id: i64) -> Result<(), StoreError> {
        const OP: &str = "settle a replayed dead letter";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE dead_letters SET state = 'replayed', settled_at = now() WHERE id = $1",
            &[&id],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// A replay failed again: back to `waiting`, `reason` the new one, the
    /// old one appended to `earlier_reasons`. Answers every reason, oldest
    /// first.
    pub async fn dead_letter_failed_again(
        &self,
        id: i64,
        reason: &str,
    ) -> Result<Vec<String>, StoreError> {
        const OP: &str = "return a dead letter";
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                "UPDATE dead_letters
                    SET state = 'waiting', earlier_reasons = earlier_reasons || reason,
                        reason = $2, settled_at = NULL
                  WHERE id = $1 RETURNING earlier_reasons || reason",
                &[&id, &reason],
            )
            .await
            .op(OP)?;
        Ok(row.map(|r| r.get(0)).unwrap_or_default())
    }

    /// Ids of waiting dead letters of `kind`, oldest first, at most `limit`.
    pub async fn dead_letter_waiting_ids(
        &self,
        kind: &str,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        const OP: &str = "list waiting dead letters";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT id FROM dead_letters WHERE state = 'waiting' AND kind = $1
                  ORDER BY id LIMIT $2",
                &[&kind, &limit.clamp(1, DEAD_LETTER_PAGE_MAX)],
            )
            .await
            .op(OP)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Dead letters by (kind, state): one index-only pass.
    pub async fn dead_letter_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        const OP: &str = "count dead letters by state";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT kind, state, count(*) FROM dead_letters GROUP BY kind, state ORDER BY 1, 2",
                &[],
            )
            .await
            .op(OP)?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// Takes up to `limit` updates whose replay was asked (`replaying`),
    /// marking them `replayed` in the same statement: one update loop gets
    /// each. The loop returns one that fails again with
    /// [`Store::dead_letter_failed_again`].
    pub async fn dead_letter_take_update_replays(
        &self,
        limit: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        const OP: &str = "take updates to replay";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "UPDATE dead_letters SET state = 'replayed', settled_at = now()
                  WHERE id IN (SELECT id FROM dead_letters
                                WHERE state = 'replaying' AND kind = 'update'
                                ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
                  RETURNING id, coalesce(raw, '')",
                &[&limit],
            )
            .await
            .op(OP)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
