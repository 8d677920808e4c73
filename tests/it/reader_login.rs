//! `kuryer login`, the real binary, against the fake data centre over TCP
//! with no imported key: the auth key made by the key exchange with the
//! fake's own RSA key (`reader.data_centre = "custom"`), the code read back
//! from the fake, the 2FA password checked by SRP, the session stored
//! encrypted; then `kuryer run` reads a channel through that account. And
//! a login that starts on the wrong data centre and follows
//! `PHONE_MIGRATE_X`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kuryer_sim::fake_bot_api::{ChatKind, FakeLimits, FakeTelegram};
use kuryer_sim::mtproto::{
    AccountSpec, ChannelSpec, MAIN_DC, MtprotoConfig, MtprotoFake, SECOND_DC,
};
use serde_json::{Value, json};

use crate::common::{Daemon, TestDb, free_port};
use crate::reader::{SESSION_KEY, cipher};
use crate::reader_run::reader_env;

const TOKEN: &str = "4545:loginSECRETloginSECRET";
const API_TOKEN: &str = "black-box-api-token-0123";

/// The environment that points kuryer at the fake's data centres, listed
/// in this order (a login starts at the first).
fn custom_dc_env(fake: &MtprotoFake, order: &[i32]) -> Vec<(&'static str, String)> {
    let dcs = fake.dcs();
    let list: Vec<String> = order
        .iter()
        .map(|id| {
            let addr = dcs
                .iter()
                .find(|(d, _)| d == id)
                .expect("a DC of the fake")
                .1;
            format!("{id}={addr}")
        })
        .collect();
    vec![
        ("KURYER_READER_DATA_CENTRE", "custom".to_owned()),
        ("KURYER_READER_CUSTOM_DCS", list.join(",")),
        (
            "KURYER_READER_CUSTOM_PUBLIC_KEY",
            fake.public_key_pem().to_owned(),
        ),
    ]
}

/// Runs `kuryer login --account NAME --phone PHONE`, types the code the
/// fake sent (once it was sent) and then `password`; returns (success,
/// stdout, stderr).
fn login_binary(
    db_url: &str,
    fake: &MtprotoFake,
    env: &[(&'static str, String)],
    account: &str,
    phone: &str,
    password: &str,
) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kuryer"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KURYER_") || k == "CREDENTIALS_DIRECTORY" {
            cmd.env_remove(k);
        }
    }
    cmd.args(["login", "--config", "/dev/null", "--account", account])
        .args(["--phone", phone])
        .env("KURYER_DATABASE_URL", db_url)
        .env("KURYER_TELEGRAM_API_ID", "1")
        .env(
            "KURYER_TELEGRAM_API_HASH",
            "0123456789abcdef0123456789abcdef",
        )
        .env("KURYER_READER_SESSION_KEY", SESSION_KEY);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kuryer login");
    let start = Instant::now();
    let code = loop {
        if let Some(code) = fake.login_code(phone) {
            break Some(code);
        }
        if start.elapsed() > Duration::from_secs(60) || child.try_wait().unwrap().is_some() {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if let Some(code) = code {
        let mut stdin = child.stdin.take().unwrap();
        // The code, then the password, one a line (scripted login).
        let _ = writeln!(stdin, "{code}\n{password}");
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn wait_until<F: AsyncFnMut() -> bool>(limit: Duration, mut f: F) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_binary_makes_a_key_by_the_key_exchange_and_run_then_reads_through_it() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let bot_api = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    bot_api.add_bot(TOKEN);
    let dc = MtprotoFake::start(MtprotoConfig::default()).unwrap();
    dc.attach_bot_api(bot_api.clone());
    let phone = "+998900007001";
    let account = dc.create_account(AccountSpec {
        phone: phone.to_owned(),
        first_name: "Loginer".to_owned(),
        password: Some("correct horse".to_owned()),
        ..AccountSpec::default()
    });
    let env = custom_dc_env(&dc, &[MAIN_DC]);

    // A wrong password first: one clear line, nothing signed in.
    let (ok, _, err) = login_binary(&db.url, &dc, &env, "main", phone, "wrong horse");
    assert!(!ok, "{err}");
    assert!(err.contains("wrong 2FA password"), "{err}");
    assert!(
        err.contains("Telegram app where this account is signed in"),
        "{err}"
    );

    let (ok, out, err) = login_binary(&db.url, &dc, &env, "main", phone, "correct horse");
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("signed in as Loginer"), "{out}");
    // Keys made by the key exchange: one per login attempt here (the
    // failed one's session kept its key; a fresh session each time would
    // make two): no key was handed over by the fake.
    assert!(dc.keys_made() >= 1);

    // The session: in PostgreSQL, its key the one the fake made and signed
    // the account in on, stored encrypted.
    let session = kuryer::reader::session::PgSession::load(store.clone(), cipher(), "main")
        .await
        .unwrap();
    let key = grammers_client::session::Session::dc_option(&*session, MAIN_DC)
        .unwrap()
        .and_then(|o| o.auth_key)
        .expect("a key on the home DC");
    assert_eq!(dc.key_account(&key), Some(account));
    let c = db.client().await;
    let row = c
        .query_one(
            "SELECT a.status, a.user_id, d.auth_key_enc FROM reader_accounts a
               JOIN reader_session_dcs d ON d.account = a.name
              WHERE a.name = 'main' AND d.dc_id = $1",
            &[&MAIN_DC],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "active");
    assert_eq!(row.get::<_, Option<i64>>(1), Some(account));
    let sealed: Vec<u8> = row.get(2);
    assert!(
        !sealed.windows(32).any(|w| w == &key[..32]),
        "auth key stored in clear"
    );
    drop(session);

    // `kuryer run` reads a channel through that account: a post published
    // on the fake reaches a subscriber.
    let channel = dc.create_channel(ChannelSpec {
        title: "Logged news".to_owned(),
        username: Some("logged_news".to_owned()),
        protected: false,
    });
    let user = 820_001;
    bot_api.create_chat(user, ChatKind::Private);
    let port = free_port();
    let mut run_env = reader_env();
    run_env.extend(env);
    let daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &run_env);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let ready = wait_until(Duration::from_secs(60), async || {
        matches!(http.get(format!("{base}/readyz")).send().await, Ok(r) if r.status() == 200)
    })
    .await;
    assert!(ready, "kuryer never became ready:\n{}", daemon.log_text());
    let r = http
        .post(format!("{base}/add_channel"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"user_id": user, "channel_username": "logged_news"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let active = wait_until(Duration::from_secs(30), async || {
        let list: Value = http
            .get(format!("{base}/subscriptions/{user}"))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list[0]["channel_status"] == "active"
    })
    .await;
    assert!(active, "{}", daemon.log_text());
    let id = dc.publish_text(channel, "read through a logged-in account");
    let expected = vec![(user, channel.bot_api_chat_id(), id)];
    let delivered = wait_until(Duration::from_secs(60), async || {
        bot_api.report(&expected).delivered == 1
    })
    .await;
    assert!(
        delivered,
        "{:?}\n{}",
        bot_api.report(&expected),
        daemon.log_text()
    );
    // Through the account: it resolved the channel itself.
    assert!(dc.stats(account).calls("contacts.resolveUsername") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_started_on_another_data_centre_follows_phone_migrate() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let dc = MtprotoFake::start(MtprotoConfig::default()).unwrap();
    let phone = "+998900007002";
    let account = dc.create_account(AccountSpec {
        phone: phone.to_owned(),
        first_name: "Mover".to_owned(),
        ..AccountSpec::default()
    });
    // The login starts on the second DC; the account lives on the main one.
    let env = custom_dc_env(&dc, &[SECOND_DC, MAIN_DC]);
    let (ok, out, err) = login_binary(&db.url, &dc, &env, "moved", phone, "");
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("signed in as Mover"), "{out}");
    // A key on each data centre, and the session's home is the main one,
    // signed in there.
    assert_eq!(dc.keys_made(), 2);
    let session = kuryer::reader::session::PgSession::load(store.clone(), cipher(), "moved")
        .await
        .unwrap();
    assert_eq!(
        grammers_client::session::Session::home_dc_id(&*session).unwrap(),
        MAIN_DC
    );
    let key = grammers_client::session::Session::dc_option(&*session, MAIN_DC)
        .unwrap()
        .and_then(|o| o.auth_key)
        .expect("a key on the main DC");
    assert_eq!(dc.key_account(&key), Some(account));
    let first = grammers_client::session::Session::dc_option(&*session, SECOND_DC)
        .unwrap()
        .and_then(|o| o.auth_key)
        .expect("a key on the second DC");
    assert_eq!(dc.key_account(&first), None, "nobody signed in on DC 1");

    // The other way round: an account moved to the second DC is followed
    // there from the main one.
    let other = dc.create_account(AccountSpec {
        phone: "+998900007003".to_owned(),
        first_name: "Away".to_owned(),
        ..AccountSpec::default()
    });
    assert!(dc.set_home_dc(other, SECOND_DC));
    let env = custom_dc_env(&dc, &[MAIN_DC, SECOND_DC]);
    let (ok, out, err) = login_binary(&db.url, &dc, &env, "away", "+998900007003", "");
    assert!(ok, "{out}\n{err}");
    assert_eq!(dc.keys_made(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_centre_without_the_configured_key_is_one_clear_error() {
    let db = TestDb::new().await;
    let _store = db.migrated().await;
    let dc = MtprotoFake::start(MtprotoConfig::default()).unwrap();
    let phone = "+998900007004";
    dc.create_account(AccountSpec {
        phone: phone.to_owned(),
        ..AccountSpec::default()
    });
    let mut env = custom_dc_env(&dc, &[MAIN_DC]);
    // Telegram's own production key: the fake does not hold it.
    env[2].1 = "-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEA6LszBcC1LGzyr992NzE0ieY+BSaOW622Aa9Bd4ZHLl+TuFQ4lo4g
5nKaMBwK/BIb9xUfg0Q29/2mgIR6Zr9krM7HjuIcCzFvDtr+L0GQjae9H0pRB2OO
62cECs5HKhT5DZ98K33vmWiLowc621dQuwKWSQKjWf50XYFw42h21P2KXUGyp2y/
+aEyZ+uVgLLQbRA1dEjSDZ2iGRy12Mk5gpYc397aYp438fsJoHIgJ2lgMv5h7WY9
t6N/byY9Nw9p21Og3AoXSL2q/2IJ1WRUhebgAdGVMlV1fkuOQoEzR7EdpqtQD9Cs
5+bfo3Nhmcyvk5ftB0WkJ9z6bNZ7yxrP8wIDAQAB
-----END RSA PUBLIC KEY-----"
        .to_owned();
    let (ok, out, err) = login_binary(&db.url, &dc, &env, "main", phone, "");
    assert!(!ok, "{out}");
    assert!(
        err.contains("does not use the configured public key"),
        "{err}"
    );
    assert_eq!(dc.keys_made(), 0);
    assert!(dc.login_code(phone).is_none(), "no code was asked for");
    // A key that is not a key: the configuration check names it.
    env[2].1 = "not a key".to_owned();
    let (ok, _, err) = login_binary(&db.url, &dc, &env, "main", phone, "");
    assert!(!ok);
    assert!(err.contains("reader.custom_public_key"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_is_told_where_the_code_went_or_what_to_do_instead() {
    use grammers_client::tl;
    let db = TestDb::new().await;
    let _store = db.migrated().await;
    let dc = MtprotoFake::start(MtprotoConfig::default()).unwrap();
    let env = custom_dc_env(&dc, &[MAIN_DC]);
    // A code by SMS: the prompt says so, and the login goes through.
    let sms = dc.create_account(AccountSpec {
        phone: "+998900007005".to_owned(),
        first_name: "Texted".to_owned(),
        ..AccountSpec::default()
    });
    assert!(dc.set_code_type(sms, tl::types::auth::SentCodeTypeSms { length: 5 }.into()));
    let (ok, out, err) = login_binary(&db.url, &dc, &env, "texted", "+998900007005", "");
    assert!(ok, "{out}\n{err}");
    assert!(
        err.contains("5-digit code by SMS to +998900007005"),
        "{err}"
    );
    // No login email yet: no code comes, and the operator is told what to
    // do in one line.
    let no_email = dc.create_account(AccountSpec {
        phone: "+998900007006".to_owned(),
        ..AccountSpec::default()
    });
    assert!(
        dc.set_code_type(
            no_email,
            tl::types::auth::SentCodeTypeSetUpEmailRequired {
                apple_signin_allowed: false,
                google_signin_allowed: false,
            }
            .into()
        )
    );
    let (ok, out, err) = login_binary(&db.url, &dc, &env, "no_email", "+998900007006", "");
    assert!(!ok, "{out}");
    assert!(
        err.contains("add a login email (Settings → Privacy and Security → Login Email)"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(dc.login_code("+998900007006").is_none());
}
