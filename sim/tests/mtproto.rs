//! The MTProto face against grammers-client, unmodified, over TCP: every
//! test connects a real `Client` (its own sender, transport, encryption and
//! update handling) to a fake data centre on 127.0.0.1 and checks what it
//! gets and what the fake counted.

use grammers_client::SignInError;
use grammers_client::client::UpdateStream;
use grammers_client::sender::UpdatesConfiguration;
use grammers_client::sender::{ConnectionParams, NoRetries};
use grammers_client::session::Session;
use grammers_client::session::storages::MemorySession;
use grammers_client::session::types::{PeerInfo, UpdateState, UpdatesState};
use grammers_client::session::updates::UpdatesLike;
use grammers_client::tl;
use grammers_client::{Client, InvocationError, SenderPool};
use kuryer_sim::fake_bot_api::{FakeLimits, FakeTelegram};
use kuryer_sim::mtproto::FloodLimit;
use kuryer_sim::mtproto::{AccountSpec, ChannelRef, ChannelSpec, MtprotoConfig, MtprotoFake};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const API_ID: i32 = 1;

/// A grammers client connected to the fake with `auth_key`.
struct Reader {
    client: Client,
    session: Arc<MemorySession>,
    updates: Option<mpsc::Receiver<UpdatesLike>>,
    pool: tokio::task::JoinHandle<()>,
}

impl Reader {
    async fn connect(fake: &MtprotoFake, auth_key: [u8; 256]) -> Self {
        let session = Arc::new(MemorySession::from(fake.session_data(auth_key)));
        let SenderPool {
            runner,
            handle,
            updates,
        } = SenderPool::new(Arc::clone(&session), API_ID);
        let client = Client::new(handle);
        let pool = tokio::spawn(runner.run());
        Self {
            client,
            session,
            updates: Some(updates),
            pool,
        }
    }

    /// Connects and signs the session in as its account (what `kuryer login`
    /// leaves behind): the self user is cached, as after a real login.
    async fn signed_in(fake: &MtprotoFake, auth_key: [u8; 256]) -> Self {
        let reader = Self::connect(fake, auth_key).await;
        let me = reader.client.get_me().await.expect("get_me");
        reader
            .session
            .cache_peer(PeerInfo::User {
                id: me.id().bare_id_unchecked(),
                auth: me.to_ref().await.expect("ref").map(|r| r.auth),
                bot: Some(false),
                is_self: Some(true),
            })
            .await
            .expect("cache self");
        reader
    }

    async fn close(self) {
        self.client.disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.pool).await;
    }
}

fn account(fake: &MtprotoFake, phone: &str) -> (i64, [u8; 256]) {
    let id = fake.create_account(AccountSpec {
        phone: phone.to_owned(),
        first_name: "Reader".to_owned(),
        ..AccountSpec::default()
    });
    (id, fake.issue_auth_key(Some(id)))
}

fn public_channel(fake: &MtprotoFake, username: &str) -> ChannelRef {
    fake.create_channel(ChannelSpec {
        title: format!("Channel {username}"),
        username: Some(username.to_owned()),
        protected: false,
    })
}

/// Waits (up to 10 s) until `cond` holds.
async fn wait_for(cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn rpc_name(e: &InvocationError) -> Option<&str> {
    match e {
        InvocationError::Rpc(r) => Some(r.name.as_str()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grammers_connects_gets_itself_and_pings() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let (id, key) = account(&fake, "+998900000001");
    let reader = Reader::connect(&fake, key).await;
    let me = reader.client.get_me().await.expect("users.getUsers(self)");
    assert_eq!(me.id().bare_id_unchecked(), id);
    assert_eq!(me.first_name(), Some("Reader"));
    let pong = reader
        .client
        .invoke(&tl::functions::Ping { ping_id: 77 })
        .await
        .expect("ping");
    let tl::enums::Pong::Pong(pong) = pong;
    assert_eq!(pong.ping_id, 77);
    assert!(reader.client.is_authorized().await.expect("getState"));
    let stats = fake.stats(id);
    assert_eq!(stats.calls("help.getConfig"), 1, "{stats:?}");
    assert_eq!(stats.calls("users.getUsers"), 1);
    assert_eq!(stats.calls("updates.getState"), 1);
    reader.close().await;
}

fn input_channel(c: ChannelRef) -> tl::enums::InputChannel {
    tl::types::InputChannel {
        channel_id: c.id,
        access_hash: c.access_hash,
    }
    .into()
}

fn input_peer(c: ChannelRef) -> tl::enums::InputPeer {
    tl::types::InputPeerChannel {
        channel_id: c.id,
        access_hash: c.access_hash,
    }
    .into()
}

fn history(
    min_id: i32,
    offset_id: i32,
    limit: i32,
    c: ChannelRef,
) -> tl::functions::messages::GetHistory {
    tl::functions::messages::GetHistory {
        peer: input_peer(c),
        offset_id,
        offset_date: 0,
        add_offset: 0,
        limit,
        max_id: 0,
        min_id,
        hash: 0,
    }
}

fn message_ids(m: tl::enums::messages::Messages) -> Vec<i32> {
    let tl::enums::messages::Messages::ChannelMessages(m) = m else {
        panic!("channel history is channelMessages, got {m:?}");
    };
    m.messages
        .iter()
        .map(|m| match m {
            tl::enums::Message::Message(m) => m.id,
            tl::enums::Message::Service(m) => m.id,
            tl::enums::Message::Empty(m) => -m.id,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_join_and_read_history_with_min_id() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let (id, key) = account(&fake, "+998900000002");
    let news = public_channel(&fake, "news_uz");
    for i in 1..=30 {
        fake.publish_text(news, &format!("post {i}"));
    }
    let reader = Reader::signed_in(&fake, key).await;
    let client = &reader.client;

    let peer = client
        .resolve_username("news_uz")
        .await
        .expect("resolve")
        .expect("occupied");
    assert_eq!(peer.id().bare_id_unchecked(), news.id);
    assert!(
        client
            .resolve_username("nobody_here")
            .await
            .expect("resolve")
            .is_none()
    );
    let invalid = client.resolve_username("1bad").await.expect_err("invalid");
    assert_eq!(rpc_name(&invalid), Some("USERNAME_INVALID"));

    let peer_ref = peer.to_ref().await.expect("ref").expect("hash known");
    client.join_chat(peer_ref).await.expect("join");

    let ids = message_ids(
        client
            .invoke(&history(20, 0, 100, news))
            .await
            .expect("history"),
    );
    assert_eq!(ids, (21..=30).rev().collect::<Vec<_>>());
    let ids = message_ids(
        client
            .invoke(&history(0, 25, 3, news))
            .await
            .expect("history"),
    );
    assert_eq!(ids, vec![24, 23, 22]);

    // grammers' own iterator walks the whole history, newest first.
    let mut it = client.iter_messages(peer_ref);
    let mut seen = Vec::new();
    while let Some(m) = it.next().await.expect("iter") {
        assert_eq!(m.text(), format!("post {}", m.id()));
        seen.push(m.id());
    }
    assert_eq!(seen, (1..=30).rev().collect::<Vec<_>>());

    let got = client
        .invoke(&tl::functions::channels::GetMessages {
            channel: input_channel(news),
            id: vec![
                tl::types::InputMessageId { id: 7 }.into(),
                tl::types::InputMessageId { id: 99 }.into(),
            ],
        })
        .await
        .expect("getMessages");
    assert_eq!(message_ids(got), vec![7, -99]);

    let tl::enums::messages::ChatFull::Full(full) = client
        .invoke(&tl::functions::channels::GetFullChannel {
            channel: input_channel(news),
        })
        .await
        .expect("getFullChannel");
    let tl::enums::ChatFull::ChannelFull(full) = full.full_chat else {
        panic!("a channel's full chat")
    };
    assert_eq!(full.pts, fake.channel_pts(news));
    let tl::enums::messages::Chats::Chats(chats) = client
        .invoke(&tl::functions::channels::GetChannels {
            id: vec![input_channel(news)],
        })
        .await
        .expect("getChannels")
    else {
        panic!("all channels fit in one answer")
    };
    assert!(matches!(&chats.chats[0], tl::enums::Chat::Channel(c) if c.id == news.id && !c.left));

    client
        .invoke(&tl::functions::channels::LeaveChannel {
            channel: input_channel(news),
        })
        .await
        .expect("leave");
    let again = client
        .invoke(&tl::functions::channels::LeaveChannel {
            channel: input_channel(news),
        })
        .await
        .expect_err("not a member any more");
    assert_eq!(rpc_name(&again), Some("USER_NOT_PARTICIPANT"));

    let stats = fake.stats(id);
    assert_eq!(stats.calls("contacts.resolveUsername"), 3);
    assert_eq!(
        stats.errors("contacts.resolveUsername", "USERNAME_NOT_OCCUPIED"),
        1
    );
    assert_eq!(stats.calls("channels.joinChannel"), 1);
    assert!(stats.calls("messages.getHistory") >= 3);
    reader.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_channels_need_membership() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let (id, key) = account(&fake, "+998900000003");
    let closed = fake.create_channel(ChannelSpec {
        title: "Closed".to_owned(),
        username: None,
        protected: false,
    });
    fake.publish_text(closed, "secret");
    let public = public_channel(&fake, "soon_private");
    let reader = Reader::signed_in(&fake, key).await;
    let client = &reader.client;
    for e in [
        client
            .invoke(&history(0, 0, 10, closed))
            .await
            .expect_err("private"),
        client
            .invoke(&tl::functions::channels::JoinChannel {
                channel: input_channel(closed),
            })
            .await
            .expect_err("private"),
    ] {
        assert_eq!(rpc_name(&e), Some("CHANNEL_PRIVATE"), "{e}");
    }
    fake.add_member(closed, id);
    assert_eq!(
        message_ids(
            client
                .invoke(&history(0, 0, 10, closed))
                .await
                .expect("member")
        ),
        vec![1]
    );

    assert!(
        client
            .resolve_username("soon_private")
            .await
            .expect("resolve")
            .is_some()
    );
    fake.make_private(public);
    assert!(
        client
            .resolve_username("soon_private")
            .await
            .expect("resolve")
            .is_none()
    );
    let e = client
        .invoke(&history(0, 0, 10, public))
        .await
        .expect_err("now private");
    assert_eq!(rpc_name(&e), Some("CHANNEL_PRIVATE"));
    assert_eq!(
        fake.stats(id)
            .errors("messages.getHistory", "CHANNEL_PRIVATE"),
        2
    );
    // Deleted: a member, too, is refused, and its name leads nowhere.
    fake.delete_channel(closed);
    let e = client
        .invoke(&history(0, 0, 10, closed))
        .await
        .expect_err("deleted");
    assert_eq!(rpc_name(&e), Some("CHANNEL_PRIVATE"), "{e}");
    reader.close().await;
}

async fn next_update(stream: &mut UpdateStream) -> tl::enums::Update {
    tokio::time::timeout(Duration::from_secs(10), stream.next_raw())
        .await
        .expect("an update within 10 s")
        .expect("update stream")
        .0
}

fn text_of(u: &tl::enums::Update) -> (&'static str, i32, String) {
    match u {
        tl::enums::Update::NewChannelMessage(u) => match &u.message {
            tl::enums::Message::Message(m) => ("new", m.id, m.message.clone()),
            other => panic!("{other:?}"),
        },
        tl::enums::Update::EditChannelMessage(u) => match &u.message {
            tl::enums::Message::Message(m) => ("edit", m.id, m.message.clone()),
            other => panic!("{other:?}"),
        },
        tl::enums::Update::DeleteChannelMessages(u) => ("delete", u.messages[0], String::new()),
        other => panic!("unexpected update {other:?}"),
    }
}

/// A signed-in reader that joined `channel` and streams its updates.
async fn joined_reader(
    fake: &MtprotoFake,
    key: [u8; 256],
    username: &str,
) -> (Reader, UpdateStream) {
    joined(Reader::signed_in(fake, key).await, username).await
}

async fn joined(mut reader: Reader, username: &str) -> (Reader, UpdateStream) {
    let peer = reader
        .client
        .resolve_username(username)
        .await
        .expect("resolve")
        .expect("occupied");
    reader
        .client
        .join_chat(peer.to_ref().await.expect("ref").expect("hash"))
        .await
        .expect("join");
    // What a reader keeps in its session after login: the account's update
    // state (grammers' MemorySession does not answer `self_user()`, so the
    // stream would not fetch it itself).
    let tl::enums::updates::State::State(state) = reader
        .client
        .invoke(&tl::functions::updates::GetState {})
        .await
        .expect("getState");
    reader
        .session
        .set_update_state(UpdateState::All(UpdatesState {
            pts: state.pts,
            qts: state.qts,
            date: state.date,
            seq: state.seq,
            channels: Vec::new(),
        }))
        .await
        .expect("save state");
    let stream = reader
        .client
        .stream_updates(
            reader.updates.take().expect("updates receiver"),
            UpdatesConfiguration { catch_up: true },
        )
        .await
        .expect("stream");
    (reader, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_channels_push_new_edited_and_deleted_posts() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let (id, key) = account(&fake, "+998900000004");
    let news = public_channel(&fake, "pushes");
    let (reader, mut stream) = joined_reader(&fake, key, "pushes").await;
    let one = fake.publish_text(news, "one");
    assert_eq!(
        text_of(&next_update(&mut stream).await),
        ("new", one, "one".to_owned())
    );
    let two = fake.publish_text(news, "two");
    assert_eq!(
        text_of(&next_update(&mut stream).await),
        ("new", two, "two".to_owned())
    );
    assert!(fake.edit(news, one, "one, edited"));
    assert_eq!(
        text_of(&next_update(&mut stream).await),
        ("edit", one, "one, edited".to_owned())
    );
    assert_eq!(fake.delete(news, &[two]), 1);
    assert_eq!(
        text_of(&next_update(&mut stream).await),
        ("delete", two, String::new())
    );
    let three = fake.publish_text(news, "three");
    assert_eq!(
        text_of(&next_update(&mut stream).await),
        ("new", three, "three".to_owned())
    );
    let stats = fake.stats(id);
    assert_eq!(stats.pushed, 5);
    assert_eq!(
        stats.calls("updates.getChannelDifference"),
        0,
        "no gap: {stats:?}"
    );
    reader.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_push_is_recovered_by_get_channel_difference() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let (id, key) = account(&fake, "+998900000005");
    let news = public_channel(&fake, "gappy");
    let (reader, mut stream) = joined_reader(&fake, key, "gappy").await;
    fake.publish_text(news, "a");
    assert_eq!(text_of(&next_update(&mut stream).await).2, "a");
    fake.drop_pushes(id, Some(2));
    fake.publish_text(news, "b");
    fake.publish_text(news, "c");
    fake.publish_text(news, "d");
    let got: Vec<String> = [
        next_update(&mut stream).await,
        next_update(&mut stream).await,
        next_update(&mut stream).await,
    ]
    .iter()
    .map(|u| text_of(u).2)
    .collect();
    assert_eq!(got, ["b", "c", "d"]);
    let stats = fake.stats(id);
    assert_eq!(stats.dropped, 2);
    assert_eq!(stats.calls("updates.getChannelDifference"), 1, "{stats:?}");
    reader.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_missed_posts_answer_channel_difference_too_long() {
    let fake = MtprotoFake::start(MtprotoConfig {
        channel_difference_limit: 5,
        ..MtprotoConfig::default()
    })
    .expect("start");
    let (id, key) = account(&fake, "+998900000006");
    let news = public_channel(&fake, "floody");
    let (reader, mut stream) = joined_reader(&fake, key, "floody").await;
    fake.publish_text(news, "first");
    assert_eq!(text_of(&next_update(&mut stream).await).2, "first");
    fake.drop_pushes(id, Some(10));
    for i in 0..10 {
        fake.publish_text(news, &format!("missed {i}"));
    }
    fake.publish_text(news, "after the gap");
    // channelDifferenceTooLong carries no updates: the client jumps to the
    // channel's pts, and the next push applies cleanly.
    let (u, last) = tokio::join!(next_update(&mut stream), async {
        wait_for(|| fake.stats(id).calls("updates.getChannelDifference") == 1).await;
        fake.publish_text(news, "next")
    });
    assert_eq!(text_of(&u), ("new", last, "next".to_owned()));
    let stats = fake.stats(id);
    assert_eq!(stats.calls("updates.getChannelDifference"), 1, "{stats:?}");
    // What the jump skipped is still in the history, above the last id read.
    let ids = message_ids(
        reader
            .client
            .invoke(&history(1, 0, 100, news))
            .await
            .expect("history"),
    );
    assert_eq!(ids.len(), 12);
    reader.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_too_long_and_updates_too_long_pushes_lead_to_the_missed_posts() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let (id, key) = account(&fake, "+998900000007");
    let news = public_channel(&fake, "toolong");
    let (reader, mut stream) = joined_reader(&fake, key, "toolong").await;
    fake.publish_text(news, "seen");
    assert_eq!(text_of(&next_update(&mut stream).await).2, "seen");
    fake.drop_pushes(id, Some(1));
    fake.publish_text(news, "lost push 1");
    fake.push_channel_too_long(id, news);
    assert_eq!(text_of(&next_update(&mut stream).await).2, "lost push 1");
    let differences = fake.stats(id).calls("updates.getDifference");
    fake.drop_pushes(id, Some(1));
    fake.publish_text(news, "lost push 2");
    fake.push_updates_too_long(id);
    assert_eq!(text_of(&next_update(&mut stream).await).2, "lost push 2");
    let stats = fake.stats(id);
    assert_eq!(
        stats.calls("updates.getDifference"),
        differences + 1,
        "{stats:?}"
    );
    assert_eq!(stats.calls("updates.getChannelDifference"), 2, "{stats:?}");
    reader.close().await;
}

impl Reader {
    /// Like [`Reader::connect`], with grammers' retries off: a FLOOD_WAIT
    /// comes back to the caller instead of being slept through.
    async fn connect_without_retries(fake: &MtprotoFake, auth_key: [u8; 256]) -> Self {
        Self::connect_with(
            fake,
            auth_key,
            ConnectionParams {
                retry_policy: Box::new(NoRetries),
                ..ConnectionParams::default()
            },
        )
        .await
    }

    async fn connect_with(
        fake: &MtprotoFake,
        auth_key: [u8; 256],
        params: ConnectionParams,
    ) -> Self {
        let session = Arc::new(MemorySession::from(fake.session_data(auth_key)));
        let SenderPool {
            runner,
            handle,
            updates,
        } = SenderPool::with_configuration(Arc::clone(&session), API_ID, params);
        let client = Client::new(handle);
        let pool = tokio::spawn(runner.run());
        Self {
            client,
            session,
            updates: Some(updates),
            pool,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_wait_is_obeyed_by_grammers_and_measured_by_the_fake() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    fake.set_flood_limit(
        "contacts.resolveUsername",
        Some(FloodLimit {
            max_calls: 1,
            per: Duration::from_secs(2),
        }),
    );
    public_channel(&fake, "limited");
    let (id, key) = account(&fake, "+998900000010");
    let reader = Reader::signed_in(&fake, key).await;
    reader
        .client
        .resolve_username("limited")
        .await
        .expect("first");
    let started = std::time::Instant::now();
    // grammers' default policy sleeps through a FLOOD_WAIT of up to 60 s once.
    reader
        .client
        .resolve_username("limited")
        .await
        .expect("after the wait");
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    let stats = fake.stats(id);
    let m = &stats.methods["contacts.resolveUsername"];
    assert_eq!(m.calls, 3, "{m:?}");
    assert_eq!(m.errors.get("FLOOD_WAIT_2"), Some(&1), "{m:?}");
    assert_eq!(m.calls_during_flood_wait, 0, "{m:?}");
    reader.close().await;

    // A client that does not wait is caught calling early.
    let (id, key) = account(&fake, "+998900000011");
    let rude = Reader::connect_without_retries(&fake, key).await;
    rude.client
        .resolve_username("limited")
        .await
        .expect("first");
    let e = rude
        .client
        .resolve_username("limited")
        .await
        .expect_err("flood");
    assert!(
        matches!(&e, InvocationError::Rpc(r) if r.code == 420 && r.name == "FLOOD_WAIT" && r.value == Some(2)),
        "{e}"
    );
    let e = rude
        .client
        .resolve_username("limited")
        .await
        .expect_err("still waiting");
    assert_eq!(rpc_name(&e), Some("FLOOD_WAIT"));
    assert_eq!(
        fake.stats(id).methods["contacts.resolveUsername"].calls_during_flood_wait,
        1
    );
    rude.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_joins_at_most_500_channels() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let (id, key) = account(&fake, "+998900000012");
    for i in 0..499 {
        let c = public_channel(&fake, &format!("filler{i:03}"));
        fake.add_member(c, id);
    }
    let c500 = public_channel(&fake, "number500");
    let c501 = public_channel(&fake, "number501");
    let reader = Reader::signed_in(&fake, key).await;
    let join = |c| tl::functions::channels::JoinChannel {
        channel: input_channel(c),
    };
    reader.client.invoke(&join(c500)).await.expect("the 500th");
    let e = reader
        .client
        .invoke(&join(c501))
        .await
        .expect_err("the 501st");
    assert_eq!(rpc_name(&e), Some("CHANNELS_TOO_MUCH"));
    reader
        .client
        .invoke(&tl::functions::channels::LeaveChannel {
            channel: input_channel(c500),
        })
        .await
        .expect("leave one");
    reader.client.invoke(&join(c501)).await.expect("room again");
    reader.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_revoked_and_duplicated_keys() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let anonymous = fake.issue_auth_key(None);
    let reader = Reader::connect(&fake, anonymous).await;
    let e = reader
        .client
        .get_me()
        .await
        .expect_err("no account on the key");
    assert_eq!(rpc_name(&e), Some("AUTH_KEY_UNREGISTERED"));
    assert!(!reader.client.is_authorized().await.expect("401 means no"));
    reader.close().await;

    let (id, key) = account(&fake, "+998900000013");
    let first = Reader::connect(&fake, key).await;
    first.client.get_me().await.expect("first connection");
    let second = Reader::connect(&fake, key).await;
    let e = second
        .client
        .get_me()
        .await
        .expect_err("same key, second connection");
    assert!(
        matches!(&e, InvocationError::Rpc(r) if r.code == 406 && r.name == "AUTH_KEY_DUPLICATED"),
        "{e}"
    );
    first.client.get_me().await.expect("the first still works");
    first.close().await;
    second.close().await;
    wait_for(|| {
        // Both connections are gone once the fake saw them close.
        fake.stats(id).calls("users.getUsers") >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let third = Reader::connect(&fake, key).await;
    third.client.get_me().await.expect("the key is free again");

    fake.revoke_session(&key);
    let e = third.client.get_me().await.expect_err("revoked");
    assert!(
        matches!(&e, InvocationError::Rpc(r) if r.code == 401 && r.name == "SESSION_REVOKED"),
        "{e}"
    );
    let stats = fake.stats(id);
    assert!(
        stats.errors("help.getConfig", "AUTH_KEY_DUPLICATED") >= 1,
        "{stats:?}"
    );
    assert_eq!(stats.errors("users.getUsers", "SESSION_REVOKED"), 1);
    third.close().await;
}

/// Whether the fake closes `stream` (EOF) within 5 s; returns what it sent.
async fn closed_by_fake(mut stream: tokio::net::TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut got)).await;
    assert!(
        matches!(r, Ok(Ok(_))),
        "the fake closed the connection: {r:?}"
    );
    got
}

fn full_frame(seq: i32, payload: &[u8]) -> Vec<u8> {
    let len = i32::try_from(payload.len() + 12).unwrap();
    let mut out = len.to_le_bytes().to_vec();
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// CRC-32 (IEEE), as the Full transport uses it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_closes_only_that_connection() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let (_, key) = account(&fake, "+998900000014");
    let good = Reader::connect(&fake, key).await;
    good.client.get_me().await.expect("before");

    // Plain garbage: an HTTP request is no frame.
    let mut s = tokio::net::TcpStream::connect(fake.addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_by_fake(s).await.is_empty());

    // A frame with a broken CRC.
    let mut frame = full_frame(0, &[7u8; 64]);
    let n = frame.len();
    frame[n - 1] ^= 0xff;
    let mut s = tokio::net::TcpStream::connect(fake.addr()).await.unwrap();
    s.write_all(&frame).await.unwrap();
    assert!(closed_by_fake(s).await.is_empty());

    // A well-formed frame under an auth key the fake never issued: -404.
    let mut payload = 0x1122_3344_5566_7788_i64.to_le_bytes().to_vec();
    payload.extend_from_slice(&[0u8; 16 + 48]);
    let mut s = tokio::net::TcpStream::connect(fake.addr()).await.unwrap();
    s.write_all(&full_frame(0, &payload)).await.unwrap();
    assert_eq!(closed_by_fake(s).await, (-404i32).to_le_bytes());

    // The right key, but bytes that do not decrypt.
    let mut payload = grammers_crypto_key_id(&key).to_le_bytes().to_vec();
    payload.extend_from_slice(&[9u8; 16 + 48]);
    let mut s = tokio::net::TcpStream::connect(fake.addr()).await.unwrap();
    s.write_all(&full_frame(0, &payload)).await.unwrap();
    assert!(closed_by_fake(s).await.is_empty());

    assert_eq!(fake.rejected_connections(), 4);
    good.client
        .get_me()
        .await
        .expect("the fake still serves the others");
    good.close().await;
}

/// The auth key id of `key`, computed by grammers' own code: it is the
/// first 8 bytes of anything grammers encrypts with it.
fn grammers_crypto_key_id(key: &[u8; 256]) -> i64 {
    let mut buf = grammers_crypto::DequeBuffer::with_capacity(64, 64);
    buf.extend([0u8; 16]);
    grammers_crypto::encrypt_data_v2(&mut buf, &grammers_crypto::AuthKey::from_bytes(*key));
    i64::from_le_bytes(buf[..8].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_with_grammers_client_side_mtp_and_transport() {
    use grammers_client::tl::Serializable;
    use grammers_mtproto::mtp::{Deserialization, Encrypted, Mtp};
    use grammers_mtproto::transport::{Full, Transport};

    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let (_, key) = account(&fake, "+998900000015");
    let mut mtp = Encrypted::build().compression_threshold(None).finish(key);
    let mut transport = Full::new();
    let mut s = tokio::net::TcpStream::connect(fake.addr()).await.unwrap();
    let mut inbox = Vec::new();
    let mut results = Vec::new();

    // Sends one request the way grammers' sender does; collects what comes back.
    for round in 0..3 {
        let mut buf = grammers_crypto::DequeBuffer::with_capacity(1 << 16, 128);
        let ping = tl::functions::Ping {
            ping_id: 1000 + round,
        }
        .to_bytes();
        mtp.push(&mut buf, &ping);
        mtp.finalize(&mut buf).expect("something to send");
        transport.pack(&mut buf);
        s.write_all(&buf[..]).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
                .await
                .expect("answer")
                .unwrap();
            assert!(n > 0, "the fake closed the connection");
            inbox.extend_from_slice(&chunk[..n]);
            let mut progressed = false;
            while let Ok(off) = transport.unpack(&mut inbox[..]) {
                let out = mtp
                    .deserialize(&mut inbox[off.data_range.clone()])
                    .expect("decrypts and parses");
                results.extend(out.into_iter().map(|d| match d {
                    Deserialization::RpcResult(r) => format!("result {}", r.body.len()),
                    Deserialization::BadMessage(b) => format!("bad {}", b.code),
                    Deserialization::RpcError(e) => format!("error {}", e.error.error_message),
                    _ => "other".to_owned(),
                }));
                inbox.drain(..off.next_offset);
                progressed = true;
            }
            if progressed {
                break;
            }
        }
    }
    // Salt 0 first (bad_server_salt, 48); then grammers asks for future salts
    // before anything else (no result to the caller); then the ping's pong.
    assert_eq!(
        results.first().map(String::as_str),
        Some("bad 48"),
        "{results:?}"
    );
    assert!(
        results.iter().any(|r| r.starts_with("result")),
        "{results:?}"
    );
}

fn forward(
    from: ChannelRef,
    ids: &[i32],
    random_ids: &[i64],
    to: ChannelRef,
) -> tl::functions::messages::ForwardMessages {
    tl::functions::messages::ForwardMessages {
        silent: false,
        background: false,
        with_my_score: false,
        drop_author: false,
        drop_media_captions: false,
        noforwards: false,
        allow_paid_floodskip: false,
        from_ephemeral: false,
        from_peer: input_peer(from),
        id: ids.to_vec(),
        random_id: random_ids.to_vec(),
        to_peer: input_peer(to),
        top_msg_id: None,
        reply_to: None,
        schedule_date: None,
        schedule_repeat_period: None,
        send_as: None,
        quick_reply_shortcut: None,
        effect: None,
        video_timestamp: None,
        allow_paid_stars: None,
        suggested_post: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_into_a_relay_once_per_random_id_and_bots_see_them() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let bot_api = FakeTelegram::start(FakeLimits::off()).expect("bot api");
    fake.attach_bot_api(bot_api.clone());
    let (id, key) = account(&fake, "+998900000016");
    let source = public_channel(&fake, "source_ch");
    let locked = fake.create_channel(ChannelSpec {
        title: "Locked".to_owned(),
        username: Some("locked_ch".to_owned()),
        protected: true,
    });
    let relay = fake.create_channel(ChannelSpec {
        title: "Relay".to_owned(),
        username: None,
        protected: false,
    });
    let elsewhere = public_channel(&fake, "not_mine");
    fake.set_admin(relay, id);
    for i in 1..=3 {
        fake.publish_text(source, &format!("src {i}"));
    }
    fake.publish_text(locked, "do not forward");
    // Posts published here are on the Bot API face too.
    assert_eq!(
        bot_api
            .channel_messages_after(source.bot_api_chat_id(), 0, 10)
            .len(),
        3
    );

    let reader = Reader::signed_in(&fake, key).await;
    let c = &reader.client;
    c.invoke(&forward(source, &[1, 2], &[11, 12], relay))
        .await
        .expect("forward");
    let again = c
        .invoke(&forward(source, &[1, 2], &[11, 12], relay))
        .await
        .expect("same random ids");
    let tl::enums::Updates::Updates(again) = again else {
        panic!("updates")
    };
    let ids: Vec<i32> = again
        .updates
        .iter()
        .filter_map(|u| match u {
            tl::enums::Update::MessageId(m) => Some(m.id),
            _ => None,
        })
        .collect();
    assert_eq!(
        ids,
        vec![1, 2],
        "the repeat names the first forward's messages"
    );
    assert_eq!(
        message_ids(c.invoke(&history(0, 0, 10, relay)).await.expect("relay")),
        vec![2, 1]
    );

    // grammers' own forward (fresh random ids) makes a new copy with its header.
    let src_ref = c
        .resolve_username("source_ch")
        .await
        .unwrap()
        .unwrap()
        .to_ref()
        .await
        .unwrap()
        .unwrap();
    let relay_ref = grammers_client::session::types::PeerRef {
        id: grammers_client::session::types::PeerId::channel_unchecked(relay.id),
        auth: grammers_client::session::types::PeerAuth::from_hash(relay.access_hash),
    };
    let copies = c
        .forward_messages(relay_ref, &[3], src_ref)
        .await
        .expect("forward 3");
    let copy = copies[0].as_ref().expect("forwarded");
    assert_eq!(copy.text(), "src 3");
    assert!(copy.forward_header().is_some());

    let e = c
        .invoke(&forward(locked, &[1], &[21], relay))
        .await
        .expect_err("protected");
    assert_eq!(rpc_name(&e), Some("CHAT_FORWARDS_RESTRICTED"));
    let e = c
        .invoke(&forward(source, &[1], &[22], elsewhere))
        .await
        .expect_err("not an admin");
    assert_eq!(rpc_name(&e), Some("CHAT_WRITE_FORBIDDEN"));

    // Every forward into the relay is a channel post on the Bot API face.
    let relayed = bot_api.channel_messages_after(relay.bot_api_chat_id(), 0, 10);
    let texts: Vec<_> = relayed
        .iter()
        .map(|m| m.text.clone().unwrap_or_default())
        .collect();
    assert_eq!(texts, ["src 1", "src 2", "src 3"]);
    assert_eq!(fake.stats(id).calls("messages.forwardMessages"), 5);
    reader.close().await;
    bot_api.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_a_code_and_with_2fa_and_clear_failures() {
    let fake = MtprotoFake::start(MtprotoConfig {
        code_ttl: Duration::from_secs(2),
        ..MtprotoConfig::default()
    })
    .expect("start");
    let plain = fake.create_account(AccountSpec {
        phone: "+998900000020".to_owned(),
        first_name: "Plain".to_owned(),
        ..AccountSpec::default()
    });
    let guarded = fake.create_account(AccountSpec {
        phone: "+998900000021".to_owned(),
        first_name: "Guarded".to_owned(),
        password: Some("correct horse".to_owned()),
        ..AccountSpec::default()
    });

    // A code: wrong, then right; then log out.
    let key = fake.issue_auth_key(None);
    let r = Reader::connect(&fake, key).await;
    assert!(!r.client.is_authorized().await.unwrap());
    let token = r
        .client
        .request_login_code("+998900000020", "hash")
        .await
        .expect("sendCode");
    let code = fake.login_code("+998900000020").expect("a code was sent");
    let wrong = format!("{:05}", (code.parse::<u32>().unwrap() + 1) % 100_000);
    assert!(matches!(
        r.client.sign_in(&token, &wrong).await,
        Err(SignInError::InvalidCode)
    ));
    let user = r.client.sign_in(&token, &code).await.expect("right code");
    assert_eq!(user.id().bare_id_unchecked(), plain);
    assert_eq!(fake.key_account(&key), Some(plain));
    assert_eq!(
        r.client.get_me().await.unwrap().id().bare_id_unchecked(),
        plain
    );
    r.client.sign_out().await.expect("logOut");
    let e = r.client.get_me().await.expect_err("logged out");
    assert_eq!(rpc_name(&e), Some("AUTH_KEY_UNREGISTERED"));

    // An expired code.
    let token = r
        .client
        .request_login_code("+998900000020", "hash")
        .await
        .expect("sendCode");
    let code = fake.login_code("+998900000020").unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(matches!(
        r.client.sign_in(&token, &code).await,
        Err(SignInError::InvalidCode)
    ));
    r.close().await;
    let anon = fake.anonymous_stats();
    assert_eq!(
        anon["auth.signIn"].errors.get("PHONE_CODE_INVALID"),
        Some(&1),
        "{anon:?}"
    );
    assert_eq!(
        anon["auth.signIn"].errors.get("PHONE_CODE_EXPIRED"),
        Some(&1),
        "{anon:?}"
    );

    // 2FA: the code, then SRP; a wrong password first.
    let key = fake.issue_auth_key(None);
    let r = Reader::connect(&fake, key).await;
    let token = r
        .client
        .request_login_code("+998900000021", "hash")
        .await
        .expect("sendCode");
    let code = fake.login_code("+998900000021").unwrap();
    let Err(SignInError::PasswordRequired(password)) = r.client.sign_in(&token, &code).await else {
        panic!("2FA account needs its password")
    };
    let Err(SignInError::InvalidPassword(password)) =
        r.client.check_password(password, "wrong horse").await
    else {
        panic!("a wrong password fails clearly")
    };
    assert_eq!(fake.key_account(&key), None);
    let user = r
        .client
        .check_password(password, "correct horse")
        .await
        .expect("SRP verified");
    assert_eq!(user.id().bare_id_unchecked(), guarded);
    assert_eq!(fake.key_account(&key), Some(guarded));
    let stats = fake.stats(guarded);
    assert_eq!(stats.calls("users.getUsers"), 0);
    let anon = fake.anonymous_stats();
    assert_eq!(
        anon["auth.checkPassword"]
            .errors
            .get("PASSWORD_HASH_INVALID"),
        Some(&1),
        "{anon:?}"
    );
    r.close().await;
}

/// Pushed updates per second the fake sustains to one grammers client (the
/// client's own decryption and update handling included). A measurement, not
/// a check: `cargo test -p kuryer-sim --test mtproto -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run explicitly"]
async fn measure_push_throughput_to_one_account() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let (id, key) = account(&fake, "+998900000099");
    let news = public_channel(&fake, "firehose");
    let params = ConnectionParams {
        updates_channel_capacity: std::num::NonZeroUsize::new(1 << 20).unwrap(),
        ..ConnectionParams::default()
    };
    let reader = Reader::connect_with(&fake, key, params).await;
    reader.client.get_me().await.expect("get_me");
    let (reader, mut stream) = joined(reader, "firehose").await;
    const N: usize = 5000;
    let started = std::time::Instant::now();
    let fake = Arc::new(fake);
    let publisher = {
        let fake = Arc::clone(&fake);
        std::thread::spawn(move || {
            for i in 0..N {
                fake.publish_text(news, &format!("p{i}"));
            }
            started.elapsed()
        })
    };
    let mut got = 0;
    while got < N {
        let u = next_update(&mut stream).await;
        if matches!(u, tl::enums::Update::NewChannelMessage(_)) {
            got += 1;
        }
    }
    let publish_time = publisher.join().expect("publisher");
    let elapsed = started.elapsed();
    let stats = fake.stats(id);
    println!(
        "pushed {N} updates to one account in {elapsed:?} ({:.0}/s; publishing took {publish_time:?}); \
         dropped by the client's channel and recovered by getChannelDifference: {} calls",
        N as f64 / elapsed.as_secs_f64(),
        stats.calls("updates.getChannelDifference"),
    );
    reader.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_world_posts_from_either_face_reach_both() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let bot_api = FakeTelegram::start(FakeLimits::off()).expect("bot api");
    fake.attach_bot_api(bot_api.clone());
    let (_, key) = account(&fake, "+998900000030");
    let news = public_channel(&fake, "both_faces");
    let (reader, mut stream) = joined_reader(&fake, key, "both_faces").await;

    let from_bot_api = bot_api.post(
        news.bot_api_chat_id(),
        kuryer_sim::fake_bot_api::NewChannelMessage::text("published on the Bot API face"),
    );
    assert_eq!(
        text_of(&next_update(&mut stream).await),
        (
            "new",
            from_bot_api,
            "published on the Bot API face".to_owned()
        )
    );
    let from_control = fake.publish_text(news, "published on the MTProto face");
    assert_eq!(from_control, from_bot_api + 1);
    assert_eq!(
        text_of(&next_update(&mut stream).await),
        (
            "new",
            from_control,
            "published on the MTProto face".to_owned()
        )
    );
    let on_bot_api: Vec<_> = bot_api
        .channel_messages_after(news.bot_api_chat_id(), 0, 10)
        .into_iter()
        .map(|m| (m.id, m.text.unwrap_or_default()))
        .collect();
    assert_eq!(
        on_bot_api,
        [
            (from_bot_api, "published on the Bot API face".to_owned()),
            (from_control, "published on the MTProto face".to_owned())
        ]
    );
    reader.close().await;
    bot_api.stop();
}

/// Pushed updates per second to 20 grammers clients, one channel they all
/// joined (the fan-out side of the fake). A measurement, run explicitly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run explicitly"]
async fn measure_push_throughput_to_twenty_accounts() {
    const ACCOUNTS: usize = 20;
    const POSTS: usize = 500;
    let fake = Arc::new(MtprotoFake::start(MtprotoConfig::default()).expect("start"));
    let news = public_channel(&fake, "fanout");
    let mut streams = Vec::new();
    for i in 0..ACCOUNTS {
        let (_, key) = account(&fake, &format!("+99890100{i:04}"));
        let params = ConnectionParams {
            updates_channel_capacity: std::num::NonZeroUsize::new(1 << 20).unwrap(),
            ..ConnectionParams::default()
        };
        let reader = Reader::connect_with(&fake, key, params).await;
        reader.client.get_me().await.expect("get_me");
        streams.push(joined(reader, "fanout").await);
    }
    let started = std::time::Instant::now();
    let publisher = {
        let fake = Arc::clone(&fake);
        std::thread::spawn(move || {
            for i in 0..POSTS {
                fake.publish_text(news, &format!("p{i}"));
            }
        })
    };
    let mut tasks = Vec::new();
    for (reader, mut stream) in streams {
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            while got < POSTS {
                if matches!(
                    next_update(&mut stream).await,
                    tl::enums::Update::NewChannelMessage(_)
                ) {
                    got += 1;
                }
            }
            reader.close().await;
        }));
    }
    for t in tasks {
        t.await.expect("reader");
    }
    publisher.join().expect("publisher");
    let elapsed = started.elapsed();
    let total = ACCOUNTS * POSTS;
    println!(
        "pushed {total} updates ({POSTS} posts x {ACCOUNTS} accounts) in {elapsed:?}: {:.0}/s",
        total as f64 / elapsed.as_secs_f64()
    );
}
