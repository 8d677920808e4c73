//! One reader account's connection: a grammers client over its PostgreSQL
//! session, and every call made through a gate that keeps Telegram's flood
//! waits. A `FLOOD_WAIT_X` pauses that account's calls of that method for
//! exactly X seconds: until then a call is refused at once (never sent
//! early, never retried blindly), and each wait is counted per account and
//! method. grammers' own retry policy is off so the wait reaches us.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grammers_client::sender::{ConnectionParams, NoRetries};
use grammers_client::session::updates::UpdatesLike;
use grammers_client::{Client, InvocationError, SenderPool, tl};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::session::PgSession;

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// Telegram asked to wait (now, or earlier and the wait is not over).
    #[error("{method}: flood wait, {} s left", wait.as_secs())]
    FloodWait {
        /// The method.
        method: &'static str,
        /// Time left.
        wait: Duration,
    },
    /// Telegram ended the account's session (revoked, banned,
    /// deauthorised, or the key is in use elsewhere).
    #[error("the account's session was ended by Telegram: {0}")]
    Lost(String),
    /// Telegram refused the call.
    #[error("{method}: {code} {name}")]
    Rpc {
        /// The method.
        method: &'static str,
        /// The error code.
        code: i32,
        /// The error name (without its number).
        name: String,
    },
    /// No answer (connection, timeout).
    #[error("{method}: no answer from Telegram: {message}")]
    Network {
        /// The method.
        method: &'static str,
        /// What happened.
        message: String,
    },
}

impl CallError {
    /// The RPC error name, if Telegram answered with one.
    pub fn rpc_name(&self) -> Option<&str> {
        match self {
            Self::Rpc { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// Errors that mean the session is over for good.
fn is_session_end(code: i32, name: &str) -> bool {
    (code == 401
        && matches!(
            name,
            "AUTH_KEY_UNREGISTERED"
                | "AUTH_KEY_INVALID"
                | "SESSION_REVOKED"
                | "SESSION_EXPIRED"
                | "USER_DEACTIVATED"
                | "USER_DEACTIVATED_BAN"
        ))
        || name == "AUTH_KEY_DUPLICATED"
        || name == "USER_DEACTIVATED_BAN"
}

/// What Telegram answers a frozen account's calls with (420, the flood
/// code, but no wait ends it): the account is lost until it is appealed and
/// logged in again, never waited out.
pub const FROZEN: &str = "FROZEN_METHOD_INVALID";

/// Classifies a grammers error.
pub fn classify(method: &'static str, e: InvocationError) -> CallError {
    match e {
        InvocationError::Rpc(r) if r.name == FROZEN => CallError::Lost(r.name),
        InvocationError::Rpc(r) if r.code == 420 || r.name.starts_with("FLOOD") => {
            CallError::FloodWait {
                method,
                wait: Duration::from_secs(u64::from(r.value.unwrap_or(1))),
            }
        }
        InvocationError::Rpc(r) if is_session_end(r.code, &r.name) => CallError::Lost(r.name),
        InvocationError::Rpc(r) => CallError::Rpc {
            method,
            code: r.code,
            name: r.name,
        },
        other => CallError::Network {
            method,
            message: other.to_string(),
        },
    }
}

/// A connected reader account.
pub struct AccountClient {
    name: String,
    client: Client,
    session: Arc<PgSession>,
    /// method → the instant its flood wait ends.
    paused: Mutex<HashMap<&'static str, Instant>>,
    /// The next instant a getHistory call may be made (the account's own pace).
    next_history: tokio::sync::Mutex<Instant>,
    history_spacing: Duration,
    api_id: i32,
    runner: tokio::task::JoinHandle<()>,
    /// Until when the account's lease is surely this process's (set at
    /// each renewal by the pool's lease keeper): past it, no call is made.
    /// `None`: not leased by a pool (login).
    usable_until: Mutex<Option<Instant>>,
}

/// What [`AccountClient::connect`] hands back besides the client.
pub struct Connected {
    /// The client.
    pub account: Arc<AccountClient>,
    /// Pushed updates, for `Client::stream_updates`.
    pub updates: mpsc::Receiver<UpdatesLike>,
}

impl AccountClient {
    /// Connects (lazily: the first call opens the connection) with
    /// grammers' retries off and its update channel holding `capacity`.
    pub fn connect(
        session: Arc<PgSession>,
        api_id: i32,
        capacity: usize,
        history_per_second: f64,
    ) -> Connected {
        let params = ConnectionParams {
            retry_policy: Box::new(NoRetries),
            updates_channel_capacity: NonZeroUsize::new(capacity.max(1)).expect("at least 1"),
            device_model: "kuryer".to_owned(),
            app_version: env!("CARGO_PKG_VERSION").to_owned(),
            ..ConnectionParams::default()
        };
        let SenderPool {
            runner,
            handle,
            updates,
        } = SenderPool::with_configuration(Arc::clone(&session), api_id, params);
        let client = Client::new(handle);
        let runner = tokio::spawn(runner.run());
        let account = Arc::new(Self {
            name: session.account().to_owned(),
            client,
            session,
            paused: Mutex::new(HashMap::new()),
            // Not at once: calls this account's previous connection made
            // in the last second (a restart, a reconnect) still count in
            // Telegram's window, and pacing knows nothing of them.
            next_history: tokio::sync::Mutex::new(Instant::now() + Duration::from_secs(1)),
            history_spacing: Duration::from_secs_f64(1.0 / history_per_second.max(0.001)),
            api_id,
            runner,
            usable_until: Mutex::new(None),
        });
        Connected { account, updates }
    }

    /// The account's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The application id it connects with.
    pub fn api_id(&self) -> i32 {
        self.api_id
    }

    /// The grammers client (for login and the update stream).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The lease is surely held until `until` (a renewal succeeded).
    pub fn set_usable_until(&self, until: Instant) {
        *self
            .usable_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(until);
    }

    /// Whether calls may be made now: no lease deadline set, or not passed.
    pub fn lease_valid(&self) -> bool {
        self.usable_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none_or(|t| Instant::now() < t)
    }

    /// The session.
    pub fn session(&self) -> &Arc<PgSession> {
        &self.session
    }

    /// True while a flood wait of any method runs.
    pub fn waiting(&self) -> bool {
        let now = Instant::now();
        self.paused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .any(|until| *until > now)
    }

    /// Time left of `method`'s flood wait, if any.
    pub fn paused_for(&self, method: &'static str) -> Option<Duration> {
        let paused = self
            .paused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        paused
            .get(method)
            .and_then(|until| until.checked_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    /// Calls `method` unless its flood wait is running; a new flood wait is
    /// recorded and counted. Every call times out after 30 s.
    pub async fn call<R: tl::RemoteCall>(
        &self,
        method: &'static str,
        request: &R,
    ) -> Result<R::Return, CallError> {
        if let Some(wait) = self.paused_for(method) {
            return Err(CallError::FloodWait { method, wait });
        }
        // Checked last thing before the call: a process paused past its
        // lease wakes up here and calls nothing (another may hold the
        // account by now; two users of one key burn it).
        if !self.lease_valid() {
            return Err(CallError::Network {
                method,
                message: "the account's lease is not surely held; no call made".to_owned(),
            });
        }
        crate::telemetry::events::reader_call(&self.name, method);
        let result = match tokio::time::timeout(
            Duration::from_secs(30),
            self.client.invoke(request),
        )
        .await
        {
            Ok(r) => r.map_err(|e| classify(method, e)),
            Err(_) => Err(CallError::Network {
                method,
                message: "no answer within 30 s".to_owned(),
            }),
        };
        match &result {
            Err(CallError::FloodWait { wait, .. }) => {
                self.paused
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(method, Instant::now() + *wait);
                crate::telemetry::events::reader_flood_wait(&self.name, method, *wait);
                // For every instance's status page.
                let until =
                    chrono::Utc::now() + chrono::Duration::from_std(*wait).unwrap_or_default();
                if let Err(e) = self
                    .session
                    .store()
                    .set_reader_flood_wait(&self.name, until, method)
                    .await
                {
                    tracing::debug!(account = %self.name, error = %e, "Cannot record the flood wait for the status page.");
                }
            }
            Err(CallError::Lost(reason)) if reason == FROZEN => {
                crate::telemetry::events::reader_account_frozen(&self.name, method);
            }
            _ => {}
        }
        result
    }

    /// Waits for the account's next getHistory slot (its own pace, well
    /// under Telegram's limits), then calls it. An account's getHistory
    /// calls never overlap: the slot is held until the answer, so a call
    /// leaves only once the one before has answered, and when that answer
    /// was a flood wait, the call sees it and does not go out.
    pub async fn history(
        &self,
        request: &tl::functions::messages::GetHistory,
    ) -> Result<tl::enums::messages::Messages, CallError> {
        const METHOD: &str = "messages.getHistory";
        if let Some(wait) = self.paused_for(METHOD) {
            return Err(CallError::FloodWait {
                method: METHOD,
                wait,
            });
        }
        let mut next = self.next_history.lock().await;
        let now = Instant::now();
        if *next > now {
            tokio::time::sleep_until(*next).await;
        }
        *next = Instant::now().max(*next) + self.history_spacing;
        let answer = self.call(METHOD, request).await;
        drop(next);
        answer
    }

    /// Disconnects at once, storing nothing: the lease is gone, and what
    /// this process would store may be older than the next holder's.
    pub fn disconnect(&self) {
        self.client.disconnect();
    }

    /// Closes the connection.
    pub async fn close(&self) {
        if let Err(e) = self.session.flush().await {
            tracing::warn!(account = %self.name, error = %e, "Could not store the update state.");
        }
        self.client.disconnect();
    }
}

impl Drop for AccountClient {
    fn drop(&mut self) {
        self.client.disconnect();
        self.runner.abort();
    }
}
