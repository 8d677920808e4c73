//! Delivery records (`forwarded_messages`): writing outcomes in batches,
//! counting the sent ones. The deliveries still owed are read in `pending.rs`.

use kuryer_actors::model::DeliveryRecord;

use super::error::OpContext;
use super::{Store, StoreError};

impl Store {
    /// Deliveries recorded as sent (demo and benchmark summaries).
    pub async fn sent_deliveries(&self) -> Result<u64, StoreError> {
        const OP: &str = "count sent deliveries";
        let n: i64 = self
            .conn(OP)
            .await?
            .query_one(
                "SELECT count(*) FROM forwarded_messages WHERE status = 'sent'",
                &[],
            )
            .await
            .op(OP)?
            .get(0);
        Ok(n.max(0) as u64)
    }

    /// Writes a batch of delivery outcomes in one statement, one round trip.
    ///
    /// The rows travel as one array a column and `unnest` turns them back
    /// into rows on the server, so the cost is one parse and one plan for the
    /// whole batch. A row for a subscription + message that already has one
    /// updates it unless it is already `sent` (a sent row is final), so a
    /// retried batch never duplicates. Returns how many rows were written.
    ///
    /// One bad row (say, a status the CHECK rejects) fails the whole
    /// statement; the caller (the DbWriter) then splits the batch to find it,
    /// so the other rows are not lost.
    pub async fn insert_forwarded(&self, rows: &[DeliveryRecord]) -> Result<u64, StoreError> {
        const OP: &str = "insert forwarded rows";
        if rows.is_empty() {
            return Ok(0);
        }
        let n = rows.len();
        let mut subscription_id = Vec::with_capacity(n);
        let mut channel_id = Vec::with_capacity(n);
        let mut source_message_id = Vec::with_capacity(n);
        let mut post_day = Vec::with_capacity(n);
        let mut destination_chat_id = Vec::with_capacity(n);
        let mut sent_message_id = Vec::with_capacity(n);
        let mut status = Vec::with_capacity(n);
        let mut error = Vec::with_capacity(n);
        // An array of arrays does not `unnest` row by row: each row's ids
        // travel as one array literal, cast back on the server.
        let mut sent_ids: Vec<Option<String>> = Vec::with_capacity(n);
        let mut backfill = Vec::with_capacity(n);
        for r in rows {
            sent_ids.push(r.sent_message_ids.as_ref().map(|ids| {
                let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
                format!("{{{}}}", ids.join(","))
            }));
            backfill.push(r.backfill);
            subscription_id.push(r.subscription_id);
            channel_id.push(r.channel_id);
            source_message_id.push(r.source_message_id);
            post_day.push(r.post_day);
            destination_chat_id.push(r.destination_chat_id);
            sent_message_id.push(r.sent_message_id);
            status.push(r.status.as_str());
            error.push(r.error.as_deref());
        }
        let c = self.conn(OP).await?;
        let stmt = c
            .prepare_cached(
                "INSERT INTO forwarded_messages AS f
                    (subscription_id, channel_id, source_message_id, post_day,
                     destination_chat_id, sent_message_id, status, error,
                     sent_message_ids, backfill)
                 SELECT a, b, c, d, e, g, h, i, j::bigint[], k
                   FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::date[],
                               $5::bigint[], $6::bigint[], $7::text[], $8::text[],
                               $9::text[], $10::boolean[]) AS u(a, b, c, d, e, g, h, i, j, k)
                 ON CONFLICT ON CONSTRAINT forwarded_messages_pkey DO UPDATE
                    SET sent_message_id = EXCLUDED.sent_message_id,
                        sent_message_ids = EXCLUDED.sent_message_ids,
                        status = EXCLUDED.status,
                        error = EXCLUDED.error,
                        destination_chat_id = EXCLUDED.destination_chat_id,
                        created_at = now()
                  WHERE f.status <> 'sent'
                    -- Batches are written concurrently, so an older
                    -- 'ambiguous' row can land after the final outcome of
                    -- the same delivery: it never replaces one.
                    AND NOT (EXCLUDED.status = 'ambiguous' AND f.status <> 'ambiguous')",
            )
            .await
            .op(OP)?;
        c.execute(
            &stmt,
            &[
                &subscription_id,
                &channel_id,
                &source_message_id,
                &post_day,
                &destination_chat_id,
                &sent_message_id,
                &status,
                &error,
                &sent_ids,
                &backfill,
            ],
        )
        .await
        .op(OP)
    }
}
