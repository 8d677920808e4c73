//! Telegram's rate limits shared by every instance of one installation,
//! in Redis: the adapter of the actors' [`SharedLimits`] port.
//!
//! One Lua script (`shared_limits.lua`) is the whole policy, run atomically:
//! per bot a GCRA and an arrival window of sends in flight or completed
//! within the last second, per chat one send in flight and a spacing from
//! its completion — the in-process limiter's policy on shared data. Keys
//! live under `{redis.key_prefix}{installation}:rl:…` (see `dedup.rs`):
//! two instances of one database share them, two databases on one Redis
//! never do.
//!
//! Live instances are counted by a heartbeat (`…:instances`, a sorted set
//! of instance → last beat), kept behind [`InstanceCount`] so the count can
//! come from elsewhere later (the lease table of the scale-out work). With
//! `limits.shared = "auto"` the script is called only while more than one
//! instance is live; `"on"` always; `"off"` never. While Redis cannot be
//! reached the limiter sends at `1 / live instances` of every limit, the
//! count last seen (see `kuryer_actors::rate_limiter`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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

/// How often an instance says it is live.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// An instance is live while its last beat is younger than this.
pub const LIVE_FOR: Duration = Duration::from_secs(5);

/// The longest a bot's wait may be when its window is full of sends in
/// flight (they free it when they complete, which no clock says).
const MAX_BOT_WAIT: Duration = Duration::from_millis(50);

/// Where the number of live instances comes from: a small port so the
/// heartbeat set here can be swapped for the leases' instance table.
pub trait InstanceCount: Send + Sync + 'static {
    /// Live instances, this one included (at least 1), as last seen.
    fn live(&self) -> usize;
}

/// Rate limits shared through Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisSharedLimits {
    inner: Arc<Inner>,
}

struct Inner {
    redis: LazyRedis,
    script: redis::Script,
    prefix: String,
    /// This instance's name in the heartbeat set and in its tickets.
    instance: String,
    mode: SharedMode,
    rates: SharedRates,
    /// How long a send in flight holds its chat and window slot.
    hold: Duration,
    live: AtomicUsize,
    /// Another source of the instance count, when set.
    count: Mutex<Option<Arc<dyn InstanceCount>>>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl RedisSharedLimits {
    /// Shared limits on `cfg.url` for installation `installation`, sending
    /// at `rates`; a send in flight holds its chat at most `hold` (the
    /// longest a request can take). Connects lazily.
    pub fn new(
        cfg: &RedisConfig,
        installation: &str,
        instance: &str,
        mode: SharedMode,
        rates: SharedRates,
        hold: Duration,
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
                live: AtomicUsize::new(1),
                count: Mutex::new(None),
            }),
        }
    }

    /// Takes the number of live instances from `count` instead of the
    /// heartbeat set (the heartbeat still runs).
    pub fn with_instance_count(self, count: Arc<dyn InstanceCount>) -> Self {
        *self
            .inner
            .count
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(count);
        self
    }

    /// The key of the heartbeat set.
    pub fn instances_key(&self) -> String {
        format!("{}instances", self.inner.prefix)
    }

    /// One heartbeat: says this instance is live, forgets instances silent
    /// for [`LIVE_FOR`], and notes how many are live.
    pub async fn beat(&self) -> bool {
        let lazy = &self.inner.redis;
        let Some(mut c) = lazy.connection().await else {
            lazy.record(false, "no connection");
            return false;
        };
        let script = redis::Script::new(
            "local t = redis.call('TIME') \
             local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
             redis.call('ZADD', KEYS[1], now, ARGV[1]) \
             redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2])) \
             redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10) \
             return redis.call('ZCARD', KEYS[1])",
        );
        let mut call = script.key(self.instances_key());
        call.arg(&self.inner.instance)
            .arg(LIVE_FOR.as_millis() as u64);
        match lazy.timed(call.invoke_async::<usize>(&mut c)).await {
            Ok(n) => {
                self.inner.live.store(n.max(1), Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// Beats every [`HEARTBEAT`] until `stop` turns true, then leaves the
    /// heartbeat set (a graceful stop frees its share at once).
    pub fn spawn_heartbeat(&self, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                this.beat().await;
                tokio::time::sleep(HEARTBEAT).await;
            }
            this.leave().await;
        })
    }

    /// Takes this instance out of the heartbeat set.
    pub async fn leave(&self) {
        let lazy = &self.inner.redis;
        if let Some(mut c) = lazy.connection().await {
            let _ = lazy
                .timed(
                    redis::cmd("ZREM")
                        .arg(self.instances_key())
                        .arg(&self.inner.instance)
                        .query_async::<i64>(&mut c),
                )
                .await;
        }
    }

    fn ticket(&self, t: u64) -> String {
        format!("{}#{t}", self.inner.instance)
    }

    /// Runs the script at `now_ms` (`None`: Redis' clock). Public for the
    /// tests, which feed exact instants.
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
        let Some(mut c) = lazy.connection().await else {
            return Err(SharedLimitsError("no connection to Redis".into()));
        };
        let r = &self.inner.rates;
        let mut call = self.inner.script.prepare_invoke();
        call.arg(now_ms.unwrap_or(-1.0))
            .arg(&self.inner.prefix)
            .arg(ms(r.bot_interval))
            .arg(r.bot_window_cap)
            .arg(ms(r.tolerance))
            .arg(ms(r.chat_interval))
            .arg(ms(r.group_interval))
            .arg(ms(self.inner.hold))
            .arg(ms(MAX_BOT_WAIT))
            .arg(done.len());
        for d in done {
            call.arg(d.bot_id)
                .arg(d.chat_id)
                .arg(self.ticket(d.ticket))
                .arg(d.ago.as_millis() as u64);
        }
        for w in want {
            call.arg(w.bot_id)
                .arg(w.chat_id)
                .arg(if w.group_like { "1" } else { "0" })
                .arg(self.ticket(w.ticket));
        }
        let codes = lazy
            .timed(call.invoke_async::<Vec<i64>>(&mut c))
            .await
            .map_err(SharedLimitsError)?;
        Ok(codes
            .into_iter()
            .map(|code| match code {
                0 => Admission::Admitted,
                w if w > 0 => Admission::ChatWait(Duration::from_millis(w as u64)),
                w => Admission::BotWait(Duration::from_millis(w.unsigned_abs())),
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
        let other = self
            .inner
            .count
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match other {
            Some(c) => c.live().max(1),
            None => self.inner.live.load(Ordering::Relaxed).max(1),
        }
    }
}

/// The shared limits of `kuryer run`, per `limits.shared`: `None` when off.
/// Beats once before answering, so an instance starting beside others
/// shares from its first send; the heartbeat then runs until `stop`.
/// `rates` are the limiter's; `hold` how long a send may take (its
/// request timeout and a second).
pub async fn start_for(
    cfg: &crate::config::Config,
    installation: &str,
    instance: &str,
    rates: kuryer_actors::rate_limiter::SharedRates,
    hold: Duration,
    stop: Arc<AtomicBool>,
) -> Option<(Arc<dyn SharedLimits>, tokio::task::JoinHandle<()>)> {
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
    );
    let live = limits.beat().await;
    tracing::info!(
        mode = ?cfg.limits.shared,
        redis_reachable = live,
        live_instances = limits.live_instances(),
        "Rate limits shared between instances through Redis."
    );
    let heartbeat = limits.spawn_heartbeat(stop);
    Some((Arc::new(limits), heartbeat))
}
