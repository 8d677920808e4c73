//! A channel added with `/add` while it is still being resolved
//! is answered "still checking" (with no reader account: "cannot read it
//! yet"), and the user is told once, in their
//! language, how it ended. The real binary, the fake Bot API and the fake
//! data centre.

use std::time::{Duration, Instant};

use kuryer_sim::fake_bot_api::{FakeLimits, FakeTelegram, Fault, ReceivedMessage};
use kuryer_sim::mtproto::{AccountSpec, ChannelSpec, MtprotoConfig, MtprotoFake};

use crate::common::{Daemon, TestDb, free_port};
use crate::reader::seed_session;

const TOKEN: &str = "4646:toldSECRETtoldSECRETtold";

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

/// The bot's plain messages to `user` (no copied posts).
fn texts(bot_api: &FakeTelegram, user: i64) -> Vec<String> {
    bot_api
        .received(user)
        .into_iter()
        .filter(|m: &ReceivedMessage| m.method == "sendMessage" && m.source.is_none())
        .filter_map(|m| m.text)
        .collect()
}

/// Two names added while neither can be resolved (the first run has no
/// reader account): a real public channel and a name nobody has. The next
/// run resolves both and tells the user once each, in Russian; a third
/// run tells nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_is_told_once_how_each_pending_channel_ended() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let bot_api = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    bot_api.add_bot(TOKEN);
    let dc = MtprotoFake::start(MtprotoConfig::default()).unwrap();
    dc.attach_bot_api(bot_api.clone());
    dc.create_channel(ChannelSpec {
        title: "Ready".to_owned(),
        username: Some("ready_src".to_owned()),
        protected: false,
    });
    // The bot's own check of the missing name fails (Telegram could not
    // answer), so it is subscribed unchecked: pending, like the real one.
    bot_api.set_public_username(-900_400, "ghost_src");
    bot_api.set_fault(
        -900_400,
        Fault::BadRequest("Bad Request: try again later".to_owned()),
        None,
    );
    let user = 830_001;
    let port = free_port();

    // Run 1: no reader account, nothing is resolved.
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &[]);
    let replied = |n: usize| {
        let bot_api = bot_api.clone();
        async move {
            wait_until(Duration::from_secs(60), async || {
                texts(&bot_api, user).len() >= n
            })
            .await
        }
    };
    bot_api.user_says(TOKEN, user, "/start", Some("ru"));
    assert!(replied(1).await, "{}", daemon.log_text());
    bot_api.user_says(TOKEN, user, "/add @ready_src @ghost_src", Some("ru"));
    assert!(replied(2).await, "{}", daemon.log_text());
    let add = texts(&bot_api, user)[1].clone();
    assert_eq!(
        add.matches("у сервиса нет аккаунта-читателя").count(),
        2,
        "both wait for a reader account: {add}"
    );
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());

    // Run 2: a reader account resolves both; one notice each.
    let id = dc.create_account(AccountSpec {
        phone: "+998900004601".to_owned(),
        ..AccountSpec::default()
    });
    seed_session(&store, &dc, "teller", dc.issue_auth_key(Some(id))).await;
    store.set_session_user("teller", id, 0).await.unwrap();
    let env = crate::reader_run::reader_env();
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &env);
    let told = wait_until(Duration::from_secs(60), async || {
        texts(&bot_api, user).len() >= 4
    })
    .await;
    assert!(told, "{:?}\n{}", texts(&bot_api, user), daemon.log_text());
    // Nothing more comes while it keeps running.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());

    // Run 3: a restart sends nothing again.
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &env);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());

    let all = texts(&bot_api, user);
    let notices = &all[2..];
    assert_eq!(notices.len(), 2, "{all:?}");
    let ready: Vec<&String> = notices
        .iter()
        .filter(|t| t.contains("@ready_src готов: посты будут приходить сюда"))
        .collect();
    let missing: Vec<&String> = notices
        .iter()
        .filter(|t| t.contains("@ghost_src: такого канала нет") && t.contains("ничего не доставит"))
        .collect();
    assert_eq!((ready.len(), missing.len()), (1, 1), "{all:?}");

    let c = db.client().await;
    let statuses: Vec<(String, String)> = c
        .query(
            "SELECT username, status FROM channels ORDER BY username",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        statuses,
        [
            ("ghost_src".to_owned(), "invalid".to_owned()),
            ("ready_src".to_owned(), "active".to_owned())
        ]
    );
    // The subscription to the missing name stays (shown as not available).
    let told: i64 = c
        .query_one(
            "SELECT count(*) FROM subscriptions
              WHERE resolve_told_at IS NOT NULL AND removed_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(told, 2, "both flags stored, both subscriptions kept");
}

/// The store's side: a notice is claimed once, by the resolve queue's
/// claim or, when the channel settled between the subscription and the
/// "still checking" mark, by the mark itself (the reply then says the
/// outcome); a removed subscription is not told.
#[tokio::test]
async fn a_resolve_notice_is_claimed_once_whoever_claims_it() {
    use kuryer::store::Unresolvable;
    use kuryer_actors::model::ChannelUsername;

    let db = TestDb::new().await;
    let store = db.migrated().await;
    let name = ChannelUsername::parse("@slow_src").unwrap();
    let a = store.add_subscription(840_001, &name).await.unwrap();
    let b = store.add_subscription(840_002, &name).await.unwrap();
    let gone = store.add_subscription(840_003, &name).await.unwrap();
    let channel = store
        .channel_status("slow_src")
        .await
        .unwrap()
        .expect("the channel row");
    assert_eq!(channel, "pending");
    for s in [&a, &b, &gone] {
        assert_eq!(
            store.await_resolve_notice(s.subscription.id).await.unwrap(),
            None,
            "still pending: the notice is to come"
        );
    }
    let c = db.client().await;
    c.execute(
        "UPDATE subscriptions SET is_active = false, removed_at = now() WHERE id = $1",
        &[&gone.subscription.id],
    )
    .await
    .unwrap();
    let channel_id: i64 = c
        .query_one("SELECT id FROM channels WHERE username = 'slow_src'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        store
            .claim_resolve_notices(channel_id)
            .await
            .unwrap()
            .is_empty(),
        "nothing while pending"
    );
    store
        .channel_unresolvable(channel_id, Unresolvable::Private)
        .await
        .unwrap();
    let told = store.claim_resolve_notices(channel_id).await.unwrap();
    let users: Vec<(i64, &str)> = told.iter().map(|n| (n.user, n.status.as_str())).collect();
    assert_eq!(users, [(840_001, "private"), (840_002, "private")]);
    assert!(
        store
            .claim_resolve_notices(channel_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .channels_owing_resolve_notices()
            .await
            .unwrap()
            .is_empty()
    );

    // Settled before the mark: the mark claims it and says how it ended.
    let late = store.add_subscription(840_004, &name).await.unwrap();
    assert_eq!(
        store
            .await_resolve_notice(late.subscription.id)
            .await
            .unwrap(),
        Some("private".to_owned())
    );
    assert!(
        store
            .claim_resolve_notices(channel_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .await_resolve_notice(late.subscription.id)
            .await
            .unwrap(),
        None,
        "claimed once"
    );
}
