//! Reader accounts: their grammers sessions (data-centre addresses with
//! encrypted auth keys, home DC, self user, update state), leases, and which
//! channel each reads. The encryption itself is `reader::crypto`'s: this file
//! stores bytes it cannot read.

use chrono::{DateTime, Utc};

use super::error::OpContext;
use super::{Store, StoreError};

/// One reader account as `kuryer accounts` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRow {
    /// The operator's name for it.
    pub name: String,
    /// Its phone number, as typed at login.
    pub phone: Option<String>,
    /// Telegram user id once signed in.
    pub user_id: Option<i64>,
    /// `new`, `active`, `logged_out`, `lost` or `frozen`.
    pub status: String,
    /// Why it was lost.
    pub lost_reason: Option<String>,
    /// The process holding its lease, if the lease is live.
    pub lease_holder: Option<String>,
    /// When the lease runs out.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Times the lease was taken.
    pub lease_generation: i64,
    /// Channels assigned to it.
    pub channels: i64,
    /// Of those, joined (read through pushed updates).
    pub joined: i64,
    /// A flood wait still running, and the method it is on.
    pub flood_wait: Option<(DateTime<Utc>, String)>,
    /// Today's budgets as last written by the account's holder:
    /// (used, limit) of look-ups and of joins; `None` when no holder has
    /// written today's yet.
    pub resolves_today: Option<(i32, i32)>,
    /// See `resolves_today`.
    pub joins_today: Option<(i32, i32)>,
    /// Why joins stopped for today (`PEER_FLOOD`), if they did.
    pub joins_stopped: Option<String>,
}

/// A channel assigned to a reader account that nobody subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnwantedAssignment {
    pub channel_id: i64,
    /// Telegram's bare channel id.
    pub peer_id: i64,
    /// The account's own access hash (else the channel's one).
    pub access_hash: Option<i64>,
    /// Joined, and unwanted for longer than the grace: to be left.
    pub due: bool,
}

/// One data centre of a stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDc {
    /// DC id.
    pub dc_id: i32,
    /// `ip:port`.
    pub ipv4: String,
    /// `[ip]:port`.
    pub ipv6: String,
    /// The auth key, encrypted; `None` when no key was made for it.
    pub auth_key_enc: Option<Vec<u8>>,
}

/// A stored session, as `reader::session` loads it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSession {
    /// The home DC.
    pub home_dc: i32,
    /// Known DCs.
    pub dcs: Vec<StoredDc>,
    /// The signed-in user and its access hash.
    pub user: Option<(i64, i64)>,
    /// grammers' update state as JSON.
    pub update_state: Option<serde_json::Value>,
}

/// A channel's assignment to a reader account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// `channels.id`.
    pub channel_id: i64,
    /// The account's name.
    pub account: String,
    /// Joined (pushed updates) or polled.
    pub joined: bool,
}

/// What a reader needs to read a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderChannel {
    /// `channels.id`.
    pub channel_id: i64,
    /// Telegram's bare channel id (not the Bot API's `-100…`).
    pub bare_id: i64,
    /// Its access hash.
    pub access_hash: i64,
    /// Protected content.
    pub protected: bool,
    /// Where reading it started (`None`: its first read is still to come).
    pub start_message_id: Option<i64>,
}

/// The Bot API chat id of a bare channel id.
pub fn bot_api_chat_id(bare_id: i64) -> i64 {
    -1_000_000_000_000 - bare_id
}

/// The bare channel id of a Bot API chat id (`-100…`).
pub fn bare_channel_id(chat_id: i64) -> i64 {
    -chat_id - 1_000_000_000_000
}

impl Store {
    /// Creates the account (status `new`) unless it exists; records the phone.
    pub async fn ensure_reader_account(
        &self,
        name: &str,
        phone: Option<&str>,
    ) -> Result<(), StoreError> {
        const OP: &str = "create reader account";
        let c = self.conn(OP).await?;
        c.execute(
            "INSERT INTO reader_accounts (name, phone) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET phone = COALESCE($2, reader_accounts.phone),
                                               updated_at = now()",
            &[&name, &phone],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Every reader account with its lease and channel counts, by name.
    pub async fn reader_accounts(&self) -> Result<Vec<AccountRow>, StoreError> {
        const OP: &str = "list reader accounts";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT a.name, a.phone, a.user_id, a.status, a.lost_reason,
                        CASE WHEN a.lease_expires_at > now() THEN a.lease_holder END,
                        a.lease_expires_at, a.lease_generation,
                        (SELECT count(*) FROM reader_assignments r WHERE r.account = a.name),
                        (SELECT count(*) FROM reader_assignments r
                          WHERE r.account = a.name AND r.joined),
                        CASE WHEN a.flood_wait_until > now() THEN a.flood_wait_until END,
                        a.flood_wait_method,
                        b.resolves, b.resolve_limit, b.joins, b.join_limit, b.joins_stopped
                   FROM reader_accounts a
                   LEFT JOIN reader_budgets b
                     ON b.account = a.name AND b.day = (now() AT TIME ZONE 'UTC')::date
                  ORDER BY a.name",
                &[],
            )
            .await
            .op(OP)?;
        Ok(rows
            .iter()
            .map(|r| AccountRow {
                name: r.get(0),
                phone: r.get(1),
                user_id: r.get(2),
                status: r.get(3),
                lost_reason: r.get(4),
                lease_holder: r.get(5),
                lease_expires_at: r.get(6),
                lease_generation: r.get(7),
                channels: r.get(8),
                joined: r.get(9),
                flood_wait: r
                    .get::<_, Option<DateTime<Utc>>>(10)
                    .map(|t| (t, r.get::<_, Option<String>>(11).unwrap_or_default())),
                resolves_today: r
                    .get::<_, Option<i32>>(12)
                    .map(|used| (used, r.get::<_, i32>(13))),
                joins_today: r
                    .get::<_, Option<i32>>(14)
                    .map(|used| (used, r.get::<_, i32>(15))),
                joins_stopped: r.get(16),
            })
            .collect())
    }

    /// The stored session of an account, `None` when there is no account.
    pub async fn load_session(&self, name: &str) -> Result<Option<StoredSession>, StoreError> {
        const OP: &str = "load reader session";
        let c = self.conn(OP).await?;
        let Some(row) = c
            .query_opt(
                "SELECT home_dc, user_id, user_access_hash, update_state
                   FROM reader_accounts WHERE name = $1",
                &[&name],
            )
            .await
            .op(OP)?
        else {
            return Ok(None);
        };
        let dcs = c
            .query(
                "SELECT dc_id, ipv4, ipv6, auth_key_enc FROM reader_session_dcs
                  WHERE account = $1 ORDER BY dc_id",
                &[&name],
            )
            .await
            .op(OP)?
            .iter()
            .map(|r| StoredDc {
                dc_id: r.get(0),
                ipv4: r.get(1),
                ipv6: r.get(2),
                auth_key_enc: r.get(3),
            })
            .collect();
        let user = match (row.get::<_, Option<i64>>(1), row.get::<_, Option<i64>>(2)) {
            (Some(id), Some(hash)) => Some((id, hash)),
            _ => None,
        };
        Ok(Some(StoredSession {
            home_dc: row.get(0),
            dcs,
            user,
            update_state: row.get(3),
        }))
    }

    /// Stores one DC of a session (its key already encrypted).
    pub async fn save_session_dc(&self, name: &str, dc: &StoredDc) -> Result<(), StoreError> {
        const OP: &str = "save reader session DC";
        let c = self.conn(OP).await?;
        c.execute(
            "INSERT INTO reader_session_dcs (account, dc_id, ipv4, ipv6, auth_key_enc)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (account, dc_id) DO UPDATE
                SET ipv4 = $3, ipv6 = $4, auth_key_enc = $5",
            &[&name, &dc.dc_id, &dc.ipv4, &dc.ipv6, &dc.auth_key_enc],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Sets the session's home DC.
    pub async fn set_session_home_dc(&self, name: &str, dc: i32) -> Result<(), StoreError> {
        const OP: &str = "save reader home DC";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE reader_accounts SET home_dc = $2, updated_at = now() WHERE name = $1",
            &[&name, &dc],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Records the signed-in user: the account is `active` from now on.
    pub async fn set_session_user(
        &self,
        name: &str,
        user_id: i64,
        access_hash: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "save reader user";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE reader_accounts SET user_id = $2, user_access_hash = $3, status = 'active',
                    lost_reason = NULL, updated_at = now()
              WHERE name = $1",
            &[&name, &user_id, &access_hash],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Stores grammers' update state.
    pub async fn set_session_update_state(
        &self,
        name: &str,
        state: &serde_json::Value,
    ) -> Result<(), StoreError> {
        const OP: &str = "save reader update state";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE reader_accounts SET update_state = $2 WHERE name = $1",
            &[&name, state],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Ends an account's session on our side: `logged_out` (by the operator)
    /// or `lost` (Telegram ended it), its auth keys erased, its lease and
    /// channels released. Returns false for an unknown account.
    pub async fn end_reader_session(
        &self,
        name: &str,
        status: &str,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "end reader session";
        let mut c = self.conn(OP).await?;
        let tx = c.transaction().await.op(OP)?;
        let n = tx
            .execute(
                "UPDATE reader_accounts SET status = $2, lost_reason = $3, user_id = NULL,
                        user_access_hash = NULL, update_state = NULL, lease_holder = NULL,
                        lease_expires_at = NULL, updated_at = now()
                  WHERE name = $1",
                &[&name, &status, &reason],
            )
            .await
            .op(OP)?;
        tx.execute(
            "UPDATE reader_session_dcs SET auth_key_enc = NULL WHERE account = $1",
            &[&name],
        )
        .await
        .op(OP)?;
        tx.execute(
            "DELETE FROM reader_assignments WHERE account = $1",
            &[&name],
        )
        .await
        .op(OP)?;
        tx.commit().await.op(OP)?;
        Ok(n == 1)
    }

    /// Takes an active account's lease for `holder` when it is free, has
    /// run out at least one `ttl` ago (the taker's wait: the old holder
    /// stopped at its local deadline, before the lease ran out), or is
    /// already `holder`'s; returns the new generation, or `None` when
    /// another holder has it or may still be stopping.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<i64>, StoreError> {
        const OP: &str = "take reader lease";
        let c = self.conn(OP).await?;
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        // One statement: two processes racing for the lease cannot both win
        // (the row lock serialises them, and the loser's WHERE sees the
        // winner's unexpired lease).
        let row = c
            .query_opt(
                "UPDATE reader_accounts
                    SET lease_holder = $2, lease_generation = lease_generation + 1,
                        lease_expires_at = now() + $3 * interval '1 millisecond'
                  WHERE name = $1 AND status = 'active'
                    AND (lease_expires_at IS NULL
                         OR lease_expires_at <= now() - $3 * interval '1 millisecond'
                         OR lease_holder = $2)
                  RETURNING lease_generation",
                &[&name, &holder, &(ttl_ms as f64)],
            )
            .await
            .op(OP)?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Renews a lease held by `holder` at `generation`; false when it was
    /// lost (taken by another after it ran out, or the account ended).
    pub async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        generation: i64,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        const OP: &str = "renew reader lease";
        let c = self.conn(OP).await?;
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let n = c
            .execute(
                "UPDATE reader_accounts
                    SET lease_expires_at = now() + $4 * interval '1 millisecond'
                  WHERE name = $1 AND lease_holder = $2 AND lease_generation = $3
                    AND status = 'active'",
                &[&name, &holder, &generation, &(ttl_ms as f64)],
            )
            .await
            .op(OP)?;
        Ok(n == 1)
    }

    /// Gives a lease back (at shutdown), so another process need not wait for the TTL.
    pub async fn release_lease(
        &self,
        name: &str,
        holder: &str,
        generation: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "release reader lease";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE reader_accounts SET lease_holder = NULL, lease_expires_at = NULL
              WHERE name = $1 AND lease_holder = $2 AND lease_generation = $3",
            &[&name, &holder, &generation],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Gives a lease back for another instance to take (accounts moving
    /// towards a newcomer): the holder disconnected first; the lease is
    /// left expiring now, so the taker still waits one TTL after it
    /// (`take_lease`, `lease_free`) before it connects.
    pub async fn hand_over_lease(
        &self,
        name: &str,
        holder: &str,
        generation: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "hand a reader lease over";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE reader_accounts SET lease_holder = NULL, lease_expires_at = now()
              WHERE name = $1 AND lease_holder = $2 AND lease_generation = $3",
            &[&name, &holder, &generation],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Every channel assignment.
    pub async fn reader_assignments(&self) -> Result<Vec<Assignment>, StoreError> {
        const OP: &str = "list reader assignments";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT channel_id, account, joined FROM reader_assignments ORDER BY channel_id",
                &[],
            )
            .await
            .op(OP)?;
        Ok(rows
            .iter()
            .map(|r| Assignment {
                channel_id: r.get(0),
                account: r.get(1),
                joined: r.get(2),
            })
            .collect())
    }

    /// One channel's assignment, if it has one (a channel's first read
    /// looks up its own row, not every channel's).
    pub async fn reader_assignment(
        &self,
        channel_id: i64,
    ) -> Result<Option<Assignment>, StoreError> {
        const OP: &str = "read a reader assignment";
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                "SELECT channel_id, account, joined FROM reader_assignments WHERE channel_id = $1",
                &[&channel_id],
            )
            .await
            .op(OP)?;
        Ok(row.map(|r| Assignment {
            channel_id: r.get(0),
            account: r.get(1),
            joined: r.get(2),
        }))
    }

    /// Assigns a channel to an account (moving it, not joined, if another had it).
    pub async fn assign_channel(&self, channel_id: i64, account: &str) -> Result<(), StoreError> {
        const OP: &str = "assign channel";
        let c = self.conn(OP).await?;
        c.execute(
            "INSERT INTO reader_assignments (channel_id, account) VALUES ($1, $2)
             ON CONFLICT (channel_id) DO UPDATE
                SET account = $2, joined = false, assigned_at = now()
              WHERE reader_assignments.account <> $2",
            &[&channel_id, &account],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Records that `account` joined (or left) the channel.
    pub async fn set_channel_joined(
        &self,
        channel_id: i64,
        account: &str,
        joined: bool,
    ) -> Result<(), StoreError> {
        const OP: &str = "mark channel joined";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE reader_assignments
                SET joined = $3, left_at = CASE WHEN $3 THEN NULL ELSE left_at END
              WHERE channel_id = $1 AND account = $2",
            &[&channel_id, &account, &joined],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// The channels assigned to `account` that nobody subscribes to any
    /// more (no active subscription), after marking since when: a channel
    /// found unwanted gets `unwanted_since = now()`, one wanted again loses
    /// it. `due`: joined and unwanted for longer than `grace_s`.
    pub async fn unwanted_assignments(
        &self,
        account: &str,
        grace_s: f64,
    ) -> Result<Vec<UnwantedAssignment>, StoreError> {
        const OP: &str = "mark unwanted reader channels";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE reader_assignments r
                SET unwanted_since = CASE WHEN w.wanted THEN NULL ELSE now() END
               FROM (SELECT a.channel_id,
                            EXISTS (SELECT 1 FROM subscriptions s
                                     WHERE s.channel_id = a.channel_id AND s.is_active) AS wanted
                       FROM reader_assignments a WHERE a.account = $1) w
              WHERE r.channel_id = w.channel_id AND r.account = $1
                AND w.wanted = (r.unwanted_since IS NOT NULL)",
            &[&account],
        )
        .await
        .op(OP)?;
        let rows = c
            .query(
                "SELECT r.channel_id, -c.telegram_id - 1000000000000,
                        COALESCE(h.access_hash, c.access_hash), r.joined,
                        r.unwanted_since < now() - make_interval(secs => $2)
                   FROM reader_assignments r
                   JOIN channels c ON c.id = r.channel_id
                   LEFT JOIN reader_peer_hashes h
                          ON h.account = r.account
                         AND h.peer_id = -c.telegram_id - 1000000000000
                  WHERE r.account = $1 AND r.unwanted_since IS NOT NULL
                    AND c.telegram_id IS NOT NULL
                  ORDER BY r.unwanted_since, r.channel_id",
                &[&account, &grace_s],
            )
            .await
            .op(OP)?;
        Ok(rows
            .iter()
            .map(|r| {
                let joined: bool = r.get(3);
                let past: bool = r.get(4);
                UnwantedAssignment {
                    channel_id: r.get(0),
                    peer_id: r.get(1),
                    access_hash: r.get(2),
                    due: joined && past,
                }
            })
            .collect())
    }

    /// `account` left the channel (or was no member): not joined, and when.
    pub async fn record_channel_left(
        &self,
        channel_id: i64,
        account: &str,
    ) -> Result<(), StoreError> {
        const OP: &str = "record channel left";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE reader_assignments SET joined = false, left_at = now()
              WHERE channel_id = $1 AND account = $2",
            &[&channel_id, &account],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// What a reader needs to read the channel; `None` while it is not
    /// resolved (no id or access hash).
    pub async fn reader_channel(
        &self,
        channel_id: i64,
    ) -> Result<Option<ReaderChannel>, StoreError> {
        const OP: &str = "read channel for reader";
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                "SELECT telegram_id, access_hash, protected, start_message_id FROM channels
                  WHERE id = $1 AND telegram_id IS NOT NULL AND access_hash IS NOT NULL",
                &[&channel_id],
            )
            .await
            .op(OP)?;
        Ok(row.map(|r| ReaderChannel {
            channel_id,
            bare_id: bare_channel_id(r.get(0)),
            access_hash: r.get(1),
            protected: r.get(2),
            start_message_id: r.get(3),
        }))
    }
}
