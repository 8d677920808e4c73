//! The MTProto face against grammers-client, unmodified, over TCP: every
//! test connects a real `Client` (its own sender, transport, encryption and
//! update handling) to a fake data centre on 127.0.0.1 and checks what it
//! gets and what the fake counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use grammers_client::session::storages::MemorySession;
use grammers_client::session::types::{PeerId, PeerInfo};
use grammers_client::session::updates::UpdatesLike;
use grammers_client::session::Session;
use grammers_client::tl;
use grammers_client::{Client, InvocationError, SenderPool};
use kuryer_sim::mtproto::{AccountSpec, ChannelRef, ChannelSpec, MtprotoConfig, MtprotoFake};
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
