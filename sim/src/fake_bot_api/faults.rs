//! Failures injected per destination chat: what a test arms
//! ([`FakeTelegram::set_fault`]) and how a request to that chat takes one.
//! Each fault answers with Telegram's status and description (source for
//! the descriptions: teloxide-core 0.13 `src/errors.rs`, which matches
//! them to its `ApiError`s).

use std::collections::hash_map::Entry;
use std::time::Duration;

use super::FakeTelegram;
use super::state::State;

/// A failure injected for requests whose destination (`chat_id`) is a chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 403 "Forbidden: bot was blocked by the user".
    Forbidden,
    /// 400 with this description, verbatim (start it with "Bad Request: " for
    /// teloxide to recognise known errors).
    BadRequest(String),
    /// 400 "group chat was upgraded to a supergroup chat" with
    /// `parameters.migrate_to_chat_id`.
    MigrateTo(i64),
    /// 500 "Internal Server Error". Note that teloxide sleeps 10 s before
    /// returning the error of any 5xx answer.
    ServerError,
    /// 429 with `parameters.retry_after`.
    TooManyRequests {
        /// Seconds the client is told to wait.
        retry_after: u32,
    },
    /// The request is processed (and delivered) at once but answered only
    /// after this delay, like a slow network on the way back: a client that
    /// times out and retries produces a duplicate.
    Slow(Duration),
}

/// A fault armed for a chat, and how many more requests take it (`None`:
/// all, until cleared).
pub(super) struct ArmedFault {
    pub(super) fault: Fault,
    pub(super) remaining: Option<u32>,
}

impl FakeTelegram {
    /// Injects `fault` into requests whose `chat_id` is `chat_id`: the next
    /// `times` of them, or all until [`FakeTelegram::clear_fault`] with
    /// `None`. Replaces a fault already set for the chat. `getChat` of the
    /// chat (by id or by its `@username`) takes it too.
    pub fn set_fault(&self, chat_id: i64, fault: Fault, times: Option<u32>) {
        let mut st = self.shared.lock();
        if times == Some(0) {
            st.faults.remove(&chat_id);
        } else {
            st.faults.insert(
                chat_id,
                ArmedFault {
                    fault,
                    remaining: times,
                },
            );
        }
    }

    /// Answers `getMe` without `field` from now on, as a Bot API whose
    /// answer changed shape would: a client that requires the field cannot
    /// read the answer. No source: a test's way to change the API.
    pub fn omit_get_me_field(&self, field: &str) {
        self.shared.lock().get_me_omits.push(field.to_owned());
    }

    /// Removes the chat's fault.
    pub fn clear_fault(&self, chat_id: i64) {
        self.shared.lock().faults.remove(&chat_id);
    }
}

impl State {
    /// Consumes one application of the chat's fault, if any.
    pub(super) fn take_fault(&mut self, chat_id: i64) -> Option<Fault> {
        let Entry::Occupied(mut entry) = self.faults.entry(chat_id) else {
            return None;
        };
        let armed = entry.get_mut();
        let fault = armed.fault.clone();
        if let Some(n) = armed.remaining.as_mut() {
            *n -= 1;
            if *n == 0 {
                entry.remove();
            }
        }
        self.counters.faults_injected += 1;
        if matches!(fault, Fault::TooManyRequests { .. }) {
            self.counters.rate_limited_429 += 1;
        }
        Some(fault)
    }
}
