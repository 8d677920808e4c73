//! Validation of a loaded configuration: values that parse but cannot work
//! (a range, a URL the build cannot serve), named by their dotted key. Pure:
//! connects to nothing.

use super::*;

/// `key` is wrong: `message` says how.
fn bad(key: &str, message: impl Into<String>) -> Result<(), (String, String)> {
    Err((key.to_owned(), message.into()))
}

/// `key`'s `value` must lie in `min..=max`.
fn range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), (String, String)> {
    if value < min || value > max {
        bad(
            key,
            format!("out of range: {value} is not between {min} and {max}"),
        )
    } else {
        Ok(())
    }
}

impl Config {
    /// Checks values that parse but cannot work; returns the dotted key and
    /// what is wrong. Pure: connects to nothing. One section at a time, in
    /// the order of the file.
    pub fn validate(&self) -> Result<(), (String, String)> {
        self.validate_database()?;
        self.validate_redis()?;
        self.validate_telegram()?;
        self.validate_limits()?;
        self.validate_http()?;
        self.validate_delivery()?;
        self.validate_log()?;
        self.validate_reader()?;
        self.validate_instance()?;
        Ok(())
    }

    fn validate_database(&self) -> Result<(), (String, String)> {
        let db = &self.database;
        // Parsed here as every connection will use it, so a configuration
        // that loads always connects the way it says.
        if let Err(e) = db.primary() {
            bad("database.url", e.to_string())?;
        }
        if let Err((i, e)) = db.replicas() {
            bad(&format!("database.replica_urls[{i}]"), e.to_string())?;
        }
        range("database.pool_max", db.pool_max, 1, 10_000)?;
        range(
            "database.pool_wait_timeout_ms",
            db.pool_wait_timeout_ms,
            1,
            600_000,
        )?;
        range(
            "database.connect_timeout_ms",
            db.connect_timeout_ms,
            1,
            600_000,
        )?;
        range(
            "database.statement_timeout_ms",
            db.statement_timeout_ms,
            0,
            3_600_000,
        )?;
        range("database.retention_days", db.retention_days, 1, 3_650)?;
        range(
            "database.partitions_ahead_days",
            db.partitions_ahead_days,
            1,
            366,
        )?;
        Ok(())
    }

    fn validate_redis(&self) -> Result<(), (String, String)> {
        let redis = &self.redis;
        match url::Url::parse(redis.url.expose()) {
            Ok(u) if matches!(u.scheme(), "redis" | "rediss" | "unix" | "redis+unix") => {}
            Ok(u) => bad(
                "redis.url",
                format!(
                    "unsupported scheme `{}` (use redis://, rediss:// or unix://)",
                    u.scheme()
                ),
            )?,
            Err(e) => bad("redis.url", format!("unparsable URL: {e}"))?,
        }
        // What the scheme allows, this build must serve: a `rediss://` URL
        // accepted here and refused by the client later ran without Redis
        // dedup, silently. (The client's error names no part of the URL.)
        if let Err(e) = redis::Client::open(redis.url.expose()) {
            bad(
                "redis.url",
                format!(
                    "this build cannot use it: {:?}: {}",
                    e.kind(),
                    e.detail().unwrap_or("")
                ),
            )?;
        }
        range("redis.dedup_ttl_s", redis.dedup_ttl_s, 1, 365 * 86_400)?;
        if redis.key_prefix.chars().any(char::is_whitespace) {
            bad("redis.key_prefix", "must not contain whitespace")?;
        }
        Ok(())
    }

    fn validate_telegram(&self) -> Result<(), (String, String)> {
        let tg = &self.telegram;
        match url::Url::parse(&tg.bot_api_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
            Ok(_) => bad(
                "telegram.bot_api_url",
                "must be an http:// or https:// URL with a host",
            )?,
            Err(e) => bad("telegram.bot_api_url", format!("unparsable URL: {e}"))?,
        }
        for (i, token) in tg.bot_tokens.iter().enumerate() {
            // `<bot id>:<secret>`; the message never repeats the token, only
            // which part is wrong. @BotFather's secrets are 35 characters;
            // fewer than 20 is surely a typo or a placeholder.
            let key = format!("telegram.bot_tokens[{i}]");
            match token.expose().split_once(':') {
                Some((id, _)) if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) => bad(
                    &key,
                    "not a bot token: the part before `:` must be the bot's numeric id \
                     (expected `<bot id>:<secret>` as @BotFather gives it)",
                )?,
                Some((_, secret)) if secret.chars().count() < 20 => bad(
                    &key,
                    format!(
                        "not a bot token: the secret after `:` has {} characters, and \
                         @BotFather's have 35 (copy the whole token)",
                        secret.chars().count()
                    ),
                )?,
                Some(_) => {}
                None => bad(
                    &key,
                    "not a bot token: no `:` (expected `<bot id>:<secret>` as @BotFather gives it)",
                )?,
            }
        }
        if tg.admins.iter().any(|&id| id <= 0) {
            bad("telegram.admins", "user ids are positive integers")?;
        }
        range("telegram.api_id", tg.api_id, 0, i32::MAX)?;
        if tg.api_id != 0 && tg.api_hash.is_none() {
            bad("telegram.api_hash", "required when telegram.api_id is set")?;
        }
        if let Some(hash) = &tg.api_hash {
            let h = hash.expose();
            if h.len() != 32 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                bad("telegram.api_hash", "must be 32 hexadecimal characters")?;
            }
        }
        if tg.relay_chat_id.is_some_and(|id| id >= 0) {
            bad(
                "telegram.relay_chat_id",
                "a channel's chat id is negative (-100…)",
            )?;
        }
        // teloxide waits 10 s after a 5xx before it returns the answer; a
        // shorter timeout would turn every 5xx into an ambiguous send.
        range(
            "telegram.request_timeout_ms",
            tg.request_timeout_ms,
            11_000,
            600_000,
        )?;
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), (String, String)> {
        let l = &self.limits;
        range(
            "limits.per_bot_per_second",
            l.per_bot_per_second,
            0.01,
            1_000_000.0,
        )?;
        range(
            "limits.per_chat_per_second",
            l.per_chat_per_second,
            0.01,
            1_000_000.0,
        )?;
        range(
            "limits.per_group_per_minute",
            l.per_group_per_minute,
            0.01,
            1_000_000.0,
        )?;
        range(
            "limits.paid_per_bot_per_second",
            l.paid_per_bot_per_second,
            0.01,
            1_000_000.0,
        )?;
        range(
            "limits.max_subscriptions_per_user",
            l.max_subscriptions_per_user,
            1,
            100_000,
        )?;
        range(
            "limits.bot_commands_per_minute",
            l.bot_commands_per_minute,
            1,
            100_000,
        )?;
        range(
            "limits.new_channels_per_user_per_day",
            l.new_channels_per_user_per_day,
            1,
            100_000,
        )?;
        range(
            "limits.pending_names_per_user",
            l.pending_names_per_user,
            1,
            100_000,
        )?;
        range(
            "limits.backfills_per_user_per_day",
            l.backfills_per_user_per_day,
            1,
            100_000,
        )?;
        Ok(())
    }

    fn validate_http(&self) -> Result<(), (String, String)> {
        let h = &self.http;
        if let Some(token) = &h.api_token
            && token.expose().len() < 16
        {
            bad("http.api_token", "too short: use at least 16 characters")?;
        }
        range(
            "http.body_limit_bytes",
            h.body_limit_bytes,
            64,
            16 * 1024 * 1024,
        )?;
        range(
            "http.request_timeout_ms",
            h.request_timeout_ms,
            100,
            600_000,
        )?;
        range(
            "http.handler_timeout_ms",
            h.handler_timeout_ms,
            100,
            600_000,
        )?;
        range("http.workers", h.workers, 0, 256)?;
        Ok(())
    }

    fn validate_delivery(&self) -> Result<(), (String, String)> {
        let d = &self.delivery;
        range(
            "delivery.poll_min_interval_ms",
            d.poll_min_interval_ms,
            10,
            3_600_000,
        )?;
        range(
            "delivery.poll_max_interval_ms",
            d.poll_max_interval_ms,
            10,
            3_600_000,
        )?;
        if d.poll_max_interval_ms < d.poll_min_interval_ms {
            bad(
                "delivery.poll_max_interval_ms",
                "must not be less than delivery.poll_min_interval_ms",
            )?;
        }
        range("delivery.max_in_flight", d.max_in_flight, 1, 100_000)?;
        range(
            "delivery.queue_capacity",
            d.queue_capacity,
            100,
            100_000_000,
        )?;
        range(
            "delivery.queue_per_destination",
            d.queue_per_destination,
            1,
            d.queue_capacity,
        )?;
        range("delivery.db_batch_size", d.db_batch_size, 1, 100_000)?;
        range("delivery.db_writes_in_flight", d.db_writes_in_flight, 1, 16)?;
        range("delivery.max_db_backlog", d.max_db_backlog, 100, 10_000_000)?;
        range(
            "delivery.db_flush_interval_ms",
            d.db_flush_interval_ms,
            1,
            60_000,
        )?;
        range("delivery.sweep_interval_s", d.sweep_interval_s, 1, 86_400)?;
        range(
            "delivery.notice_debounce_ms",
            d.notice_debounce_ms,
            0,
            3_600_000,
        )?;
        range(
            "delivery.shutdown_deadline_ms",
            d.shutdown_deadline_ms,
            100,
            3_600_000,
        )?;
        Ok(())
    }

    fn validate_log(&self) -> Result<(), (String, String)> {
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            bad("log.level", format!("not a tracing filter: {e}"))?;
        }
        Ok(())
    }

    fn validate_reader(&self) -> Result<(), (String, String)> {
        let r = &self.reader;
        if let Some(key) = &r.session_key
            && key.expose().len() < 16
        {
            bad(
                "reader.session_key",
                "too short: use at least 16 random characters",
            )?;
        }
        range(
            "reader.max_channels_per_account",
            r.max_channels_per_account,
            0,
            1_000,
        )?;
        range(
            "reader.resolve_interval_ms",
            r.resolve_interval_ms,
            10,
            86_400_000,
        )?;
        range(
            "reader.join_interval_ms",
            r.join_interval_ms,
            10,
            86_400_000,
        )?;
        range("reader.resolves_per_day", r.resolves_per_day, 0, 1_000_000)?;
        range("reader.joins_first_day", r.joins_first_day, 0, 1_000_000)?;
        range("reader.joins_per_day", r.joins_per_day, 0, 1_000_000)?;
        if r.joins_first_day > r.joins_per_day {
            bad(
                "reader.joins_first_day",
                "must not exceed reader.joins_per_day (the ramp only grows)",
            )?;
        }
        range("reader.join_ramp_days", r.join_ramp_days, 0, 365)?;
        range("reader.poll_interval_s", r.poll_interval_s, 1, 86_400)?;
        range(
            "reader.history_per_second",
            r.history_per_second,
            0.01,
            1_000.0,
        )?;
        range("reader.verify_interval_s", r.verify_interval_s, 1, 86_400)?;
        range(
            "reader.max_buffered_per_channel",
            r.max_buffered_per_channel,
            1,
            1_000_000,
        )?;
        range("reader.quiet_check_min_s", r.quiet_check_min_s, 1, 86_400)?;
        range("reader.orphan_grace_s", r.orphan_grace_s, 1, 30 * 86_400)?;
        range("reader.lease_ttl_s", r.lease_ttl_s, 3, 3_600)?;
        range(
            "reader.updates_capacity",
            r.updates_capacity,
            100,
            10_000_000,
        )?;
        if let Err((key, why)) = super::data_centre::DataCentres::from_config(r) {
            bad(key, why)?;
        }
        Ok(())
    }

    fn validate_instance(&self) -> Result<(), (String, String)> {
        let i = &self.instance;
        if let Some(id) = &i.id
            && (id.trim().is_empty() || id.len() > 200)
        {
            bad("instance.id", "must be 1 to 200 characters")?;
        }
        range("instance.lease_ttl_s", i.lease_ttl_s, 2, 3_600)?;
        for (key, v) in [
            ("instance.host_name", &i.host_name),
            ("instance.machine_id", &i.machine_id),
            ("instance.boot_id", &i.boot_id),
        ] {
            if let Some(v) = v
                && (v.trim().is_empty() || v.len() > 200)
            {
                bad(key, "must be 1 to 200 characters")?;
            }
        }
        Ok(())
    }
}
