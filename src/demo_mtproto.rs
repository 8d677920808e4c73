//! `kuryer demo --reader mtproto`: every channel read by grammers from the
//! fake data centre over TCP, as `kuryer run` reads channels its bot does
//! not administer. Several reader accounts, a join capacity below the
//! channel count (the rest are polled), media and albums through a relay
//! channel. The demo publishes on the fake Bot API's face as always; the two
//! faces are one world, so each post is also in the data centre.

use std::collections::HashMap;
use std::sync::Arc;

use kuryer_actors::model::ChannelRef as PipelineChannel;
use kuryer_actors::ports::SourceFactory;
use kuryer_sim::fake_bot_api::FakeTelegram;
use kuryer_sim::mtproto::{AccountSpec, ChannelRef, ChannelSpec, MtprotoConfig, MtprotoFake};

use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::reader::ReaderPool;
use crate::reader::crypto::SessionCipher;
use crate::reader::session::PgSession;
use crate::secret::Secret;
use crate::source_events::{self, EventInbox, SourceEvents};
use crate::store::Store;

/// Reader accounts of the demo.
const ACCOUNTS: u32 = 3;

/// The fake data centre set up for reading: channels mirroring the
/// database's channel rows `1..=n`, a relay channel, accounts with their
/// sessions stored. Shared by `kuryer demo --reader mtproto` and
/// `kuryer-bench --scenario reader`.
pub struct ReaderWorld {
    /// The data centre.
    pub dc: MtprotoFake,
    /// The data centre's channel for channel row `i` at index `i - 1`.
    pub channels: Vec<ChannelRef>,
    /// The accounts' ids in the data centre; account `a` is named `demo{a}`.
    pub accounts: Vec<i64>,
    /// The relay channel (every account administers it).
    pub relay: ChannelRef,
    session_key: String,
}

/// Pushed posts and resolved channels into a pipeline.
pub struct Wake(pub Pipeline);

impl SourceEvents for Wake {
    fn wake(&self, channel_id: i64) {
        self.0.wake(channel_id);
    }
    fn resolved(&self, channel: PipelineChannel) {
        self.0.start_channel(channel);
    }
}

impl ReaderWorld {
    /// Starts a data centre with `dc_config` (its flood limits), joined to
    /// `fake` when given (one world with the Bot API face), creates a relay and `channels` channels, points channel rows
    /// `1..=channels` (which must exist) at them, and creates `accounts`
    /// accounts with their sessions stored under a fresh session key.
    pub async fn create(
        store: &Store,
        fake: Option<&FakeTelegram>,
        dc_config: MtprotoConfig,
        channels: u32,
        accounts: u32,
    ) -> anyhow::Result<Self> {
        let dc = MtprotoFake::start(dc_config)?;
        if let Some(fake) = fake {
            dc.attach_bot_api(fake.clone());
        }
        let relay = dc.create_channel(ChannelSpec {
            title: "Demo relay".to_owned(),
            username: None,
            protected: false,
        });
        if let Some(fake) = fake {
            fake.set_admin(
                relay.bot_api_chat_id(),
                kuryer_sim::fixtures::bot_token(),
                true,
            );
        }
        let mut refs = Vec::with_capacity(channels as usize);
        for i in 1..=i64::from(channels) {
            let ch = dc.create_channel(ChannelSpec {
                title: format!("Demo channel {i}"),
                username: Some(format!("demo_channel_{i}")),
                protected: false,
            });
            refs.push(ch);
        }
        let key = format!("demo-session-key-{:016x}", rand::random::<u64>());
        let cipher = Arc::new(SessionCipher::new(Some(&Secret::new(key.clone())))?);
        let mut account_ids = Vec::with_capacity(accounts as usize);
        for a in 0..accounts {
            let name = format!("demo{a}");
            let id = dc.create_account(AccountSpec {
                phone: format!("+99890700{a:04}"),
                ..AccountSpec::default()
            });
            dc.add_member(relay, id);
            dc.set_admin(relay, id);
            let session = PgSession::load(store.clone(), Arc::clone(&cipher), &name).await?;
            session
                .import(dc.session_data(dc.issue_auth_key(Some(id))))
                .await?;
            store.set_session_user(&name, id, 0).await?;
            account_ids.push(id);
        }
        seed_hashes(store, &dc, &refs, relay, &account_ids).await?;
        Ok(Self {
            dc,
            channels: refs,
            accounts: account_ids,
            relay,
            session_key: key,
        })
    }

    /// `cfg` with what the pool needs to use these accounts: an
    /// application id and hash, the session key, the relay.
    pub fn reader_config(&self, cfg: &Config) -> Config {
        let mut cfg = cfg.clone();
        cfg.telegram.api_id = 1;
        cfg.telegram.api_hash = Some(Secret::new("0123456789abcdef0123456789abcdef"));
        cfg.telegram.relay_chat_id = Some(self.relay.bot_api_chat_id());
        cfg.reader.session_key = Some(Secret::new(self.session_key.clone()));
        cfg.reader.relay_access_hash = self
            .accounts
            .first()
            .map(|&a| self.dc.access_hash(self.relay, a));
        // The simulated data centre of a demo or bench has no daily limits:
        // budgets a careful operator sets for real accounts would make it
        // take days.
        cfg.reader.resolves_per_day = 1_000_000;
        cfg.reader.joins_first_day = 1_000_000;
        cfg.reader.joins_per_day = 1_000_000;
        cfg
    }

    /// Channel rows already read by an account, joined or not:
    /// `(channel row (1-based), account (0-based), joined)`, assigned in the
    /// database as the pool would have left them and, when joined, a
    /// member in the data centre. Lets a bench start from accounts joined
    /// long ago instead of joining at Telegram's pace (5 a minute).
    pub async fn preassign(
        &self,
        store: &Store,
        rows: &[(i64, usize, bool)],
    ) -> anyhow::Result<()> {
        let mut ids = Vec::with_capacity(rows.len());
        let mut names = Vec::with_capacity(rows.len());
        let mut joined = Vec::with_capacity(rows.len());
        for &(channel, account, j) in rows {
            if j {
                let idx = usize::try_from(channel - 1)?;
                self.dc
                    .add_member(self.channels[idx], self.accounts[account]);
            }
            ids.push(channel);
            names.push(format!("demo{account}"));
            joined.push(j);
        }
        store
            .conn("demo reader assignments")
            .await?
            .execute(
                "INSERT INTO reader_assignments (channel_id, account, joined)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::bool[])
                 ON CONFLICT (channel_id) DO UPDATE SET account = excluded.account, joined = excluded.joined",
                &[&ids, &names, &joined],
            )
            .await?;
        Ok(())
    }
}

/// Points channel rows `1..=n` at the data centre's channels (account 0's
/// hash as the row's one hash) and stores every account's own access hash
/// of every channel and of the relay, as if each had resolved them long
/// ago: Telegram gives every account its own hash. One statement each:
/// 10,000 round trips would dominate a large bench's set-up.
async fn seed_hashes(
    store: &Store,
    dc: &MtprotoFake,
    refs: &[ChannelRef],
    relay: ChannelRef,
    accounts: &[i64],
) -> anyhow::Result<()> {
    let first = accounts.first().copied().unwrap_or(0);
    let ids: Vec<i64> = (1..=refs.len() as i64).collect();
    let chats: Vec<i64> = refs.iter().map(|c| c.bot_api_chat_id()).collect();
    let hashes: Vec<i64> = refs.iter().map(|&c| dc.access_hash(c, first)).collect();
    let conn = store.conn("demo reader channels").await?;
    conn.execute(
        "UPDATE channels c SET telegram_id = v.chat, access_hash = v.hash, bot_is_admin = false
           FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS v(id, chat, hash)
          WHERE c.id = v.id",
        &[&ids, &chats, &hashes],
    )
    .await?;
    let (mut names, mut peers, mut own) = (Vec::new(), Vec::new(), Vec::new());
    for (a, &account) in accounts.iter().enumerate() {
        for &c in refs.iter().chain(std::iter::once(&relay)) {
            names.push(format!("demo{a}"));
            peers.push(c.id);
            own.push(dc.access_hash(c, account));
        }
    }
    conn.execute(
        "INSERT INTO reader_peer_hashes (account, peer_id, access_hash)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
         ON CONFLICT (account, peer_id) DO UPDATE SET access_hash = excluded.access_hash",
        &[&names, &peers, &own],
    )
    .await?;
    Ok(())
}

/// The data centre, the accounts and the channel ids of one demo run.
pub(crate) struct MtprotoWorld {
    world: ReaderWorld,
    pool: ReaderPool,
    /// The pool's events, until `connect` hands them to the pipeline.
    inbox: std::sync::Mutex<Option<EventInbox>>,
}

impl MtprotoWorld {
    /// Starts the data centre joined to `fake`, creates the channels, a
    /// relay, three accounts whose joins cover about two thirds of the
    /// channels, stores their sessions, points the channel rows at the data
    /// centre's channels and leases the accounts.
    pub(crate) async fn start(
        store: &Store,
        cfg: &Config,
        fake: &FakeTelegram,
        channels: u32,
    ) -> anyhow::Result<Self> {
        let world = ReaderWorld::create(
            store,
            Some(fake),
            MtprotoConfig::default(),
            channels,
            ACCOUNTS,
        )
        .await?;
        let mut cfg = world.reader_config(cfg);
        // Two thirds joined, the rest polled every second.
        cfg.reader.max_channels_per_account = (channels * 2 / 3 / ACCOUNTS).max(1);
        cfg.reader.join_interval_ms = 20;
        cfg.reader.poll_interval_s = 1;
        cfg.reader.history_per_second = 200.0;
        // Events wait in the queue until the pipeline exists (`connect`).
        let (events, inbox) = source_events::queue();
        let pool = ReaderPool::start(store.clone(), &cfg, "kuryer-demo".to_owned(), events).await;
        Ok(Self {
            world,
            pool,
            inbox: std::sync::Mutex::new(Some(inbox)),
        })
    }

    /// Every channel read through the reader pool.
    pub(crate) fn factory(&self) -> SourceFactory {
        let pool = self.pool.clone();
        Arc::new(move |ch| Box::new(pool.source(ch)))
    }

    /// Pushed posts wake the pipeline's pollers.
    pub(crate) fn connect(&self, pipeline: &Pipeline) {
        let inbox = self
            .inbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(inbox) = inbox {
            actix_rt::spawn(inbox.deliver(Arc::new(Wake(pipeline.clone()))));
        }
    }

    /// Bot API chat id of channel `i` (1-based).
    pub(crate) fn chat(&self, i: i64) -> i64 {
        self.world.channels[usize::try_from(i - 1).unwrap_or(0)].bot_api_chat_id()
    }

    /// The subscription pairs with the data centre's chat ids.
    pub(crate) fn remap_pairs(&self, pairs: &[(i64, i64)]) -> Vec<(i64, i64)> {
        pairs
            .iter()
            .map(|&(dest, chat)| {
                let i = kuryer_sim::fixtures::channel_chat(0) - chat;
                (dest, self.chat(i))
            })
            .collect()
    }

    /// Expected deliveries with media posts named by their relay copy (the
    /// bot copies those from the relay), once recorded.
    pub(crate) async fn relayed(
        &self,
        store: &Store,
        expected: Vec<(i64, i64, i32)>,
    ) -> anyhow::Result<Vec<(i64, i64, i32)>> {
        let c = store.conn("demo relay ids").await?;
        let rows = c
            .query(
                "SELECT c.telegram_id, p.message_id, p.relay_message_ids[1]
                   FROM posts p JOIN channels c ON c.id = p.channel_id
                  WHERE p.relay_message_ids IS NOT NULL",
                &[],
            )
            .await?;
        let relay: HashMap<(i64, i32), i32> = rows
            .iter()
            .map(|r| {
                (
                    (r.get::<_, i64>(0), r.get::<_, i64>(1) as i32),
                    r.get::<_, i64>(2) as i32,
                )
            })
            .collect();
        Ok(expected
            .into_iter()
            .map(|(dest, chat, id)| match relay.get(&(chat, id)).copied() {
                Some(r) => (dest, self.world.relay.bot_api_chat_id(), r),
                None => (dest, chat, id),
            })
            .collect())
    }

    /// Posts out of order, over the posts copied from their own channel:
    /// relay ids interleave many channels' posts, so an order among them
    /// is not the channel's order.
    pub(crate) fn out_of_order(&self, fake: &FakeTelegram, expected: &[(i64, i64, i32)]) -> u64 {
        let own: Vec<(i64, i64, i32)> = expected
            .iter()
            .copied()
            .filter(|e| e.1 != self.world.relay.bot_api_chat_id())
            .collect();
        fake.report(&own).out_of_order
    }

    /// Channels read by polling (past the accounts' join capacity).
    pub(crate) async fn polled(&self, store: &Store) -> u64 {
        let joined = match store.reader_assignments().await {
            Ok(a) => a.iter().filter(|a| a.joined).count(),
            Err(_) => return 0,
        };
        let n = self.world.channels.len();
        (n - joined.min(n)) as u64
    }

    /// Gives the leases back and stops the data centre.
    pub(crate) async fn stop(&self) {
        self.pool.close().await;
        self.world.dc.stop();
    }
}
