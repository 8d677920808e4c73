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
use kuryer_sim::mtproto::{AccountSpec, ChannelRef, ChannelSpec, MtprotoConfig, MtprotoFake};
use kuryer_sim::mtproto::{EscalatingLimit, FloodLimit};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

mod flows;
mod updates;
mod wire;

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

/// The channel as `account` addresses it (with its own access hash).
fn input_channel(fake: &MtprotoFake, c: ChannelRef, account: i64) -> tl::enums::InputChannel {
    tl::types::InputChannel {
        channel_id: c.id,
        access_hash: fake.access_hash(c, account),
    }
    .into()
}

fn input_peer(fake: &MtprotoFake, c: ChannelRef, account: i64) -> tl::enums::InputPeer {
    tl::types::InputPeerChannel {
        channel_id: c.id,
        access_hash: fake.access_hash(c, account),
    }
    .into()
}

fn history(
    min_id: i32,
    offset_id: i32,
    limit: i32,
    peer: tl::enums::InputPeer,
) -> tl::functions::messages::GetHistory {
    tl::functions::messages::GetHistory {
        peer,
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
            .invoke(&history(20, 0, 100, input_peer(&fake, news, id)))
            .await
            .expect("history"),
    );
    assert_eq!(ids, (21..=30).rev().collect::<Vec<_>>());
    let ids = message_ids(
        client
            .invoke(&history(0, 25, 3, input_peer(&fake, news, id)))
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
            channel: input_channel(&fake, news, id),
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
            channel: input_channel(&fake, news, id),
        })
        .await
        .expect("getFullChannel");
    let tl::enums::ChatFull::ChannelFull(full) = full.full_chat else {
        panic!("a channel's full chat")
    };
    assert_eq!(full.pts, fake.channel_pts(news));
    let tl::enums::messages::Chats::Chats(chats) = client
        .invoke(&tl::functions::channels::GetChannels {
            id: vec![input_channel(&fake, news, id)],
        })
        .await
        .expect("getChannels")
    else {
        panic!("all channels fit in one answer")
    };
    assert!(matches!(&chats.chats[0], tl::enums::Chat::Channel(c) if c.id == news.id && !c.left));

    client
        .invoke(&tl::functions::channels::LeaveChannel {
            channel: input_channel(&fake, news, id),
        })
        .await
        .expect("leave");
    let again = client
        .invoke(&tl::functions::channels::LeaveChannel {
            channel: input_channel(&fake, news, id),
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
            .invoke(&history(0, 0, 10, input_peer(&fake, closed, id)))
            .await
            .expect_err("private"),
        client
            .invoke(&tl::functions::channels::JoinChannel {
                channel: input_channel(&fake, closed, id),
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
                .invoke(&history(0, 0, 10, input_peer(&fake, closed, id)))
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
        .invoke(&history(0, 0, 10, input_peer(&fake, public, id)))
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
        .invoke(&history(0, 0, 10, input_peer(&fake, closed, id)))
        .await
        .expect_err("deleted");
    assert_eq!(rpc_name(&e), Some("CHANNEL_PRIVATE"), "{e}");
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
async fn an_access_hash_serves_only_the_account_it_was_given_to() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let (id, key) = account(&fake, "+998900000004");
    let (other, _) = account(&fake, "+998900000005");
    let news = public_channel(&fake, "hash_is_mine");
    fake.publish_text(news, "one");
    assert_ne!(fake.access_hash(news, id), fake.access_hash(news, other));
    let reader = Reader::signed_in(&fake, key).await;
    let client = &reader.client;
    // The hash resolveUsername hands this account is its own one.
    let tl::enums::contacts::ResolvedPeer::Peer(found) = client
        .invoke(&tl::functions::contacts::ResolveUsername {
            username: "hash_is_mine".to_owned(),
            referer: None,
        })
        .await
        .expect("resolve");
    let Some(tl::enums::Chat::Channel(c)) = found.chats.first() else {
        panic!("a channel: {found:?}")
    };
    assert_eq!(c.access_hash, Some(fake.access_hash(news, id)));
    // Another account's hash: CHANNEL_INVALID for every call taking it.
    let e = client
        .invoke(&history(0, 0, 10, input_peer(&fake, news, other)))
        .await
        .expect_err("another account's hash");
    assert_eq!(rpc_name(&e), Some("CHANNEL_INVALID"), "{e}");
    let e = client
        .invoke(&tl::functions::channels::JoinChannel {
            channel: input_channel(&fake, news, other),
        })
        .await
        .expect_err("another account's hash");
    assert_eq!(rpc_name(&e), Some("CHANNEL_INVALID"), "{e}");
    assert_eq!(
        message_ids(
            client
                .invoke(&history(0, 0, 10, input_peer(&fake, news, id)))
                .await
                .expect("its own hash")
        ),
        vec![1]
    );
    reader.close().await;
}
