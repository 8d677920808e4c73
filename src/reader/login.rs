//! `kuryer login`, `kuryer accounts`, `kuryer logout`: a reader account's
//! session is made, listed and ended here. Input comes through [`Prompt`]
//! (the terminal in `main`, scripted in tests); every failure is one clear
//! line ([`LoginError`]'s text), never a panic. Codes and passwords are
//! never logged.

use std::sync::Arc;
use std::time::Duration;

use grammers_client::client::PasswordToken;
use grammers_client::session::Session;
use grammers_client::session::types::{PeerInfo, UpdateState, UpdatesState};
use grammers_client::{SignInError, tl};

use super::client::{AccountClient, CallError, classify};
use super::crypto::{CryptoError, SessionCipher};
use super::data_centre::{self, DataCentreError, DataCentres};
use super::sent_code::{self, Delivery, NoCode};
use super::session::{PgSession, SessionError};
use crate::config::Config;
use crate::store::{AccountRow, Store, StoreError};

/// Where `kuryer login` reads what the operator types.
pub trait Prompt {
    /// A line (phone number, code).
    fn line(&mut self, prompt: &str) -> std::io::Result<String>;
    /// A secret (the 2FA password), not echoed on a terminal.
    fn secret(&mut self, prompt: &str) -> std::io::Result<String>;
}

/// Why a login, a logout or a listing failed; each is one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// No app credentials.
    #[error(
        "telegram.api_id and telegram.api_hash are needed for reader accounts (create them at https://my.telegram.org)"
    )]
    NoApp,
    /// Bad account name.
    #[error("account name must be 1–64 letters, digits, '_', '-' or '.'")]
    BadName,
    /// Telegram does not know the number.
    #[error(
        "Telegram says the phone number is invalid: use the international form, e.g. +998901234567"
    )]
    BadPhone,
    /// Wrong code.
    #[error("wrong login code: run kuryer login again and type the code Telegram sent")]
    WrongCode,
    /// Expired code.
    #[error("the login code expired: run kuryer login again for a new one")]
    ExpiredCode,
    /// Wrong 2FA password.
    #[error("wrong 2FA password: run kuryer login again")]
    WrongPassword,
    /// The number has no account.
    #[error("this phone number has no Telegram account: sign up with an official app first")]
    SignUpRequired,
    /// Flood wait.
    #[error("Telegram asks to wait {0} s before trying again (flood wait)")]
    FloodWait(u64),
    /// No network.
    #[error("cannot reach Telegram: {0}")]
    NoNetwork(String),
    /// Anything else Telegram said.
    #[error("Telegram refused the login: {0}")]
    Telegram(String),
    /// No such account.
    #[error("no reader account named {0:?} (kuryer accounts lists them)")]
    UnknownAccount(String),
    /// Input ended or failed.
    #[error("no input: {0}")]
    Input(#[from] std::io::Error),
    /// Database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Session storage.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// Encryption key.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// No code can reach kuryer: what to do instead.
    #[error(transparent)]
    NoCode(#[from] NoCode),
    /// The data centres (`reader.data_centre`).
    #[error(transparent)]
    DataCentre(#[from] DataCentreError),
    /// A configuration key.
    #[error("{0}: {1}")]
    Config(&'static str, String),
}

impl From<CallError> for LoginError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::FloodWait { wait, .. } => Self::FloodWait(wait.as_secs()),
            CallError::Network { message, .. } => Self::NoNetwork(message),
            CallError::Rpc { name, .. } if name == "PHONE_NUMBER_INVALID" => Self::BadPhone,
            CallError::Rpc { name, .. } if name == "PHONE_CODE_INVALID" => Self::WrongCode,
            CallError::Rpc { name, .. } if name == "PHONE_CODE_EXPIRED" => Self::ExpiredCode,
            CallError::Rpc { name, .. } if name == "PASSWORD_HASH_INVALID" => Self::WrongPassword,
            CallError::Rpc { code, name, .. } => Self::Telegram(format!("{code} {name}")),
            CallError::Lost(name) => Self::Telegram(name),
        }
    }
}

/// A finished login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedIn {
    /// The account's name.
    pub account: String,
    /// Telegram user id.
    pub user_id: i64,
    /// First name, for the greeting.
    pub first_name: String,
}

fn check_name(name: &str) -> Result<(), LoginError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok { Ok(()) } else { Err(LoginError::BadName) }
}

/// The app credentials a login needs (`telegram.api_id`, `telegram.api_hash`).
pub fn check_app(cfg: &Config) -> Result<(), LoginError> {
    match (&cfg.telegram.api_hash, cfg.telegram.api_id) {
        (Some(_), id) if id != 0 => Ok(()),
        _ => Err(LoginError::NoApp),
    }
}

/// Logs `account` in: phone (from `phone` or asked), the code Telegram
/// sends, the 2FA password when the account has one. The session is stored
/// as it is made (the auth key encrypted), and the account is `active` once
/// signed in.
pub async fn login(
    store: &Store,
    cfg: &Config,
    account: &str,
    phone: Option<String>,
    prompt: &mut dyn Prompt,
) -> Result<LoggedIn, LoginError> {
    check_name(account)?;
    check_app(cfg)?;
    let api_hash = match (&cfg.telegram.api_hash, cfg.telegram.api_id) {
        (Some(h), id) if id != 0 => h.expose().to_owned(),
        _ => return Err(LoginError::NoApp),
    };
    let dcs =
        DataCentres::from_config(&cfg.reader).map_err(|(key, why)| LoginError::Config(key, why))?;
    let cipher = Arc::new(SessionCipher::new(cfg.reader.session_key.as_ref())?);
    let session = PgSession::load(store.clone(), cipher, account).await?;
    data_centre::prepare(&session, &dcs).await?;
    let connected = AccountClient::connect(
        Arc::clone(&session),
        cfg.telegram.api_id,
        cfg.reader.updates_capacity,
        cfg.reader.history_per_second,
    );
    let client = connected.account;
    let result = sign_in(store, &client, &dcs, account, phone, &api_hash, prompt).await;
    client.close().await;
    result
}

async fn sign_in(
    store: &Store,
    account: &AccountClient,
    dcs: &DataCentres,
    name: &str,
    phone: Option<String>,
    api_hash: &str,
    prompt: &mut dyn Prompt,
) -> Result<LoggedIn, LoginError> {
    // Already signed in on this session: nothing to do.
    if account.session().user_id().is_some()
        && let Ok(me) = account.call("users.getUsers", &get_self()).await
        && let Some(user) = me.into_iter().next()
    {
        return logged_in(name, &user);
    }
    let phone = match phone {
        Some(p) => p,
        None => prompt.line("Phone number (international form, e.g. +998901234567): ")?,
    };
    let phone = phone.trim().to_owned();
    store.ensure_reader_account(name, Some(&phone)).await?;
    let (phone_code_hash, asked) = match send_code(account, dcs, &phone, api_hash).await? {
        Delivery::Code {
            phone_code_hash,
            prompt,
        } => (phone_code_hash, prompt),
        Delivery::SignedIn(auth) => {
            let tl::enums::auth::Authorization::Authorization(auth) = *auth else {
                return Err(LoginError::SignUpRequired);
            };
            let user = complete(account, auth.user).await?;
            return logged_in(name, &user);
        }
    };
    let code = prompt.line(&asked)?;
    let sign_in = tl::functions::auth::SignIn {
        phone_number: phone.clone(),
        phone_code_hash,
        phone_code: Some(code.trim().to_owned()),
        email_verification: None,
    };
    let user = match account.call("auth.signIn", &sign_in).await {
        Ok(tl::enums::auth::Authorization::Authorization(auth)) => {
            complete(account, auth.user).await?
        }
        Ok(tl::enums::auth::Authorization::SignUpRequired(_)) => {
            return Err(LoginError::SignUpRequired);
        }
        Err(CallError::Rpc { name, .. }) if name == "SESSION_PASSWORD_NEEDED" => {
            let tl::enums::account::Password::Password(info) = account
                .call(
                    "account.getPassword",
                    &tl::functions::account::GetPassword {},
                )
                .await?;
            let hint = info.hint.clone().unwrap_or_default();
            let password = prompt.secret(&if hint.is_empty() {
                "2FA password: ".to_owned()
            } else {
                format!("2FA password (hint: {hint}): ")
            })?;
            match with_timeout(account.client().check_password(
                PasswordToken::new(info),
                password.trim_end_matches(['\r', '\n']),
            ))
            .await?
            {
                Ok(user) => user.raw.clone(),
                Err(SignInError::InvalidPassword(_)) => return Err(LoginError::WrongPassword),
                Err(SignInError::Other(e)) => return Err(classify("auth.checkPassword", e).into()),
                Err(other) => return Err(LoginError::Telegram(other.to_string())),
            }
        }
        Err(e) => return Err(e.into()),
    };
    logged_in(name, &user)
}

/// What grammers' own `complete_login` does after a sign-in by code: the
/// self user and the update state into the session.
async fn complete(
    account: &AccountClient,
    user: tl::enums::User,
) -> Result<tl::enums::User, LoginError> {
    let state = account
        .call("updates.getState", &tl::functions::updates::GetState {})
        .await
        .ok();
    if let tl::enums::User::User(u) = &user {
        account
            .session()
            .cache_peer(PeerInfo::User {
                id: u.id,
                auth: u
                    .access_hash
                    .map(grammers_client::session::types::PeerAuth::from_hash),
                bot: Some(u.bot),
                is_self: Some(true),
            })
            .await?;
    }
    if let Some(tl::enums::updates::State::State(s)) = state {
        account
            .session()
            .set_update_state(UpdateState::All(UpdatesState {
                pts: s.pts,
                qts: s.qts,
                date: s.date,
                seq: s.seq,
                channels: Vec::new(),
            }))
            .await?;
    }
    Ok(user)
}

fn logged_in(name: &str, user: &tl::enums::User) -> Result<LoggedIn, LoginError> {
    match user {
        tl::enums::User::User(u) => Ok(LoggedIn {
            account: name.to_owned(),
            user_id: u.id,
            first_name: u.first_name.clone().unwrap_or_default(),
        }),
        tl::enums::User::Empty(_) => Err(LoginError::Telegram(
            "signed in as an empty user".to_owned(),
        )),
    }
}

fn get_self() -> tl::functions::users::GetUsers {
    tl::functions::users::GetUsers {
        id: vec![tl::enums::InputUser::UserSelf],
    }
}

/// `auth.sendCode`; a `PHONE_MIGRATE_X` moves the session's home DC (with
/// an auth key made there first on custom data centres) and asks again
/// there (what grammers' `request_login_code` does, whose token keeps the
/// code hash to itself). The answer says where the code went
/// (`sent_code.rs`).
async fn send_code(
    account: &AccountClient,
    dcs: &DataCentres,
    phone: &str,
    api_hash: &str,
) -> Result<Delivery, LoginError> {
    let request = tl::functions::auth::SendCode {
        phone_number: phone.to_owned(),
        api_id: account.api_id(),
        api_hash: api_hash.to_owned(),
        settings: tl::types::CodeSettings {
            allow_flashcall: false,
            current_number: false,
            allow_app_hash: false,
            allow_missed_call: false,
            allow_firebase: false,
            logout_tokens: None,
            token: None,
            app_sandbox: None,
            unknown_number: false,
        }
        .into(),
    };
    for _ in 0..2 {
        let answer = with_timeout(account.client().invoke(&request)).await?;
        match answer {
            Ok(sent) => return Ok(sent_code::delivery(sent, phone)?),
            Err(grammers_client::InvocationError::Rpc(r)) if r.code == 303 => {
                let dc = r.value.and_then(|v| i32::try_from(v).ok()).unwrap_or(2);
                tracing::info!(
                    account = account.name(),
                    dc,
                    "Telegram moved the login to another data centre."
                );
                data_centre::ensure_key(account.session(), dcs, dc).await?;
                account.session().set_home_dc_id(dc).await?;
            }
            Err(e) => return Err(classify("auth.sendCode", e).into()),
        }
    }
    Err(LoginError::Telegram(
        "moved between data centres twice".to_owned(),
    ))
}

async fn with_timeout<T>(f: impl Future<Output = T>) -> Result<T, LoginError> {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .map_err(|_| LoginError::NoNetwork("no answer within 30 s".to_owned()))
}

/// Ends an account: `auth.logOut` when Telegram can be reached (the
/// session ends on our side whatever happens), auth keys erased, channels
/// released. Returns a note for the operator when Telegram could not be told.
pub async fn logout(
    store: &Store,
    cfg: &Config,
    account: &str,
) -> Result<Option<String>, LoginError> {
    let known = store
        .reader_accounts()
        .await?
        .into_iter()
        .any(|a| a.name == account);
    if !known {
        return Err(LoginError::UnknownAccount(account.to_owned()));
    }
    let mut note = None;
    if let Ok(cipher) = SessionCipher::new(cfg.reader.session_key.as_ref()) {
        let session = PgSession::load(store.clone(), Arc::new(cipher), account).await?;
        if session.has_auth_key() {
            let connected = AccountClient::connect(
                Arc::clone(&session),
                cfg.telegram.api_id,
                cfg.reader.updates_capacity,
                cfg.reader.history_per_second,
            );
            if let Err(e) = connected
                .account
                .call("auth.logOut", &tl::functions::auth::LogOut {})
                .await
            {
                note = Some(format!(
                    "Telegram was not told ({e}); end the session in Settings → Devices"
                ));
            }
            connected.account.close().await;
        }
    }
    store
        .end_reader_session(account, "logged_out", None)
        .await?;
    Ok(note)
}

/// Every reader account.
pub async fn accounts(store: &Store) -> Result<Vec<AccountRow>, LoginError> {
    Ok(store.reader_accounts().await?)
}

/// [`Prompt`] on the process's terminal: prompts on stderr; the password is
/// read with echo off when stdin is a terminal; otherwise each answer is
/// the next line of stdin.
pub struct TerminalPrompt;

impl TerminalPrompt {
    fn read_line() -> std::io::Result<String> {
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "stdin ended",
            ));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

impl Prompt for TerminalPrompt {
    fn line(&mut self, prompt: &str) -> std::io::Result<String> {
        use std::io::Write;
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        Self::read_line()
    }

    fn secret(&mut self, prompt: &str) -> std::io::Result<String> {
        use std::io::{IsTerminal, Write};
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        if !std::io::stdin().is_terminal() {
            return Self::read_line();
        }
        let _echo_off = EchoOff::new();
        let line = Self::read_line();
        eprintln!();
        line
    }
}

/// Terminal echo off while it lives (stdin is a terminal).
struct EchoOff(Option<libc::termios>);

impl EchoOff {
    fn new() -> Self {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed termios that
        // tcgetattr fills; nothing is kept past the calls.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return Self(None);
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return Self(None);
            }
            Self(Some(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = self.0 {
            // SAFETY: restores the attributes tcgetattr returned.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &saved);
            }
        }
    }
}

/// `kuryer accounts`' table.
pub fn accounts_table(rows: &[AccountRow]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("no reader accounts (kuryer login --account NAME adds one)\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<16} {:<11} {:<14} {:>8} {:>7}  lease",
        "account", "status", "user id", "channels", "joined"
    );
    for r in rows {
        let lease = match (&r.lease_holder, r.lease_expires_at) {
            (Some(h), Some(until)) => format!(
                "held by {h} until {} (generation {})",
                until.format("%H:%M:%S"),
                r.lease_generation
            ),
            _ => "free".to_owned(),
        };
        let status = match &r.lost_reason {
            Some(why) => format!("{} ({why})", r.status),
            None => r.status.clone(),
        };
        let mut lease = lease;
        if let Some((until, method)) = &r.flood_wait {
            let _ = write!(
                lease,
                "; flood wait until {} ({method})",
                until.format("%Y-%m-%d %H:%M:%S")
            );
        }
        let left = |b: Option<(i32, i32)>| {
            b.map_or("-".to_owned(), |(used, limit)| {
                format!("{} of {limit}", (limit - used).max(0))
            })
        };
        if r.resolves_today.is_some() || r.joins_today.is_some() {
            let _ = write!(
                lease,
                "; left today: {} look-ups, {} joins",
                left(r.resolves_today),
                left(r.joins_today)
            );
        }
        if let Some(why) = &r.joins_stopped {
            let _ = write!(lease, " (joins stopped today: {why})");
        }
        let _ = writeln!(
            out,
            "{:<16} {:<11} {:<14} {:>8} {:>7}  {lease}",
            r.name,
            status,
            r.user_id.map_or("-".to_owned(), |i| i.to_string()),
            r.channels,
            r.joined
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_is_one_clear_line() {
        let flood: LoginError = CallError::FloodWait {
            method: "auth.sendCode",
            wait: Duration::from_secs(42),
        }
        .into();
        assert_eq!(
            flood.to_string(),
            "Telegram asks to wait 42 s before trying again (flood wait)"
        );
        let rpc = |name: &str| -> LoginError {
            CallError::Rpc {
                method: "auth.signIn",
                code: 400,
                name: name.to_owned(),
            }
            .into()
        };
        assert!(matches!(rpc("PHONE_CODE_INVALID"), LoginError::WrongCode));
        assert!(matches!(rpc("PHONE_CODE_EXPIRED"), LoginError::ExpiredCode));
        assert!(matches!(
            rpc("PASSWORD_HASH_INVALID"),
            LoginError::WrongPassword
        ));
        assert!(matches!(rpc("PHONE_NUMBER_INVALID"), LoginError::BadPhone));
        let offline: LoginError = CallError::Network {
            method: "auth.sendCode",
            message: "connection refused".to_owned(),
        }
        .into();
        assert_eq!(
            offline.to_string(),
            "cannot reach Telegram: connection refused"
        );
        for e in [flood, offline, rpc("X")] {
            assert!(!e.to_string().contains('\n'));
        }
        assert!(check_name("main-1.a_b").is_ok());
        assert!(check_name("bad name").is_err());
        assert!(check_name("").is_err());
    }
}
