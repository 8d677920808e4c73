//! Each user's budget of bot commands, shared by every instance of one
//! installation through Redis, with a budget in memory beside it.
//!
//! A bot token has one `getUpdates` consumer, but the consumer moves
//! between instances (a take-over, a bot given up for a newcomer's share)
//! and several bots may be held by several instances: a budget kept only
//! in each process lets a user spend it once per instance. Here the shared
//! budget is a GCRA (the token bucket's twin) in one Redis hash per user,
//! `{redis.key_prefix}{installation}:cmd:{user}`, kept by one script run
//! atomically with Redis' own clock (`TIME`: instances on machines whose
//! clocks differ see one time). The key is passed in `KEYS`, so Redis
//! Cluster runs the script as is; it expires once the bucket is full again.
//!
//! The budget in memory is the single-instance one and is always applied
//! too: a command is allowed only when both allow it. While Redis cannot be
//! reached (each failure makes this instance skip Redis for
//! [`SKIP_AFTER_FAILURE`]) the memory alone decides, so a user never gets
//! more than one instance's budget on this instance, Redis or not.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::RedisConfig;
use crate::redis_conn::{HealthLog, LazyRedis};

/// Timeout of one Redis call on a command's path.
const OP_TIMEOUT: Duration = Duration::from_millis(250);

/// After Redis failed to answer, it is asked again only this much later
/// (the memory budget decides meanwhile, at no wait).
pub const SKIP_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// The script. `KEYS[1]`: the user's hash (`tat`: the theoretical arrival
/// time in ms of Redis' clock; `warned`: the user was told in this dry
/// spell). `ARGV`: the interval between two commands (ms), the burst, and
/// `check` or `take`. Answers 1 allow, 2 drop, 3 warn (`take`: 1 or 0).
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('HGET', KEYS[1], 'tat') or now)
if tat < now then tat = now end
if tat + interval - now <= burst * interval then
  tat = tat + interval
  if ARGV[3] == 'take' then
    redis.call('HSET', KEYS[1], 'tat', tat)
  else
    redis.call('HSET', KEYS[1], 'tat', tat, 'warned', 0)
  end
  redis.call('PEXPIRE', KEYS[1], math.ceil(tat - now) + 1000)
  return 1
end
if ARGV[3] == 'take' then return 0 end
if redis.call('HGET', KEYS[1], 'warned') == '1' then return 2 end
redis.call('HSET', KEYS[1], 'warned', 1)
redis.call('PEXPIRE', KEYS[1], math.ceil(tat - now) + 1000)
return 3
";

/// What the budget says about a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// Over the limit: tell the user once.
    Warn,
    /// Over the limit, told already: drop.
    Drop,
}

/// Commands a minute per user (`limits.bot_commands_per_minute`), bursts of
/// `max(10, per_minute / 3)` (a person going through `/list` and its
/// buttons makes ten actions in a few seconds), shared through Redis.
pub struct CommandBudget {
    redis: Option<Shared>,
    local: LocalBudget,
}

struct Shared {
    redis: LazyRedis,
    script: redis::Script,
    prefix: String,
    /// Redis failed to answer: asked again only after this instant.
    skip_until: Mutex<Option<Instant>>,
}

impl CommandBudget {
    /// The budget of `per_minute` commands, shared on `redis` by the
    /// instances of `installation` (`None`: this instance's memory alone).
    pub fn new(per_minute: u32, redis: Option<(&RedisConfig, &str)>) -> Self {
        Self {
            redis: redis.map(|(cfg, installation)| Shared {
                redis: LazyRedis::open(
                    &cfg.url,
                    SKIP_AFTER_FAILURE,
                    OP_TIMEOUT,
                    HealthLog {
                        lost: "Redis unreachable: each instance keeps the users' command budgets \
                               on its own (a user may spend one budget on each instance).",
                        back: "Redis reachable again: users' command budgets are shared between \
                               instances.",
                    },
                ),
                script: redis::Script::new(SCRIPT),
                prefix: format!("{}{installation}:cmd:", cfg.key_prefix),
                skip_until: Mutex::new(None),
            }),
            local: LocalBudget::new(per_minute),
        }
    }

    /// One command of `user`: allowed only when the shared budget and this
    /// instance's both allow it.
    pub async fn check(&self, user: i64) -> Verdict {
        match self.shared(user, "check").await {
            Some(1) | None => self.local.check_at(user, Instant::now()),
            Some(2) => Verdict::Drop,
            Some(_) => Verdict::Warn,
        }
    }

    /// Takes one more command's worth from `user` (a name `/add` asks
    /// Telegram about); `false`, taking nothing here, when there is none
    /// left. Running out here is no command refused: the user's next
    /// command is still told it is over the limit.
    pub async fn take(&self, user: i64) -> bool {
        match self.shared(user, "take").await {
            Some(1) | None => self.local.take(user).is_some(),
            Some(_) => false,
        }
    }

    /// The script's answer, or `None` when there is no Redis or it did not
    /// answer (then skipped for a while).
    async fn shared(&self, user: i64, mode: &str) -> Option<i64> {
        let s = self.redis.as_ref()?;
        {
            let skip = s.skip_until.lock().unwrap_or_else(PoisonError::into_inner);
            if skip.is_some_and(|t| Instant::now() < t) {
                return None;
            }
        }
        let local = &self.local;
        let answer = match s.redis.connection().await {
            Some(mut c) => {
                let mut inv = s.script.prepare_invoke();
                inv.key(format!("{}{user}", s.prefix))
                    .arg(local.interval_ms())
                    .arg(local.burst)
                    .arg(mode);
                s.redis.timed(inv.invoke_async::<i64>(&mut c)).await.ok()
            }
            None => None,
        };
        if answer.is_none() {
            *s.skip_until.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(Instant::now() + SKIP_AFTER_FAILURE);
        }
        answer
    }
}

/// A token bucket per user in this process: the single-instance budget.
/// A restart forgetting the buckets is harmless.
struct LocalBudget {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<i64, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    /// The user was told once in this dry spell; later commands are dropped
    /// silently (telling them each time would be the flood).
    warned: bool,
}

impl LocalBudget {
    fn new(per_minute: u32) -> Self {
        let per_minute = f64::from(per_minute.max(1));
        Self {
            per_sec: per_minute / 60.0,
            burst: (per_minute / 3.0).max(10.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn interval_ms(&self) -> f64 {
        1000.0 / self.per_sec
    }

    fn take(&self, user: i64) -> Option<()> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let b = buckets.get_mut(&user)?;
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_sec).min(self.burst);
        b.at = now;
        (b.tokens >= 1.0).then(|| b.tokens -= 1.0)
    }

    fn check_at(&self, user: i64, now: Instant) -> Verdict {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > 100_000 {
            // Forget full buckets: they are the same as no bucket.
            let (rate, burst) = (self.per_sec, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = buckets.entry(user).or_insert(Bucket {
            tokens: self.burst,
            at: now,
            warned: false,
        });
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_sec).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.warned = false;
            Verdict::Allow
        } else if b.warned {
            Verdict::Drop
        } else {
            b.warned = true;
            Verdict::Warn
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_one_warning_then_silence_until_refilled() {
        let r = LocalBudget::new(30);
        let t = Instant::now();
        // A burst of 10 (a third of a minute's allowance, at least 10).
        let verdicts: Vec<_> = (0..13).map(|_| r.check_at(1, t)).collect();
        assert_eq!(&verdicts[..10], &[Verdict::Allow; 10]);
        assert_eq!(
            &verdicts[10..],
            &[Verdict::Warn, Verdict::Drop, Verdict::Drop]
        );
        // Another user is not affected.
        assert_eq!(r.check_at(2, t), Verdict::Allow);
        // 30 a minute: one token every 2 s.
        assert_eq!(
            r.check_at(1, t + Duration::from_millis(1900)),
            Verdict::Drop
        );
        assert_eq!(
            r.check_at(1, t + Duration::from_millis(2100)),
            Verdict::Allow
        );
    }
}
