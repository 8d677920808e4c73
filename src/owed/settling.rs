//! The store as the actors' `Persistence` port, settling in the pipeline's
//! [`InFlight`] set every delivery whose outcome row is committed, and
//! (several instances) recording posts under their channel's lease.

use kuryer_actors::telemetry::events::telegram_id;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use kuryer_actors::in_flight::InFlight;
use kuryer_actors::model::{DeliveryRecord, Post};
use kuryer_actors::ports::{PersistError, Persistence};

use crate::instance::Ownership;
use crate::store::Store;

/// The store as the actors' persistence, settling in [`InFlight`] every
/// delivery whose outcome row is committed.
pub struct SettlingStore {
    store: Store,
    in_flight: Arc<InFlight>,
    /// Several instances: posts are recorded under the channel's lease.
    ownership: Option<Arc<Ownership>>,
}

impl SettlingStore {
    /// `store`, settling in `in_flight`.
    pub fn new(store: Store, in_flight: Arc<InFlight>) -> Self {
        Self {
            store,
            in_flight,
            ownership: None,
        }
    }

    /// Records posts only under the lease `ownership` holds for their channel.
    pub fn with_ownership(mut self, ownership: Option<Arc<Ownership>>) -> Self {
        self.ownership = ownership;
        self
    }
}

impl Persistence for SettlingStore {
    fn record_post(&self, post: Arc<Post>) -> BoxFuture<'static, Result<bool, PersistError>> {
        let Some(ownership) = &self.ownership else {
            return Persistence::record_post(&self.store, post);
        };
        // Fenced: the statement checks the generation. Without a lease
        // surely held, nothing is tried: "not recorded", nothing published.
        let generation = ownership.channel_generation(post.channel_id);
        let store = self.store.clone();
        Box::pin(async move {
            let Some(generation) = generation else {
                tracing::debug!(
                    channel_id = telegram_id(post.channel_id),
                    channel_key = post.channel_id,
                    "Not recording a post: this instance does not surely hold the channel's lease."
                );
                return Ok(false);
            };
            store
                .record_post_fenced(&crate::store::new_post(&post), Some(generation))
                .await
                .map(|id| id.is_some())
                .map_err(|e| PersistError {
                    retriable: e.is_retriable(),
                    message: e.to_string(),
                })
        })
    }

    fn high_water_mark(&self, channel_id: i64) -> BoxFuture<'static, Result<i64, PersistError>> {
        Persistence::high_water_mark(&self.store, channel_id)
    }

    fn dead_letter_post(
        &self,
        post: Arc<Post>,
        reason: String,
    ) -> BoxFuture<'static, Result<(), PersistError>> {
        let Some(ownership) = &self.ownership else {
            return Persistence::dead_letter_post(&self.store, post, reason);
        };
        // Fenced like `record_post`: a stale owner moves no mark past a post.
        let generation = ownership.channel_generation(post.channel_id);
        let store = self.store.clone();
        Box::pin(async move {
            let Some(generation) = generation else {
                return Ok(());
            };
            let kept = store
                .dead_letter_post_fenced(&post, &reason, Some(generation))
                .await
                .map_err(|e| PersistError {
                    retriable: e.is_retriable(),
                    message: e.to_string(),
                })?;
            if !kept {
                tracing::info!(
                    channel_id = telegram_id(post.channel_id),
                    channel_key = post.channel_id,
                    "Not keeping a dead post: the channel's lease was taken by another instance."
                );
            }
            Ok(())
        })
    }

    fn write_deliveries(
        &self,
        rows: Vec<DeliveryRecord>,
    ) -> BoxFuture<'static, Result<u64, PersistError>> {
        let keys = InFlight::settlement(&rows);
        let write = Persistence::write_deliveries(&self.store, rows);
        let in_flight = self.in_flight.clone();
        Box::pin(async move {
            let n = write.await?;
            // Committed: a sweep from now on sees these outcomes.
            in_flight.settle(&keys);
            Ok(n)
        })
    }
}
