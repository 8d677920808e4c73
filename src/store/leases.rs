//! Instances and what they lease (migration 0009): the `instances` rows and
//! their heartbeats, channel leases (`channels.lease_owner`,
//! `lease_generation`) and bot leases (`bot_leases`).
//!
//! A lease lives as long as its owner's heartbeat: it may be taken when it
//! has no owner or its owner's `heartbeat_at` is older than that owner's
//! `lease_ttl_s`, always by PostgreSQL's clock (no two machines' clocks are
//! compared). Every take bumps the generation, which fences the old owner.

use chrono::{DateTime, Utc};
use kuryer_actors::model::ChannelRef;

use super::error::OpContext;
use super::{Store, StoreError};

/// `c.lease_owner` is not a live instance. Used on `channels c`.
const OWNER_DEAD: &str = "(c.lease_owner IS NULL OR NOT EXISTS (
        SELECT 1 FROM instances i
         WHERE i.id = c.lease_owner
           AND i.heartbeat_at > now() - make_interval(secs => i.lease_ttl_s)))";

/// The channels that are leased: the ones `Store::active_channels` polls.
const LEASABLE: &str = "c.telegram_id IS NOT NULL AND c.status = 'active'
        AND (c.bot_is_admin
             OR EXISTS (SELECT 1 FROM subscriptions s
                         WHERE s.channel_id = c.id AND s.is_active))";

/// A channel whose lease this instance holds in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedChannel {
    pub channel_id: i64,
    pub generation: i64,
    /// Still leasable: someone subscribes (or our bot administers it).
    pub wanted: bool,
}

/// A channel leased to this instance, with the generation of the lease.
#[derive(Debug, Clone)]
pub struct LeasedChannel {
    /// The channel as the pollers need it.
    pub channel: ChannelRef,
    /// The lease's generation: recording a post checks it.
    pub generation: i64,
}

/// Where an instance runs (migration 0016).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceIdentity {
    /// `gethostname(2)`.
    pub host_name: String,
    /// `/etc/machine-id`, when known.
    pub machine_id: Option<String>,
    /// The kernel's boot id, when known.
    pub boot_id: Option<String>,
    /// The PID namespace (`pid:[…]`), when known.
    pub pid_ns: Option<String>,
    /// The process id.
    pub pid: u32,
    /// Drawn at the process's start: tells two processes of one id apart.
    pub incarnation: i64,
}

/// A registered instance, where it runs and whether its heartbeat is live.
#[derive(Debug, Clone)]
pub struct RegisteredInstance {
    pub id: String,
    pub identity: InstanceIdentity,
    /// Its heartbeat is within its TTL.
    pub live: bool,
    /// Its last heartbeat (s since the epoch, PostgreSQL's clock): a live
    /// process moves it every third of its TTL.
    pub heartbeat_s: f64,
}

/// An instance as `kuryer instances` lists it.
#[derive(Debug, Clone)]
pub struct InstanceRow {
    pub id: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub lease_ttl_s: i32,
    /// Its heartbeat is within its TTL.
    pub live: bool,
    /// Channels, reader accounts and bots leased to it.
    pub channels: i64,
    pub accounts: i64,
    pub bots: i64,
    /// Where it runs (`None` for a row of a kuryer older than the column).
    pub host_name: Option<String>,
    pub machine_id: Option<String>,
}

impl Store {
    /// Registers this instance (again, after a restart or after its
    /// heartbeat lapsed): anything still leased to its id from before is
    /// let go first, so that every lease it holds from now on was taken
    /// anew, with a new generation. Where it runs is recorded with it.
    pub async fn instance_register(
        &self,
        id: &str,
        lease_ttl_s: u64,
        version: &str,
        me: &InstanceIdentity,
    ) -> Result<(), StoreError> {
        const OP: &str = "register this instance";
        let ttl = i32::try_from(lease_ttl_s).unwrap_or(i32::MAX);
        let pid = i32::try_from(me.pid).unwrap_or(i32::MAX);
        let mut c = self.conn(OP).await?;
        let tx = c.transaction().await.op(OP)?;
        tx.execute(
            "UPDATE channels SET lease_owner = NULL WHERE lease_owner = $1",
            &[&id],
        )
        .await
        .op(OP)?;
        tx.execute(
            "UPDATE bot_leases SET owner = NULL WHERE owner = $1",
            &[&id],
        )
        .await
        .op(OP)?;
        tx.execute(
            "INSERT INTO instances (id, lease_ttl_s, version, pid_ns, host_name, machine_id,
                                    boot_id, pid, incarnation)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (id) DO UPDATE
                SET started_at = now(), heartbeat_at = now(),
                    lease_ttl_s = $2, version = $3, pid_ns = $4, host_name = $5,
                    machine_id = $6, boot_id = $7, pid = $8, incarnation = $9",
            &[
                &id,
                &ttl,
                &version,
                &me.pid_ns,
                &me.host_name,
                &me.machine_id,
                &me.boot_id,
                &pid,
                &me.incarnation,
            ],
        )
        .await
        .op(OP)?;
        tx.commit().await.op(OP)?;
        Ok(())
    }

    /// Registered instances with where they run: `id` alone, or (`None`)
    /// every one not yet marked dead.
    pub async fn registered_instances(
        &self,
        id: Option<&str>,
    ) -> Result<Vec<RegisteredInstance>, StoreError> {
        const OP: &str = "list where instances run";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT id, host_name, machine_id, boot_id, pid_ns, pid, incarnation,
                        heartbeat_at > now() - make_interval(secs => lease_ttl_s),
                        extract(epoch FROM heartbeat_at)::float8
                   FROM instances
                  WHERE ($1::text IS NULL OR id = $1) AND heartbeat_at > '-infinity'",
                &[&id],
            )
            .await
            .op(OP)?;
        Ok(rows
            .iter()
            .map(|r| RegisteredInstance {
                id: r.get(0),
                identity: InstanceIdentity {
                    host_name: r.get::<_, Option<String>>(1).unwrap_or_default(),
                    machine_id: r.get(2),
                    boot_id: r.get(3),
                    pid_ns: r.get(4),
                    pid: r.get::<_, Option<i32>>(5).unwrap_or(0).max(0) as u32,
                    incarnation: r.get::<_, Option<i64>>(6).unwrap_or(0),
                },
                live: r.get(7),
                heartbeat_s: r.get(8),
            })
            .collect())
    }

    /// Marks instances known to be dead (their process is gone) as dead
    /// now rather than a TTL later: their channels, bots and reader
    /// accounts may be taken at once, through the usual take (which bumps
    /// each generation, so nothing they did is trusted).
    pub async fn instances_mark_dead(&self, ids: &[String]) -> Result<(), StoreError> {
        const OP: &str = "mark dead instances";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE instances SET heartbeat_at = '-infinity' WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .op(OP)?;
        // Their process is gone: no one to wait for, not even the one TTL a
        // taker waits after a lease ran out. The epoch, not '-infinity':
        // the expiry is read back as a `DateTime<Utc>` (`reader_accounts`),
        // which cannot hold an infinite timestamp, and every listing of
        // the accounts would fail on it.
        c.execute(
            "UPDATE reader_accounts SET lease_expires_at = 'epoch'
              WHERE lease_holder = ANY($1) AND lease_expires_at IS NOT NULL",
            &[&ids],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Renews this instance's heartbeat. `false` when it had already lapsed
    /// (or the row is gone, or another process registered the same id):
    /// its leases may be another's by now, so the caller lets all of them
    /// go and registers again.
    pub async fn instance_heartbeat(&self, id: &str, incarnation: i64) -> Result<bool, StoreError> {
        const OP: &str = "renew this instance's heartbeat";
        let c = self.conn(OP).await?;
        let n = c
            .execute(
                "UPDATE instances SET heartbeat_at = now()
                  WHERE id = $1 AND incarnation = $2
                    AND heartbeat_at > now() - make_interval(secs => lease_ttl_s)",
                &[&id, &incarnation],
            )
            .await
            .op(OP)?;
        Ok(n == 1)
    }

    /// A graceful stop: every lease let go and the row removed, so the
    /// others take the work at their next heartbeat, not a TTL later.
    pub async fn instance_leave(&self, id: &str) -> Result<(), StoreError> {
        const OP: &str = "unregister this instance";
        let mut c = self.conn(OP).await?;
        let tx = c.transaction().await.op(OP)?;
        tx.execute(
            "UPDATE channels SET lease_owner = NULL WHERE lease_owner = $1",
            &[&id],
        )
        .await
        .op(OP)?;
        tx.execute(
            "UPDATE bot_leases SET owner = NULL WHERE owner = $1",
            &[&id],
        )
        .await
        .op(OP)?;
        tx.execute("DELETE FROM instances WHERE id = $1", &[&id])
            .await
            .op(OP)?;
        tx.commit().await.op(OP)?;
        Ok(())
    }

    /// Live instances (this one included once registered), and the
    /// channels there are to share.
    pub async fn lease_census(&self) -> Result<(i64, i64), StoreError> {
        const OP: &str = "count instances and channels";
        let c = self.conn(OP).await?;
        let row = c
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM instances
                              WHERE heartbeat_at > now() - make_interval(secs => lease_ttl_s)),
                            (SELECT count(*) FROM channels c WHERE {LEASABLE})"
                ),
                &[],
            )
            .await
            .op(OP)?;
        Ok((row.get(0), row.get(1)))
    }

    /// The channels leased to `id` now, with their generations, and
    /// whether each is still leasable (false: nobody subscribes to it any
    /// more, or it was paused: it no longer counts in anyone's share).
    pub async fn owned_channels(&self, id: &str) -> Result<Vec<OwnedChannel>, StoreError> {
        const OP: &str = "list this instance's channels";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                &format!(
                    "SELECT c.id, c.lease_generation, ({LEASABLE})
                       FROM channels c WHERE c.lease_owner = $1"
                ),
                &[&id],
            )
            .await
            .op(OP)?;
        Ok(rows
            .iter()
            .map(|r| OwnedChannel {
                channel_id: r.get(0),
                generation: r.get(1),
                wanted: r.get(2),
            })
            .collect())
    }

    /// Takes up to `n` leasable channels that no live instance holds, for
    /// `id` (whose own heartbeat must be live). `FOR UPDATE SKIP LOCKED`:
    /// instances claiming at once take different rows, and a row locked by
    /// a post being recorded is left for the next round.
    pub async fn claim_channels(&self, id: &str, n: i64) -> Result<Vec<LeasedChannel>, StoreError> {
        const OP: &str = "claim channels";
        if n <= 0 {
            return Ok(Vec::new());
        }
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                &format!(
                    "WITH me AS (
                        SELECT 1 FROM instances
                         WHERE id = $1
                           AND heartbeat_at > now() - make_interval(secs => lease_ttl_s)
                     ), want AS (
                        SELECT c.id FROM channels c
                         WHERE EXISTS (SELECT 1 FROM me) AND {LEASABLE} AND {OWNER_DEAD}
                         ORDER BY c.id
                         LIMIT $2
                         FOR UPDATE OF c SKIP LOCKED
                     )
                     UPDATE channels c
                        SET lease_owner = $1, lease_generation = c.lease_generation + 1
                       FROM want
                      WHERE c.id = want.id
                     RETURNING c.id, c.telegram_id, c.username, c.bot_is_admin, c.lease_generation"
                ),
                &[&id, &n],
            )
            .await
            .op(OP)?;
        let mut out: Vec<LeasedChannel> = rows
            .iter()
            .map(|r| LeasedChannel {
                channel: ChannelRef {
                    channel_id: r.get(0),
                    chat_id: r.get(1),
                    username: r.get(2),
                    bot_is_admin: r.get(3),
                },
                generation: r.get(4),
            })
            .collect();
        out.sort_by_key(|l| l.channel.channel_id);
        Ok(out)
    }

    /// Lets channels go (a new instance needs its share): only while still
    /// ours, so a release can never take a channel from its new owner.
    pub async fn release_channels(&self, id: &str, channels: &[i64]) -> Result<u64, StoreError> {
        const OP: &str = "release channels";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE channels SET lease_owner = NULL
              WHERE lease_owner = $1 AND id = ANY($2)",
            &[&id, &channels],
        )
        .await
        .op(OP)
    }

    /// Takes bot `bot_id`'s getUpdates lease when no live instance holds
    /// it; the generation when taken, and — when the previous holder was
    /// marked dead by its process ([`Store::instances_mark_dead`]) rather
    /// than found lapsed — that holder's lease TTL: its last long poll
    /// may still be open at Telegram for up to that long (a poll is cut
    /// to end before the holder's lease, never before its heartbeat could
    /// lapse), so the taker waits it out before polling.
    pub async fn claim_bot(
        &self,
        id: &str,
        bot_id: i64,
    ) -> Result<Option<(i64, Option<std::time::Duration>)>, StoreError> {
        const OP: &str = "claim a bot's updates";
        let c = self.conn(OP).await?;
        c.execute(
            "INSERT INTO bot_leases (bot_id) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&bot_id],
        )
        .await
        .op(OP)?;
        let row = c
            .query_opt(
                "WITH prev AS (
                   SELECT i.lease_ttl_s FROM bot_leases l JOIN instances i ON i.id = l.owner
                    WHERE l.bot_id = $2 AND l.owner <> $1 AND i.heartbeat_at = '-infinity')
                 UPDATE bot_leases b
                    SET owner = $1, generation = b.generation + 1, taken_at = now()
                  WHERE b.bot_id = $2
                    AND EXISTS (SELECT 1 FROM instances
                                 WHERE id = $1
                                   AND heartbeat_at > now() - make_interval(secs => lease_ttl_s))
                    AND (b.owner IS NULL OR NOT EXISTS (
                          SELECT 1 FROM instances i
                           WHERE i.id = b.owner
                             AND i.heartbeat_at > now() - make_interval(secs => i.lease_ttl_s)))
                 RETURNING generation, (SELECT lease_ttl_s FROM prev)",
                &[&id, &bot_id],
            )
            .await
            .op(OP)?;
        Ok(row.map(|r| {
            let ttl: Option<i32> = r.get(1);
            let wait = ttl.map(|s| std::time::Duration::from_secs(u64::try_from(s).unwrap_or(0)));
            (r.get(0), wait)
        }))
    }

    /// The bots whose getUpdates `id` holds now, with generations.
    pub async fn owned_bots(&self, id: &str) -> Result<Vec<(i64, i64)>, StoreError> {
        const OP: &str = "list this instance's bots";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT bot_id, generation FROM bot_leases WHERE owner = $1",
                &[&id],
            )
            .await
            .op(OP)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Lets a bot's getUpdates go, while still ours.
    pub async fn release_bot(&self, id: &str, bot_id: i64) -> Result<(), StoreError> {
        const OP: &str = "release a bot's updates";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE bot_leases SET owner = NULL WHERE owner = $1 AND bot_id = $2",
            &[&id, &bot_id],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Every registered instance with what it leases, newest heartbeat first.
    pub async fn instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        const OP: &str = "list instances";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT i.id, i.version, i.started_at, i.heartbeat_at, i.lease_ttl_s,
                        i.heartbeat_at > now() - make_interval(secs => i.lease_ttl_s),
                        (SELECT count(*) FROM channels c WHERE c.lease_owner = i.id),
                        (SELECT count(*) FROM reader_accounts a
                          WHERE a.lease_holder = i.id AND a.lease_expires_at > now()),
                        (SELECT count(*) FROM bot_leases b WHERE b.owner = i.id),
                        i.host_name, i.machine_id
                   FROM instances i
                  ORDER BY i.heartbeat_at DESC, i.id",
                &[],
            )
            .await
            .op(OP)?;
        Ok(rows
            .iter()
            .map(|r| InstanceRow {
                id: r.get(0),
                version: r.get(1),
                started_at: r.get(2),
                heartbeat_at: r.get(3),
                lease_ttl_s: r.get(4),
                live: r.get(5),
                channels: r.get(6),
                accounts: r.get(7),
                bots: r.get(8),
                host_name: r.get(9),
                machine_id: r.get(10),
            })
            .collect())
    }

    /// Forgets instances dead for longer than `older_than_s` (their leases
    /// were taken long ago): `kuryer instances` stays short.
    pub async fn forget_dead_instances(&self, older_than_s: f64) -> Result<u64, StoreError> {
        const OP: &str = "forget dead instances";
        let c = self.conn(OP).await?;
        c.execute(
            "DELETE FROM instances
              WHERE heartbeat_at < now() - make_interval(secs => $1)
                AND NOT EXISTS (SELECT 1 FROM channels WHERE lease_owner = instances.id)
                AND NOT EXISTS (SELECT 1 FROM bot_leases WHERE owner = instances.id)",
            &[&older_than_s],
        )
        .await
        .op(OP)
    }

    /// Whether reader account `name` may be taken by `holder`: active, and
    /// its holder is `holder`, nobody, or not a live instance (by the
    /// `instances` heartbeats, the one liveness record), and its lease ran
    /// out at least one `ttl` ago (the taker's wait: a holder that could
    /// not renew stopped using the account at its local deadline, before
    /// the lease ran out; the extra TTL covers a holder that noticed late).
    pub async fn lease_free(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        const OP: &str = "look at a reader lease";
        let c = self.conn(OP).await?;
        let ttl_ms = ttl.as_millis() as f64;
        let row = c
            .query_opt(
                "SELECT 1 FROM reader_accounts a
                  WHERE a.name = $1 AND a.status = 'active'
                    AND (a.lease_holder IS NULL OR a.lease_holder = $2 OR NOT EXISTS (
                          SELECT 1 FROM instances i
                           WHERE i.id = a.lease_holder
                             AND i.heartbeat_at > now() - make_interval(secs => i.lease_ttl_s)))
                    AND (a.lease_expires_at IS NULL OR a.lease_holder = $2
                         OR a.lease_expires_at <= now() - $3 * interval '1 millisecond')",
                &[&name, &holder, &ttl_ms],
            )
            .await
            .op(OP)?;
        Ok(row.is_some())
    }

    /// Post ids of `channels` detected since `since`: what a channel taken
    /// over may still owe.
    pub async fn recent_post_ids_of(
        &self,
        channels: &[i64],
        since: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        const OP: &str = "list a channel's recent posts";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT id FROM posts
                  WHERE channel_id = ANY($1) AND detected_at >= $2 AND source_chat_id IS NOT NULL
                    AND NOT history
                  ORDER BY channel_id, message_id",
                &[&channels, &since],
            )
            .await
            .op(OP)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
