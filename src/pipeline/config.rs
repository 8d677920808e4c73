//! The pipeline's settings, from the daemon's configuration.

use std::time::Duration;

use kuryer_actors::channel_poller::PollerConfig;
use kuryer_actors::db_writer::DbWriterConfig;
use kuryer_actors::rate_limiter::LimiterConfig;
use kuryer_actors::sender_pool::SenderConfig;

use crate::config::{Config, LimitsConfig, OnAmbiguous};

/// Settings of the whole pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub limiter: LimiterConfig,
    pub poller: PollerConfig,
    pub writer: DbWriterConfig,
    pub sender: SenderConfig,
    /// Rows a chunk of the registry's streaming load.
    pub load_chunk: usize,
    /// Resume deliveries of posts detected this long ago or less (zero: off,
    /// and no sweep either).
    pub resume_window: Duration,
    /// How often the sweep looks for owed deliveries nothing is sending.
    pub sweep_interval: Duration,
}

impl PipelineConfig {
    /// From the daemon's configuration; `scale` multiplies Telegram's limits.
    pub fn from_config(cfg: &Config, scale: f64) -> Self {
        let d = &cfg.delivery;
        let mut limiter = limiter_config(&cfg.limits, cfg.telegram.bot_tokens.len().max(1), scale);
        limiter.bot_ids = cfg
            .telegram
            .bot_tokens
            .iter()
            .map(|t| crate::telegram::bot_id_of(t.expose()))
            .collect();
        limiter.max_in_flight = d.max_in_flight;
        limiter.queue_capacity = d.queue_capacity;
        limiter.queue_per_chat = d.queue_per_destination;
        limiter.max_db_backlog = d.max_db_backlog;
        Self {
            limiter,
            poller: PollerConfig {
                min_interval: Duration::from_millis(d.poll_min_interval_ms),
                max_interval: Duration::from_millis(d.poll_max_interval_ms),
                ..PollerConfig::default()
            },
            writer: DbWriterConfig {
                batch_size: d.db_batch_size,
                flush_interval: Duration::from_millis(d.db_flush_interval_ms),
                writes_in_flight: d.db_writes_in_flight,
                ..DbWriterConfig::default()
            },
            sender: SenderConfig {
                retry_ambiguous: d.on_ambiguous == OnAmbiguous::Retry,
                max_failures: d.max_failures,
                request_timeout: Duration::from_millis(cfg.telegram.request_timeout_ms),
                allow_paid_broadcast: cfg.limits.allow_paid_broadcast,
            },
            load_chunk: 5000,
            resume_window: Duration::from_secs(d.resume_window_s),
            sweep_interval: Duration::from_secs(d.sweep_interval_s),
        }
    }
}

/// The limiter's settings from `[limits]`, each rate multiplied by `scale`.
pub fn limiter_config(limits: &LimitsConfig, bots: usize, scale: f64) -> LimiterConfig {
    let per_bot = if limits.allow_paid_broadcast {
        limits.paid_per_bot_per_second
    } else {
        limits.per_bot_per_second
    };
    LimiterConfig {
        per_bot_per_second: per_bot * scale,
        // Albums and forwards cannot carry the paid flag: they stay at the
        // free rate (`rate_limiter/budget.rs`).
        free_per_bot_per_second: limits
            .allow_paid_broadcast
            .then_some(limits.per_bot_per_second * scale),
        per_chat_per_second: limits.per_chat_per_second * scale,
        per_group_per_minute: limits.per_group_per_minute * scale,
        bots,
        ..LimiterConfig::default()
    }
}
