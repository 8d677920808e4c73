//! What a test does to accounts through [`MtprotoFake`]: create accounts
//! and auth keys (with the DC option and grammers session that hold one),
//! revoke a session, set flood limits, drop, delay or force too-long
//! pushes, read login codes and what each account called.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;
use std::time::Duration;

use grammers_session::SessionData;
use grammers_session::types::DcOption;
use grammers_tl_types::{self as tl, Serializable};

use super::super::crypto::{self, ServerKey};
use super::super::flood::{EscalatingLimit, FloodLimit};
use super::super::login::SrpVerifier;
use super::super::objects::{self, THIS_DC};
use super::super::rpc::normalize_phone;
use super::super::updates::now_i32;
use super::super::updates::updates_body;
use super::super::world::{Account, KeyState, MethodStats, push_to};
use super::{ChannelRef, ControlError, MtprotoFake};

/// An account to create.
#[derive(Clone, Debug, Default)]
pub struct AccountSpec {
    /// Phone number (digits, `+` allowed).
    pub phone: String,
    /// First name.
    pub first_name: String,
    /// Public username, if any.
    pub username: Option<String>,
    /// The 2FA password, if any (checked server-side by SRP).
    pub password: Option<String>,
}

/// What an account called and received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountStats {
    /// Calls and errors per method name.
    pub methods: BTreeMap<String, MethodStats>,
    /// Updates pushed to it.
    pub pushed: u64,
    /// Updates dropped by [`MtprotoFake::drop_pushes`].
    pub dropped: u64,
    /// Channels `updates.getDifference` named to it (changed since the
    /// state it asked from): what an old saved state costs.
    pub difference_channels: u64,
    /// `messages.getHistory` pages answered (not refused), by channel id.
    pub history_pages: HashMap<i64, u64>,
}

impl AccountStats {
    /// Calls of `method`.
    pub fn calls(&self, method: &str) -> u64 {
        self.methods.get(method).map_or(0, |m| m.calls)
    }

    /// Errors `error` sent for `method`.
    pub fn errors(&self, method: &str, error: &str) -> u64 {
        self.methods
            .get(method)
            .and_then(|m| m.errors.get(error))
            .copied()
            .unwrap_or(0)
    }
}

impl MtprotoFake {
    /// Creates an account; returns its user id.
    ///
    /// # Panics
    ///
    /// If the phone number is already taken or has no digits.
    pub fn create_account(&self, spec: AccountSpec) -> i64 {
        self.try_create_account(spec)
            .unwrap_or_else(|e| panic!("MTProto fake: {e}"))
    }

    /// Creates an account, or says why not; returns its user id.
    pub fn try_create_account(&self, spec: AccountSpec) -> Result<i64, ControlError> {
        let phone = normalize_phone(&spec.phone);
        if phone.is_empty() {
            return Err(ControlError::PhoneInvalid(spec.phone));
        }
        if self.world().phones.contains_key(&phone) {
            return Err(ControlError::PhoneTaken(phone));
        }
        // The verifier costs 100,000 PBKDF2 rounds: computed outside the lock.
        let password = spec.password.as_deref().map(|p| SrpVerifier::new(p, None));
        let mut w = self.world();
        // Checked again: another caller may have taken it meanwhile.
        if w.phones.contains_key(&phone) {
            return Err(ControlError::PhoneTaken(phone));
        }
        let id = w.next_user_id;
        w.next_user_id += 1;
        w.phones.insert(phone.clone(), id);
        w.accounts.insert(
            id,
            Account {
                id,
                access_hash: rand::random(),
                phone,
                first_name: if spec.first_name.is_empty() {
                    format!("Reader {id}")
                } else {
                    spec.first_name
                },
                username: spec.username,
                password,
                pending_srp: None,
                home_dc: THIS_DC,
                code_type: None,
                joined: Default::default(),
                pushes: Vec::new(),
                drop_pushes: 0,
                push_delay: None,
                missed_channels: Default::default(),
                forwarded: Default::default(),
                flood: Default::default(),
                stats: Default::default(),
                pushed: 0,
                dropped: 0,
                seq: 0,
                date: now_i32(),
                difference_channels: 0,
                history_pages: HashMap::new(),
                frozen: false,
                peer_flood: false,
            },
        );
        Ok(id)
    }

    /// Whether an account with this user id exists.
    pub fn has_account(&self, account: i64) -> bool {
        self.world().accounts.contains_key(&account)
    }

    /// A new auth key the fake knows, signed in to `account` (or to nobody,
    /// for a login test).
    pub fn issue_auth_key(&self, account: Option<i64>) -> [u8; 256] {
        let mut data = [0u8; 256];
        rand::fill(&mut data[..]);
        let key = ServerKey::new(data);
        self.world().keys.insert(
            key.id,
            KeyState {
                key,
                dc: THIS_DC,
                account,
                revoked: false,
                active_conn: None,
                burned: false,
                password_pending: None,
            },
        );
        data
    }

    /// Moves `account` to data centre `dc` (the main or the second one):
    /// `auth.sendCode` on the other answers `PHONE_MIGRATE_{dc}`. False when
    /// there is no such account or data centre.
    pub fn set_home_dc(&self, account: i64, dc: i32) -> bool {
        if !self.shared.dcs.iter().any(|(id, _)| *id == dc) {
            return false;
        }
        match self.world().accounts.get_mut(&account) {
            Some(a) => {
                a.home_dc = dc;
                true
            }
            None => false,
        }
    }

    /// How `auth.sendCode` tells `account`'s code was sent from now on
    /// (the app's by default). With `auth.sentCodeTypeSetUpEmailRequired`
    /// no code is sent at all: the account must set up a login email first
    /// (<https://core.telegram.org/api/auth#email-verification>). False when
    /// there is no such account.
    pub fn set_code_type(&self, account: i64, kind: tl::enums::auth::SentCodeType) -> bool {
        match self.world().accounts.get_mut(&account) {
            Some(a) => {
                a.code_type = Some(kind);
                true
            }
            None => false,
        }
    }

    /// Whether `auth_key` was burned (seen on two connections at once).
    pub fn key_burned(&self, auth_key: &[u8; 256]) -> bool {
        let id = crypto::key_id(auth_key);
        self.world().keys.get(&id).is_some_and(|k| k.burned)
    }

    /// The account signed in on `auth_key`, if any.
    pub fn key_account(&self, auth_key: &[u8; 256]) -> Option<i64> {
        let id = crypto::key_id(auth_key);
        self.world().keys.get(&id).and_then(|k| k.account)
    }

    /// The DC option of this fake holding `auth_key` (so grammers skips the
    /// key exchange).
    pub fn dc_option(&self, auth_key: [u8; 256]) -> DcOption {
        let (ipv4, ipv6) = match self.addr() {
            SocketAddr::V4(v4) => (
                v4,
                SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0),
            ),
            SocketAddr::V6(v6) => (SocketAddrV4::new([127, 0, 0, 1].into(), v6.port()), v6),
        };
        DcOption {
            id: THIS_DC,
            ipv4,
            ipv6,
            auth_key: Some(auth_key),
        }
    }

    /// A grammers session whose home DC is this fake, holding `auth_key`.
    pub fn session_data(&self, auth_key: [u8; 256]) -> SessionData {
        let mut data = SessionData {
            home_dc: THIS_DC,
            ..SessionData::default()
        };
        let option = self.dc_option(auth_key);
        data.dc_options.insert(option.id, option);
        data
    }

    /// Revokes the session of `auth_key`: every later call gets
    /// `SESSION_REVOKED` (source: <https://core.telegram.org/api/errors>,
    /// 401 `SESSION_REVOKED`: "the authorization has been invalidated,
    /// because of the user terminating all sessions"). False when the fake
    /// does not know the key.
    pub fn revoke_session(&self, auth_key: &[u8; 256]) -> bool {
        let id = crypto::key_id(auth_key);
        match self.world().keys.get_mut(&id) {
            Some(k) => {
                k.revoked = true;
                true
            }
            None => false,
        }
    }

    /// Sets (or with `None` removes) the per-account flood limit of `method`.
    pub fn set_flood_limit(&self, method: &str, limit: Option<FloodLimit>) {
        let mut w = self.world();
        match limit {
            Some(l) => w.settings.flood_limits.insert(method.to_owned(), l),
            None => w.settings.flood_limits.remove(method),
        };
    }

    /// Sets (or with `None` removes) the escalating limit of `method`
    /// (`flood.rs`, [`EscalatingLimit`]), on top of its sliding window.
    pub fn set_escalating_limit(&self, method: &str, limit: Option<EscalatingLimit>) {
        let mut w = self.world();
        match limit {
            Some(l) => w.settings.escalating_limits.insert(method.to_owned(), l),
            None => w.settings.escalating_limits.remove(method),
        };
    }

    /// Freezes (or thaws) an account. A frozen account is read-only: it
    /// may still read, but anything else answers `420 FROZEN_METHOD_INVALID`
    /// (see `rpc.rs`, `frozen_allows`, for the sources and which methods).
    /// False for an unknown account.
    pub fn set_frozen(&self, account: i64, frozen: bool) -> bool {
        match self.world().accounts.get_mut(&account) {
            Some(a) => {
                a.frozen = frozen;
                true
            }
            None => false,
        }
    }

    /// Limits (or frees) an account for spam: `channels.joinChannel`
    /// answers `400 PEER_FLOOD` while set. Telegram lifts such a limit by
    /// itself after a while (tdlib/td#338: "I can't add anyone at all for a
    /// day or something"); here the test decides. False for an unknown
    /// account.
    pub fn set_peer_flood(&self, account: i64, limited: bool) -> bool {
        match self.world().accounts.get_mut(&account) {
            Some(a) => {
                a.peer_flood = limited;
                true
            }
            None => false,
        }
    }

    /// Drops the account's next `count` pushes (`None`: all, until called
    /// again with `Some(0)`). Dropped channels are remembered for
    /// `updates.getDifference`.
    pub fn drop_pushes(&self, account: i64, count: Option<u32>) {
        if let Some(a) = self.world().accounts.get_mut(&account) {
            a.drop_pushes = count.unwrap_or(u32::MAX);
        }
    }

    /// Delays every push to the account by `delay` (`None`: no delay).
    pub fn delay_pushes(&self, account: i64, delay: Option<Duration>) {
        if let Some(a) = self.world().accounts.get_mut(&account) {
            a.push_delay = delay;
        }
    }

    /// Pushes `updateChannelTooLong` for `channel`: the client must call
    /// `updates.getChannelDifference` (source:
    /// <https://core.telegram.org/api/updates>, "updateChannelTooLong").
    pub fn push_channel_too_long(&self, account: i64, channel: ChannelRef) {
        let mut w = self.world();
        let Some(ch) = w.channels.get(&channel.id) else {
            return;
        };
        let update = tl::types::UpdateChannelTooLong {
            channel_id: channel.id,
            pts: None,
        }
        .into();
        let body = Arc::new(
            updates_body(vec![update], vec![objects::channel(ch, Some(account))]).to_bytes(),
        );
        if let Some(a) = w.accounts.get_mut(&account) {
            push_to(a, None, &body);
        }
    }

    /// Pushes `updatesTooLong`: the client must call `updates.getDifference`
    /// (source: <https://core.telegram.org/api/updates>, "updatesTooLong"),
    /// which names the channels whose pushes it missed.
    pub fn push_updates_too_long(&self, account: i64) {
        let body = Arc::new(tl::enums::Updates::TooLong.to_bytes());
        if let Some(a) = self.world().accounts.get_mut(&account) {
            push_to(a, None, &body);
        }
    }

    /// The login code last sent to `phone`, as the user would read it.
    pub fn login_code(&self, phone: &str) -> Option<String> {
        self.world()
            .codes
            .get(&normalize_phone(phone))
            .map(|c| c.code.clone())
    }

    /// What `account` called and received.
    pub fn stats(&self, account: i64) -> AccountStats {
        let w = self.world();
        w.accounts
            .get(&account)
            .map(|a| AccountStats {
                methods: a.stats.clone(),
                pushed: a.pushed,
                dropped: a.dropped,
                difference_channels: a.difference_channels,
                history_pages: a.history_pages.clone(),
            })
            .unwrap_or_default()
    }

    /// Calls on `account` made by two holders at once: over a connection
    /// while another open one of the account called after this one's first
    /// call (`holders.rs`; a test's measure, no claim about Telegram).
    pub fn two_holders_calls(&self, account: i64) -> u64 {
        self.world().holders.overlapping(account)
    }

    /// Calls made on auth keys with no account signed in.
    pub fn anonymous_stats(&self) -> BTreeMap<String, MethodStats> {
        self.world().anonymous_stats.clone()
    }
}
