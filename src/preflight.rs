//! What an operator needs checked before trusting a start: each bot token
//! answers `getMe` (a revoked one is named by its bot id, never by its
//! secret), no webhook silently blocks `getUpdates`, and — for
//! `kuryer check-config --connect` — the database and Redis answer.

use std::time::Duration;

use teloxide::Bot;
use teloxide::RequestError;
use teloxide::requests::Requester;

use crate::config::Config;
use crate::secret::Secret;
use crate::store::Store;
use crate::telegram::{bot_id_of, build_bots};

/// How long one check may take in `check-config --connect`.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a bot token cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BotCheckError {
    /// Telegram answered and refused the token (revoked, or never valid).
    #[error("Telegram refused the token of bot {bot_id} (revoked or wrong): {reason}")]
    Refused { bot_id: i64, reason: String },
    /// No answer that says anything about the token (network, 5xx).
    #[error("the Bot API did not answer for bot {bot_id}: {reason}")]
    Unreachable { bot_id: i64, reason: String },
    /// Telegram answered, in a shape this version cannot read: the Bot API
    /// changed (a field missing or of another type), not the network.
    #[error(
        "Telegram answered {method} for bot {bot_id} with something this version of kuryer cannot read ({field}): the Bot API changed; upgrade kuryer"
    )]
    Unreadable {
        bot_id: i64,
        method: &'static str,
        field: String,
    },
}

impl BotCheckError {
    /// Worth trying again (the network), as opposed to a token to replace.
    pub fn is_retriable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }
}

/// A token that answered `getMe`.
#[derive(Debug, Clone)]
pub struct BotIdentity {
    pub bot_id: i64,
    pub username: String,
}

/// An error's text with the token cut out: a network error from the HTTP
/// client can carry the request URL, and the token is part of that URL.
fn scrubbed(e: &RequestError, token: &str) -> String {
    let text = e.to_string();
    if token.is_empty() {
        text
    } else {
        text.replace(token, "***")
    }
}

fn classify(e: &RequestError, token: &Secret, method: &'static str) -> BotCheckError {
    let bot_id = bot_id_of(token.expose());
    if let RequestError::InvalidJson { source, raw } = e {
        return BotCheckError::Unreadable {
            bot_id,
            method,
            field: result_field(method, raw)
                .unwrap_or_else(|| unreadable_field(&source.to_string())),
        };
    }
    let reason = scrubbed(e, token.expose());
    match e {
        RequestError::Api(_) => BotCheckError::Refused { bot_id, reason },
        _ => BotCheckError::Unreachable { bot_id, reason },
    }
}

/// What serde could not read, named: "field `x` missing" from "missing
/// field `x` at …", else serde's words without the position (the raw
/// answer is never repeated: it is Telegram's, not ours to log).
fn unreadable_field(serde: &str) -> String {
    let text = serde.split(" at line ").next().unwrap_or(serde);
    match text.strip_prefix("missing field ") {
        Some(field) => format!("field {field} missing"),
        None => text.to_owned(),
    }
}

/// teloxide reads the envelope as an untagged enum, whose error names no
/// field: the answer's `result` is read again as the method's type, and
/// serde's error for that names it.
fn result_field(method: &str, raw: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(raw).ok()?;
    let result = v.get("result")?.clone();
    let err = match method {
        "getMe" => serde_json::from_value::<teloxide::types::Me>(result).err(),
        "getWebhookInfo" => serde_json::from_value::<teloxide::types::WebhookInfo>(result).err(),
        _ => None,
    }?;
    Some(unreadable_field(&err.to_string()))
}

/// Methods whose answers this process could not read (for `/readyz`).
static UNREADABLE: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

/// The methods whose answers could not be read since the start: `/readyz`
/// is degraded while any is listed.
pub fn unreadable_methods() -> Vec<&'static str> {
    UNREADABLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

fn mark_unreadable(method: &'static str) {
    let mut m = UNREADABLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !m.contains(&method) {
        m.push(method);
    }
}

/// `getMe` for one bot.
pub async fn get_me(bot: &Bot, token: &Secret) -> Result<BotIdentity, BotCheckError> {
    let me = bot
        .get_me()
        .await
        .map_err(|e| classify(&e, token, "getMe"))?;
    Ok(BotIdentity {
        bot_id: me.user.id.0 as i64,
        username: me.user.username.clone().unwrap_or_default(),
    })
}

/// Removes a webhook when one is set: Telegram refuses `getUpdates` while it
/// is, and kuryer would read no channel post at all. Returns whether one was
/// removed.
pub async fn clear_webhook(bot: &Bot, token: &Secret) -> Result<bool, BotCheckError> {
    let info = bot
        .get_webhook_info()
        .await
        .map_err(|e| classify(&e, token, "getWebhookInfo"))?;
    let Some(url) = info.url else {
        return Ok(false);
    };
    bot.delete_webhook()
        .await
        .map_err(|e| classify(&e, token, "deleteWebhook"))?;
    // The host only: a webhook URL often carries a secret path.
    tracing::warn!(
        bot_id = bot_id_of(token.expose()),
        webhook_host = url.host_str().unwrap_or(""),
        pending_updates = info.pending_update_count,
        "A webhook was set on this bot; it blocks getUpdates, so it was deleted."
    );
    Ok(true)
}

/// The daemon's start-up check of every token: `getMe`, then the webhook.
/// An unreachable Bot API is retried (with a backoff up to 30 s) for as
/// long as systemd's start timeout allows, since `READY=1` must not come
/// before Telegram answered. A refused token is an ERROR naming its bot id
/// (never the secret), and the start goes on with the others, as a token
/// revoked at run time halts only its bot; when Telegram refuses every
/// token there is nothing to run and the start fails.
pub async fn check_bots_at_start(
    bots: &[Bot],
    tokens: &[Secret],
) -> Result<Vec<BotIdentity>, BotCheckError> {
    let mut accepted = Vec::with_capacity(bots.len());
    let mut refused = None;
    for (bot, token) in bots.iter().zip(tokens) {
        let mut delay = Duration::from_millis(500);
        let result = loop {
            match get_me(bot, token).await {
                Err(e) if e.is_retriable() => {
                    tracing::warn!(
                        bot_id = bot_id_of(token.expose()),
                        retry_in_ms = delay.as_millis() as u64,
                        error_kind = "bot_api_unreachable",
                        error = %e,
                        "The Bot API does not answer getMe; trying again."
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
                other => break other,
            }
        };
        match result {
            Ok(me) => {
                tracing::info!(bot_id = me.bot_id, username = %me.username, "Bot token accepted by Telegram.");
                accepted.push(me);
            }
            // Telegram answered: the token works, the answer's shape changed.
            // The bot runs (its id is in its token), said at ERROR and on
            // `/readyz` (degraded), never as "unreachable".
            Err(BotCheckError::Unreadable {
                bot_id,
                method,
                field,
            }) => {
                kuryer_actors::telemetry::events::bot_api_unreadable(bot_id, method, &field);
                mark_unreadable(method);
                accepted.push(BotIdentity {
                    bot_id,
                    username: String::new(),
                });
            }
            Err(e) => {
                kuryer_actors::telemetry::events::bot_token_refused_at_start(
                    bot_id_of(token.expose()),
                    &e,
                );
                refused.get_or_insert(e);
            }
        }
    }
    if accepted.is_empty()
        && let Some(e) = refused
    {
        return Err(e);
    }
    // Every bot runs its own getUpdates loop, which a webhook would block.
    for (bot, token) in bots.iter().zip(tokens) {
        if accepted
            .iter()
            .any(|me| me.bot_id == bot_id_of(token.expose()))
        {
            clear_webhook(bot, token).await?;
        }
    }
    Ok(accepted)
}

/// One line of `check-config --connect`.
#[derive(Debug, Clone)]
pub struct CheckLine {
    pub what: String,
    pub ok: bool,
    /// Works, but something will not (marked `!`; the exit status stays 0).
    pub warning: bool,
    pub detail: String,
}

impl std::fmt::Display for CheckLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = match (self.ok, self.warning) {
            (true, false) => "✓",
            (true, true) => "!",
            (false, _) => "✗",
        };
        write!(f, "{mark} {}: {}", self.what, self.detail)
    }
}

/// Connects to the database, Redis and the Bot API with each token; one
/// line per check, in that order.
pub async fn check_connections(cfg: &Config) -> Vec<CheckLine> {
    let mut lines = Vec::new();
    let database = check_database(cfg).await;
    let database_ok = database.ok;
    lines.push(database);
    if database_ok && let Some(line) = check_readers(cfg).await {
        lines.push(line);
    }
    lines.push(check_redis(cfg).await);
    let bots = match build_bots(
        &cfg.telegram.bot_tokens,
        &cfg.telegram.bot_api_url,
        Duration::from_millis(cfg.telegram.request_timeout_ms).min(CHECK_TIMEOUT),
    ) {
        Ok(b) => b,
        Err(e) => {
            lines.push(CheckLine {
                what: "telegram".into(),
                ok: false,
                warning: false,
                detail: e.to_string(),
            });
            return lines;
        }
    };
    if bots.is_empty() {
        lines.push(CheckLine {
            what: "telegram".into(),
            ok: false,
            warning: false,
            detail: "telegram.bot_tokens is empty".into(),
        });
    }
    for (bot, token) in bots.iter().zip(&cfg.telegram.bot_tokens) {
        let bot_id = bot_id_of(token.expose());
        let what = format!("bot {bot_id}");
        let line = match tokio::time::timeout(CHECK_TIMEOUT, get_me(bot, token)).await {
            Ok(Ok(me)) => CheckLine {
                what,
                ok: true,
                warning: false,
                detail: format!("getMe answered: @{}", me.username),
            },
            Ok(Err(e)) => CheckLine {
                what,
                ok: false,
                warning: false,
                detail: e.to_string(),
            },
            Err(_) => CheckLine {
                what,
                ok: false,
                warning: false,
                detail: format!("no answer within {} s", CHECK_TIMEOUT.as_secs()),
            },
        };
        lines.push(line);
    }
    lines
}

/// Channels that wait for a reader account that does not exist: a warning
/// line (`run` would start, and those channels would stay silent).
async fn check_readers(cfg: &Config) -> Option<CheckLine> {
    let store = Store::new(&cfg.database).ok()?;
    let waiting = tokio::time::timeout(CHECK_TIMEOUT, store.channels_waiting_for_reader(5)).await;
    store.close();
    let (n, names) = waiting.ok()?.ok()?;
    (n > 0).then(|| CheckLine {
        what: "reader accounts".into(),
        ok: true,
        warning: true,
        detail: format!(
            "none is signed in, and {n} subscribed channel(s) our bot does not administer wait for one ({}): `kuryer login` adds one, or make the bot an administrator of the channel",
            names.join(", ")
        ),
    })
}

async fn check_database(cfg: &Config) -> CheckLine {
    let what = "database".to_owned();
    let store = match Store::new(&cfg.database) {
        Ok(s) => s,
        Err(e) => {
            return CheckLine {
                what,
                ok: false,
                warning: false,
                detail: e.to_string(),
            };
        }
    };
    // Never creates nor migrates: a missing database, or a schema behind
    // this kuryer, is said with the command that makes it right.
    let existing = match cfg.database.primary() {
        Ok(p) => tokio::time::timeout(CHECK_TIMEOUT, crate::store::check_existing(&p)).await,
        Err(_) => Ok(Ok(())),
    };
    let schema = match existing {
        Ok(Err(e @ crate::store::ExistingError::Missing { .. })) => {
            store.close();
            return CheckLine {
                what,
                ok: false,
                warning: false,
                detail: e.to_string(),
            };
        }
        Ok(Err(e @ crate::store::ExistingError::Behind { .. })) => {
            format!("; {e} (`kuryer run` applies them too)")
        }
        _ => String::new(),
    };
    let line = match tokio::time::timeout(CHECK_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => CheckLine {
            what,
            ok: true,
            warning: false,
            detail: format!("connected, SELECT 1 answered{schema}"),
        },
        Ok(Err(e)) => CheckLine {
            what,
            ok: false,
            warning: false,
            detail: e.to_string(),
        },
        Err(_) => CheckLine {
            what,
            ok: false,
            warning: false,
            detail: format!("no answer within {} s", CHECK_TIMEOUT.as_secs()),
        },
    };
    store.close();
    line
}

async fn check_redis(cfg: &Config) -> CheckLine {
    let what = "redis".to_owned();
    let url = cfg.redis.url.expose();
    let fail = |detail: String| CheckLine {
        what: "redis".into(),
        ok: false,
        warning: false,
        // A Redis URL may hold a password; its errors are not expected to
        // quote it, but nothing is left to chance.
        detail: detail.replace(url, "***"),
    };
    let client = match redis::Client::open(url) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let ping = async {
        let mut c = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut c).await
    };
    match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
        Ok(Ok(_)) => CheckLine {
            what,
            ok: true,
            warning: false,
            detail: "connected, PING answered".into(),
        },
        Ok(Err(e)) => fail(e.to_string()),
        Err(_) => fail(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
    }
}
