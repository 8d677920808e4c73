//! The MTProto reader against the fake data centre over TCP, with
//! grammers-client unmodified: login flows, the session in PostgreSQL
//! (auth key encrypted), the resolve queue, leases, the channel source.

use std::sync::Arc;
use std::time::Duration;

use kuryer::config::Config;
use kuryer::reader::crypto::SessionCipher;
use kuryer::reader::login::{self, LoginError, Prompt};
use kuryer::reader::session::PgSession;
use kuryer::secret::Secret;
use kuryer::store::Store;
use kuryer_sim::mtproto::{AccountSpec, MtprotoConfig, MtprotoFake};

use crate::common::TestDb;

pub(crate) const SESSION_KEY: &str = "test-session-key-0123456789";

/// A configuration for the reader against the fake.
/// A public channel `name` in the fake data centre and its `channels` row
/// (active, read from message 0, with `account`'s own access hash), as a
/// look-up by that account would have stored it.
pub(crate) async fn public_channel(
    c: &tokio_postgres::Client,
    dc: &MtprotoFake,
    name: &str,
    account: i64,
) -> kuryer_sim::mtproto::ChannelRef {
    let ch = dc.create_channel(kuryer_sim::mtproto::ChannelSpec {
        title: name.to_owned(),
        username: Some(name.to_owned()),
        protected: false,
    });
    c.execute(
        "INSERT INTO channels (telegram_id, username, access_hash, status, start_message_id)
         VALUES ($1, $2, $3, 'active', 0)",
        &[&ch.bot_api_chat_id(), &name, &dc.access_hash(ch, account)],
    )
    .await
    .unwrap();
    ch
}

pub(crate) fn reader_config(db: &TestDb) -> Config {
    let mut cfg = Config {
        database: db.config(),
        ..Config::default()
    };
    cfg.telegram.api_id = 1;
    cfg.telegram.api_hash = Some(Secret::new("0123456789abcdef0123456789abcdef"));
    cfg.reader.session_key = Some(Secret::new(SESSION_KEY));
    cfg
}

pub(crate) fn cipher() -> Arc<SessionCipher> {
    Arc::new(SessionCipher::new(Some(&Secret::new(SESSION_KEY))).unwrap())
}

/// Stores a session for `account` whose home DC is the fake with `key`
/// (the fake has no key exchange: it issues keys itself).
pub(crate) async fn seed_session(
    store: &Store,
    fake: &MtprotoFake,
    account: &str,
    key: [u8; 256],
) -> Arc<PgSession> {
    let session = PgSession::load(store.clone(), cipher(), account)
        .await
        .unwrap();
    session.import(fake.session_data(key)).await.unwrap();
    session
}

/// What the reader tests share: a fresh database, the fake Bot API (with
/// `limits`) attached to a fake data centre, and a signed-in account stored
/// as session `session`. Returns (database, store, Bot API, data centre,
/// account).
pub(crate) async fn reader_world(
    limits: kuryer_sim::fake_bot_api::FakeLimits,
    phone: &str,
    session: &str,
) -> (
    TestDb,
    Store,
    kuryer_sim::fake_bot_api::FakeTelegram,
    MtprotoFake,
    i64,
) {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let bot_api = kuryer_sim::fake_bot_api::FakeTelegram::start(limits).unwrap();
    let dc = MtprotoFake::start(MtprotoConfig::default()).unwrap();
    dc.attach_bot_api(bot_api.clone());
    let account = dc.create_account(AccountSpec {
        phone: phone.to_owned(),
        ..AccountSpec::default()
    });
    seed_session(&store, &dc, session, dc.issue_auth_key(Some(account))).await;
    store.set_session_user(session, account, 0).await.unwrap();
    (db, store, bot_api, dc, account)
}

/// [`reader_world`] with a relay channel the account is a member and admin
/// of. Returns (database, store, Bot API, data centre, account, relay).
pub(crate) async fn relay_world(
    limits: kuryer_sim::fake_bot_api::FakeLimits,
    phone: &str,
    session: &str,
) -> (
    TestDb,
    Store,
    kuryer_sim::fake_bot_api::FakeTelegram,
    MtprotoFake,
    i64,
    kuryer_sim::mtproto::ChannelRef,
) {
    let (db, store, bot_api, dc, account) = reader_world(limits, phone, session).await;
    let relay = dc.create_channel(kuryer_sim::mtproto::ChannelSpec {
        title: "Relay".to_owned(),
        username: None,
        protected: false,
    });
    dc.add_member(relay, account);
    dc.set_admin(relay, account);
    (db, store, bot_api, dc, account, relay)
}

/// Answers prompts from a script: each call of `next` gets the prompt.
struct Script<F: FnMut(&str) -> String>(F);

impl<F: FnMut(&str) -> String> Prompt for Script<F> {
    fn line(&mut self, prompt: &str) -> std::io::Result<String> {
        Ok((self.0)(prompt))
    }
    fn secret(&mut self, prompt: &str) -> std::io::Result<String> {
        Ok((self.0)(prompt))
    }
}

async fn try_login(
    store: &Store,
    cfg: &Config,
    fake: &MtprotoFake,
    account: &str,
    phone: &str,
    code: impl Fn(&str) -> String,
    password: &str,
) -> Result<login::LoggedIn, LoginError> {
    let key = fake.issue_auth_key(None);
    seed_session(store, fake, account, key).await;
    let mut script = Script(|prompt: &str| {
        if prompt.contains("code") {
            code(&fake.login_code(phone).expect("a code was sent"))
        } else {
            password.to_owned()
        }
    });
    login::login(store, cfg, account, Some(phone.to_owned()), &mut script).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_a_code_and_2fa_and_one_clear_error_for_each_wrong_input() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let cfg = reader_config(&db);
    let fake = MtprotoFake::start(MtprotoConfig {
        code_ttl: Duration::from_millis(800),
        ..MtprotoConfig::default()
    })
    .unwrap();
    let plain = fake.create_account(AccountSpec {
        phone: "+998900001001".to_owned(),
        first_name: "Plain".to_owned(),
        ..AccountSpec::default()
    });
    let guarded = fake.create_account(AccountSpec {
        phone: "+998900001002".to_owned(),
        first_name: "Guarded".to_owned(),
        password: Some("correct horse".to_owned()),
        ..AccountSpec::default()
    });
    let phone = "+998900001001";

    let wrong = |c: &str| format!("{:05}", (c.parse::<u32>().unwrap() + 1) % 100_000);
    let e = try_login(&store, &cfg, &fake, "main", phone, wrong, "")
        .await
        .unwrap_err();
    assert!(matches!(e, LoginError::WrongCode), "{e}");
    assert_eq!(
        e.to_string(),
        "wrong login code: run kuryer login again and type the code Telegram sent"
    );

    let late = |c: &str| {
        std::thread::sleep(Duration::from_millis(900));
        c.to_owned()
    };
    let e = try_login(&store, &cfg, &fake, "main", phone, late, "")
        .await
        .unwrap_err();
    assert!(matches!(e, LoginError::ExpiredCode), "{e}");

    let right = |c: &str| c.to_owned();
    let done = try_login(&store, &cfg, &fake, "main", phone, right, "")
        .await
        .unwrap();
    assert_eq!(done.user_id, plain);
    assert_eq!(done.first_name, "Plain");

    // The session is in PostgreSQL, the key encrypted: a fresh load talks
    // to Telegram as the account, and the bytes stored are not the key.
    let c = db.client().await;
    let row = c
        .query_one(
            "SELECT a.status, a.user_id, d.auth_key_enc, a.update_state IS NOT NULL
               FROM reader_accounts a JOIN reader_session_dcs d ON d.account = a.name
              WHERE a.name = 'main' AND d.dc_id = 2",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "active");
    assert_eq!(row.get::<_, Option<i64>>(1), Some(plain));
    let sealed: Vec<u8> = row.get(2);
    assert!(row.get::<_, bool>(3), "update state stored at login");
    let session = PgSession::load(store.clone(), cipher(), "main")
        .await
        .unwrap();
    assert!(session.has_auth_key());
    let key = {
        let dc = grammers_client::session::Session::dc_option(&*session, 2)
            .unwrap()
            .unwrap();
        dc.auth_key.unwrap()
    };
    assert!(
        !sealed.windows(32).any(|w| w == &key[..32]),
        "auth key stored in clear"
    );
    assert_eq!(fake.key_account(&key), Some(plain));
    let wrong_key = SessionCipher::new(Some(&Secret::new("another-session-key-xyz"))).unwrap();
    assert!(
        PgSession::load(store.clone(), Arc::new(wrong_key), "main")
            .await
            .is_err()
    );

    // 2FA: a wrong password, then the right one.
    let e = try_login(
        &store,
        &cfg,
        &fake,
        "guarded",
        "+998900001002",
        right,
        "wrong horse",
    )
    .await
    .unwrap_err();
    assert!(matches!(e, LoginError::WrongPassword), "{e}");
    let done = try_login(
        &store,
        &cfg,
        &fake,
        "guarded",
        "+998900001002",
        right,
        "correct horse",
    )
    .await
    .unwrap();
    assert_eq!(done.user_id, guarded);

    // An unknown number, no network. (The fake applies flood limits to
    // signed-in accounts only; the flood-wait message is a unit test.)
    let e = try_login(&store, &cfg, &fake, "nobody", "+998900009999", right, "")
        .await
        .unwrap_err();
    assert!(matches!(e, LoginError::BadPhone), "{e}");

    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let session = PgSession::load(store.clone(), cipher(), "offline")
        .await
        .unwrap();
    let mut data = fake.session_data(fake.issue_auth_key(None));
    for o in data.dc_options.values_mut() {
        o.ipv4.set_port(dead);
        o.ipv6.set_port(dead);
    }
    session.import(data).await.unwrap();
    let mut script = Script(|_: &str| "12345".to_owned());
    let e = login::login(&store, &cfg, "offline", Some(phone.to_owned()), &mut script)
        .await
        .unwrap_err();
    assert!(matches!(e, LoginError::NoNetwork(_)), "{e}");

    // accounts lists them; logout ends one on both sides.
    let table = login::accounts_table(&login::accounts(&store).await.unwrap());
    assert!(
        table.contains("main") && table.contains("active"),
        "{table}"
    );
    let note = login::logout(&store, &cfg, "main").await.unwrap();
    assert_eq!(note, None);
    assert_eq!(fake.key_account(&key), None, "auth.logOut reached Telegram");
    let status: String = c
        .query_one(
            "SELECT status FROM reader_accounts WHERE name = 'main'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "logged_out");
    let e = login::logout(&store, &cfg, "ghost").await.unwrap_err();
    assert!(matches!(e, LoginError::UnknownAccount(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lease_keeps_a_second_process_out_until_its_holder_stops_renewing() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let fake = MtprotoFake::start(MtprotoConfig::default()).unwrap();
    let id = fake.create_account(AccountSpec {
        phone: "+998900002001".to_owned(),
        ..AccountSpec::default()
    });
    seed_session(&store, &fake, "leased", fake.issue_auth_key(Some(id))).await;
    store.set_session_user("leased", id, 0).await.unwrap();
    let ttl = Duration::from_secs(2);
    let first = store.take_lease("leased", "p1", ttl).await.unwrap();
    assert_eq!(first, Some(1));
    assert_eq!(store.take_lease("leased", "p2", ttl).await.unwrap(), None);
    assert!(store.renew_lease("leased", "p1", 1, ttl).await.unwrap());
    // p1 dies (no more renewals): the lease runs out after the TTL, but
    // p2 waits one TTL more (p1 stopped at its local deadline, before the
    // lease ran out; the extra TTL covers a holder that noticed late);
    // then it takes it, generation 2, and p1's late renewal fails.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(store.take_lease("leased", "p2", ttl).await.unwrap(), None);
    assert!(!store.lease_free("leased", "p2", ttl).await.unwrap());
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(store.lease_free("leased", "p2", ttl).await.unwrap());
    assert_eq!(
        store.take_lease("leased", "p2", ttl).await.unwrap(),
        Some(2)
    );
    assert!(!store.renew_lease("leased", "p1", 1, ttl).await.unwrap());
    // Only active accounts can be leased.
    store
        .end_reader_session("leased", "logged_out", None)
        .await
        .unwrap();
    assert_eq!(store.take_lease("leased", "p3", ttl).await.unwrap(), None);
}

struct NoEvents;
impl kuryer::source_events::SourceEvents for NoEvents {
    fn wake(&self, _: i64) {}
    fn resolved(&self, _: kuryer_actors::model::ChannelRef) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_balanced_and_move_to_another_account_when_one_is_lost() {
    use kuryer::reader::ReaderPool;
    use kuryer_actors::ports::ChannelSource;
    use kuryer_sim::mtproto::ChannelSpec;

    let db = TestDb::new().await;
    let store = db.migrated().await;
    let fake = MtprotoFake::start(MtprotoConfig::default()).unwrap();
    let mut keys = Vec::new();
    for (i, name) in ["one", "two"].iter().enumerate() {
        let id = fake.create_account(AccountSpec {
            phone: format!("+99890000210{i}"),
            ..AccountSpec::default()
        });
        let key = fake.issue_auth_key(Some(id));
        seed_session(&store, &fake, name, key).await;
        store.set_session_user(name, id, 0).await.unwrap();
        keys.push((name.to_string(), key, id));
    }
    let two_id = keys[1].2;
    let c = db.client().await;
    let mut refs = Vec::new();
    for i in 0..4 {
        let ch = fake.create_channel(ChannelSpec {
            title: format!("Lost {i}"),
            username: Some(format!("lost_test_{i}")),
            protected: false,
        });
        fake.publish_text(ch, &format!("first of {i}"));
        let row = c
            .query_one(
                // Read from its first post (`start_message_id` 0), as
                // a channel whose first read found it empty.
                "INSERT INTO channels (telegram_id, username, access_hash, status, start_message_id)
                 VALUES ($1, $2, $3, 'active', 0) RETURNING id",
                &[
                    &ch.bot_api_chat_id(),
                    &format!("lost_test_{i}"),
                    // Account one's hash: account two, given half of
                    // the channels, must resolve them again for its own.
                    &fake.access_hash(ch, keys[0].2),
                ],
            )
            .await
            .unwrap();
        refs.push((
            kuryer_actors::model::ChannelRef {
                channel_id: row.get(0),
                chat_id: ch.bot_api_chat_id(),
                username: Some(format!("lost_test_{i}")),
                bot_is_admin: false,
            },
            ch,
        ));
    }
    let mut cfg = reader_config(&db);
    cfg.reader.lease_ttl_s = 3;
    cfg.reader.join_interval_ms = 50;
    cfg.reader.resolve_interval_ms = 50;
    cfg.reader.history_per_second = 50.0;
    // Only pushes (joined) and the catch-up after the loss can read posts.
    cfg.reader.poll_interval_s = 3600;
    let pool = ReaderPool::start(
        store.clone(),
        &cfg,
        "test-process".to_owned(),
        Arc::new(NoEvents),
    )
    .await;
    assert_eq!(pool.live_accounts(), ["one", "two"]);
    let mut sources: Vec<_> = refs.iter().map(|(r, _)| pool.source(r)).collect();
    for s in &mut sources {
        // Account two's channels: refused once (account one's hash), then
        // read once two has resolved them for its own.
        let mut got = Err(None);
        for _ in 0..100 {
            got = s.fetch(0, 100).await.map_err(Some);
            if got.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            got.unwrap().len(),
            1,
            "caught up from the mark at first read"
        );
    }
    let per_account = async || -> Vec<(String, i64)> {
        c.query(
            "SELECT account, count(*) FROM reader_assignments GROUP BY account ORDER BY account",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    };
    assert_eq!(
        per_account().await,
        [("one".to_owned(), 2), ("two".to_owned(), 2)],
        "balanced"
    );

    // Telegram revokes account one's session; posts keep coming.
    fake.revoke_session(&keys[0].1);
    for (_, ch) in &refs {
        fake.publish_text(*ch, "after the loss");
    }
    let mut got_all = true;
    for s in &mut sources {
        let mut got = Vec::new();
        for _ in 0..40 {
            match s.fetch(1, 100).await {
                Ok(m) if !m.is_empty() => {
                    got = m;
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let ok = got.len() == 1 && got[0].text.as_deref() == Some("after the loss");
        if !ok {
            let joined: i64 = c
                .query_one("SELECT count(*) FROM reader_assignments WHERE joined", &[])
                .await
                .unwrap()
                .get(0);
            eprintln!(
                "channel read after the loss: {got:?}; accounts {:?}; joined {joined}; stats of two {:?}",
                pool.live_accounts(),
                fake.stats(two_id)
            );
        }
        got_all &= ok;
    }
    assert!(got_all, "every channel read on after the loss");
    assert_eq!(pool.live_accounts(), ["two"]);
    assert_eq!(per_account().await, [("two".to_owned(), 4)]);
    let row = c
        .query_one(
            "SELECT status, lost_reason FROM reader_accounts WHERE name = 'one'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "lost");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("SESSION_REVOKED")
    );
    pool.close().await;
    let free: Option<String> = c
        .query_one(
            "SELECT lease_holder FROM reader_accounts WHERE name = 'two'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(free, None, "the lease is given back at close");
}
