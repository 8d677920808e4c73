//! Telegram's rate limits shared by every instance of one installation,
//! in Redis: the adapter of the actors' [`SharedLimits`] port.
//!
//! One Lua script (`shared_limits.lua`) is the whole policy, run atomically:
//! per bot a GCRA and an arrival window of sends in flight or completed
//! within the last second, per chat one send in flight and a spacing from
//! its completion — the in-process limiter's policy on shared data. Keys
//! live under `{redis.key_prefix}{installation}:rl:{bot}:…` (see
//! `dedup.rs`): two instances of one database share them, two databases on
//! one Redis never do. Every key is passed to the script in `KEYS` and
//! carries the bot's hash tag, so a call (one per bot a round) touches one
//! slot: Redis Cluster runs it as is.
//!
//! Live instances are counted from the one liveness record there is, the
//! `instances` table's heartbeats (the lease keeper counts them each round
//! and hands the number over in a shared counter): the channel shares, the
//! reader accounts' adoption and this count never disagree, and the count
//! holds while Redis is away. With `limits.shared = "auto"` the script is
//! called only while more than one instance is live; `"on"` always;
//! `"off"` never. While Redis cannot be reached the limiter sends at
//! `1 / live instances` of every limit (see `kuryer_actors::rate_limiter`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::config::{RedisConfig, SharedMode};
use crate::redis_conn::{HealthLog, LazyRedis};
use futures_util::future::BoxFuture;
use kuryer_actors::ports::{Admission, SendSlot, SharedLimits, SharedLimitsError, SlotDone};
use kuryer_actors::rate_limiter::SharedRates;

/// The script (atomic: Redis runs one script at a time).
pub const SCRIPT: &str = include_str!("shared_limits.lua");

/// Timeout of one call on the delivery path.
const OP_TIMEOUT: Duration = Duration::from_millis(250);

/// How often an unreachable Redis is tried again.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The longest a bot's wait may be when its window is full of sends in
/// flight (they free it when they complete, which no clock says).
const MAX_BOT_WAIT: Duration = Duration::from_millis(50);

/// Rate limits shared through Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisSharedLimits {
    inner: Arc<Inner>,
}

struct Inner {
    redis: LazyRedis,
    script: redis::Script,
    prefix: String,
    /// This instance's name in its tickets.
    instance: String,
    mode: SharedMode,
    rates: SharedRates,
    /// How long a send in flight holds its chat and window slot.
    hold: Duration,
    /// Live instances by the `instances` heartbeats, kept by the lease keeper.
    live: Arc<AtomicUsize>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl RedisSharedLimits {
    /// Shared limits on `cfg.url` for installation `installation`, sending
    /// at `rates`; a send in flight holds its chat at most `hold` (the
    /// longest a request can take); `live` is the number of live instances
    /// (this one included), kept current by whoever counts the `instances`
    /// table. Connects lazily.
    pub fn new(
        cfg: &RedisConfig,
        installation: &str,
        instance: &str,
        mode: SharedMode,
        rates: SharedRates,
        hold: Duration,
        live: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                redis: LazyRedis::open(
                    &cfg.url,
                    Duration::from_secs(1),
                    OP_TIMEOUT,
                    HealthLog {
                        // The limiter says the share it falls back on.
                        lost: "Redis unreachable: rate limits are no longer shared between \
                               instances; each sends at its share of every limit.",
                        back: "Redis reachable again: rate limits are shared between instances.",
                    },
                ),
                script: redis::Script::new(SCRIPT),
                prefix: format!("{}{installation}:", cfg.key_prefix),
                instance: instance.to_owned(),
                mode,
                rates,
                hold,
                live,
            }),
        }
    }

    /// One `PING`, its outcome recorded as Redis' health: while Redis is
    /// unreachable the limiter makes no call of its own, so this is how
    /// an instance on its share notices that Redis is back.
    pub async fn probe(&self) -> bool {
        let lazy = &self.inner.redis;
        let Some(mut c) = lazy.connection().await else {
            lazy.record(false, "no connection");
            return false;
        };
        lazy.timed(redis::cmd("PING").query_async::<String>(&mut c))
            .await
            .is_ok()
    }

    /// Probes Redis every [`PROBE_EVERY`] while it is unreachable, for as
    /// long as these limits exist.
    pub fn spawn_probe(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                let Some(inner) = weak.upgrade() else { return };
                let this = RedisSharedLimits { inner };
                if !this.reachable() {
                    this.probe().await;
                }
            }
        })
    }

    fn ticket(&self, t: u64) -> String {
        format!("{}#{t}", self.inner.instance)
    }

    /// A key of bot `bot`: `{prefix}rl:{bot}:{rest}`, the bot's id as the
    /// hash tag, so every key of one bot lives in one Redis Cluster slot.
    fn bot_key(&self, bot: i64, rest: &str) -> String {
        format!("{}rl:{{{bot}}}:{rest}", self.inner.prefix)
    }

    /// Runs the script at `now_ms` (`None`: Redis' clock): one call per bot
    /// among `want` and `done` (each touching that bot's slot only), at
    /// once over the one connection. Public for the tests, which feed
    /// exact instants.
    pub async fn admit_at(
        &self,
        now_ms: Option<f64>,
        want: &[SendSlot],
        done: &[SlotDone],
    ) -> Result<Vec<Admission>, SharedLimitsError> {
        if want.is_empty() && done.is_empty() {
            return Ok(Vec::new());
        }
        let lazy = &self.inner.redis;
        let Some(c) = lazy.connection().await else {
            return Err(SharedLimitsError("no connection to Redis".into()));
        };
        let mut bots: Vec<i64> = done
            .iter()
            .map(|d| d.bot_id)
            .chain(want.iter().map(|w| w.bot_id))
            .collect();
        bots.sort_unstable();
        bots.dedup();
        let r = &self.inner.rates;
        let calls = bots.iter().map(|&bot| {
            let mut c = c.clone();
            let done: Vec<&SlotDone> = done.iter().filter(|d| d.bot_id == bot).collect();
            let want: Vec<&SendSlot> = want.iter().filter(|w| w.bot_id == bot).collect();
            let mut call = self.inner.script.prepare_invoke();
            call.key(self.bot_key(bot, "tat"))
                .key(self.bot_key(bot, "win"));
            for chat in done
                .iter()
                .map(|d| d.chat_id)
                .chain(want.iter().map(|w| w.chat_id))
            {
                call.key(self.bot_key(bot, &format!("chat:{chat}")));
            }
            call.arg(now_ms.unwrap_or(-1.0))
                .arg(ms(r.bot_interval))
                .arg(r.bot_window_cap)
                .arg(ms(r.tolerance))
                .arg(ms(r.chat_interval))
                .arg(ms(r.group_interval))
                .arg(ms(self.inner.hold))
                .arg(ms(MAX_BOT_WAIT))
                .arg(done.len());
            for d in &done {
                call.arg(self.ticket(d.ticket))
                    .arg(d.ago.as_millis() as u64);
            }
            for w in &want {
                call.arg(if w.group_like { "1" } else { "0" })
                    .arg(self.ticket(w.ticket))
                    .arg(w.items.max(1));
            }
            async move { lazy.timed(call.invoke_async::<Vec<i64>>(&mut c)).await }
        });
        let answers = futures_util::future::join_all(calls).await;
        if let Some(Err(e)) = answers.iter().find(|a| a.is_err())
            && answers.iter().all(|a| a.is_err())
        {
            return Err(SharedLimitsError(e.clone()));
        }
        // A bot whose call failed (its shard away) waits; the failure is
        // recorded, so the next round falls back to the share.
        let mut codes: std::collections::HashMap<i64, std::vec::IntoIter<i64>> = bots
            .iter()
            .zip(answers)
            .filter_map(|(bot, a)| Some((*bot, a.ok()?.into_iter())))
            .collect();
        let failed_wait = -(OP_TIMEOUT.as_millis() as i64);
        Ok(want
            .iter()
            .map(|w| {
                let code = codes
                    .get_mut(&w.bot_id)
                    .and_then(Iterator::next)
                    .unwrap_or(failed_wait);
                match code {
                    0 => Admission::Admitted,
                    w if w > 0 => Admission::ChatWait(Duration::from_millis(w as u64)),
                    w => Admission::BotWait(Duration::from_millis(w.unsigned_abs())),
                }
            })
            .collect())
    }
}

impl SharedLimits for RedisSharedLimits {
    fn admit(
        &self,
        want: Vec<SendSlot>,
        done: Vec<SlotDone>,
    ) -> BoxFuture<'static, Result<Vec<Admission>, SharedLimitsError>> {
        let this = self.clone();
        Box::pin(async move { this.admit_at(None, &want, &done).await })
    }

    fn active(&self) -> bool {
        match self.inner.mode {
            SharedMode::Off => false,
            SharedMode::On => self.reachable(),
            SharedMode::Auto => self.reachable() && self.live_instances() > 1,
        }
    }

    fn reachable(&self) -> bool {
        self.inner.redis.healthy()
    }

    fn live_instances(&self) -> usize {
        self.inner.live.load(Ordering::Relaxed).max(1)
    }
}

/// The shared limits of `kuryer run`, per `limits.shared`: `None` when off.
/// `rates` are the limiter's; `hold` how long a send may take (its request
/// timeout and a second); `live` the instances counted by the lease keeper
/// (counted once already at registration, so an instance starting beside
/// others shares from its first send).
pub async fn start_for(
    cfg: &crate::config::Config,
    installation: &str,
    instance: &str,
    rates: kuryer_actors::rate_limiter::SharedRates,
    hold: Duration,
    live: Arc<AtomicUsize>,
) -> Option<Arc<dyn SharedLimits>> {
    if cfg.limits.shared == SharedMode::Off {
        return None;
    }
    let limits = RedisSharedLimits::new(
        &cfg.redis,
        installation,
        instance,
        cfg.limits.shared,
        rates,
        hold,
        live,
    );
    let reachable = limits.probe().await;
    limits.spawn_probe();
    if reachable {
        tracing::info!(
            mode = ?cfg.limits.shared,
            live_instances = limits.live_instances(),
            "Rate limits shared between instances through Redis."
        );
    } else {
        tracing::warn!(
            mode = ?cfg.limits.shared,
            live_instances = limits.live_instances(),
            "Rate limits are to be shared through Redis, but Redis does not answer: until it does, this instance sends at its share of every limit."
        );
    }
    Some(Arc::new(limits))
}
