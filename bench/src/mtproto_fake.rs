//! The MTProto fake's own capacity: pushed updates per second from the
//! simulated data centre to grammers clients, at 10,000 channels, and the
//! fake's CPU per update — so that the reader benchmarks that use it know
//! the fake is not what limits them.
//!
//! The fake runs on its own runtime thread(s) named `fake-mtproto`; their
//! CPU time is read from `/proc/self/task/*/stat`, so the fake's cost per
//! update is measured apart from the clients' (grammers decrypting and
//! processing the same updates in this process).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use grammers_client::client::UpdateStream;
use grammers_client::sender::{ConnectionParams, UpdatesConfiguration};
use grammers_client::session::Session;
use grammers_client::session::storages::MemorySession;
use grammers_client::session::types::{UpdateState, UpdatesState};
use grammers_client::{Client, SenderPool, tl};
use kuryer_sim::mtproto::{AccountSpec, ChannelRef, ChannelSpec, MtprotoConfig, MtprotoFake};
use serde::{Deserialize, Serialize};

use crate::util::cpu_seconds;

/// What one measurement does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MtprotoFakeSpec {
    /// Label in the report.
    pub(crate) label: String,
    /// Channels the fake holds.
    pub(crate) channels: usize,
    /// Reader accounts, each joined to `joined` channels of its own.
    pub(crate) accounts: usize,
    /// Channels each account joined (Telegram's cap is 500).
    pub(crate) joined: usize,
    /// Posts published, round robin over the joined channels.
    pub(crate) posts: usize,
}

/// What it measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct MtprotoFakeResult {
    /// The spec's label.
    pub(crate) label: String,
    /// Channels the fake held.
    pub(crate) channels: usize,
    /// Accounts connected.
    pub(crate) accounts: usize,
    /// New-message updates the clients received (= pushed).
    pub(crate) updates: u64,
    /// Publish of the first post → last update received (s).
    pub(crate) elapsed_s: f64,
    /// Updates received per second.
    pub(crate) updates_per_s: f64,
    /// CPU of the fake's threads (its runtime and the publisher) per update (µs).
    pub(crate) fake_cpu_us_per_update: f64,
    /// CPU of the whole process (fake, clients, publisher) per update (µs).
    pub(crate) process_cpu_us_per_update: f64,
    /// Time to create the channels and connect and join the accounts (s).
    pub(crate) setup_s: f64,
}

/// One grammers client joined to its channels, its update stream open.
struct Reader {
    client: Client,
    stream: UpdateStream,
    pool: tokio::task::JoinHandle<()>,
}

/// Runs one measurement (in a child process of its own).
pub(crate) async fn run(spec: &MtprotoFakeSpec) -> anyhow::Result<MtprotoFakeResult> {
    let setup = Instant::now();
    let fake = Arc::new(MtprotoFake::start(MtprotoConfig::default())?);
    let channels: Vec<ChannelRef> = (0..spec.channels)
        .map(|i| {
            fake.create_channel(ChannelSpec {
                title: format!("Bench channel {i}"),
                username: Some(format!("bench_mt_{i}")),
                protected: false,
            })
        })
        .collect();
    let joined = spec.joined.min(spec.channels / spec.accounts.max(1)).max(1);
    let mut readers = Vec::with_capacity(spec.accounts);
    for a in 0..spec.accounts {
        let id = fake.create_account(AccountSpec {
            phone: format!("+99890{a:07}"),
            first_name: "Bench reader".to_owned(),
            ..AccountSpec::default()
        });
        let key = fake.issue_auth_key(Some(id));
        let names: Vec<String> = (a * joined..(a + 1) * joined)
            .map(|i| format!("bench_mt_{i}"))
            .collect();
        readers.push(connect(&fake, key, &names).await?);
    }
    let setup_s = setup.elapsed().as_secs_f64();

    // Posts round robin over every joined channel: each reaches one account.
    let targets: Vec<ChannelRef> = channels[..joined * spec.accounts].to_vec();
    let fake_cpu0 = fake_cpu_seconds();
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    // The publisher waits for `done` before it ends, so its CPU time can
    // still be read (a finished thread leaves /proc/self/task).
    let (done, wait_done) = std::sync::mpsc::channel::<()>();
    let publisher = {
        let fake = Arc::clone(&fake);
        let posts = spec.posts;
        // Publishing is the fake's work too (the world, pts, the fan-out to
        // connections): its thread counts as the fake's.
        std::thread::Builder::new()
            .name("fake-publisher".to_owned())
            .spawn(move || {
                for i in 0..posts {
                    fake.publish_text(targets[i % targets.len()], &format!("post {i}"));
                }
                let _ = wait_done.recv();
            })?
    };
    let per_account = spec.posts / spec.accounts.max(1);
    let mut tasks = Vec::new();
    for mut r in readers {
        let want = per_account;
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            while got < want {
                match tokio::time::timeout(Duration::from_secs(30), r.stream.next_raw()).await {
                    Ok(Ok((tl::enums::Update::NewChannelMessage(_), _, _))) => got += 1,
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => anyhow::bail!("update stream: {e}"),
                    Err(_) => anyhow::bail!("no update for 30 s after {got} of {want}"),
                }
            }
            r.client.disconnect();
            let _ = tokio::time::timeout(Duration::from_secs(5), r.pool).await;
            Ok(got as u64)
        }));
    }
    let mut updates = 0;
    for t in tasks {
        updates += t.await.context("reader task")??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let fake_cpu = fake_cpu_seconds() - fake_cpu0;
    drop(done);
    publisher
        .join()
        .map_err(|_| anyhow::anyhow!("publisher panicked"))?;
    fake.stop();
    let per = |s: f64| s * 1e6 / (updates.max(1) as f64);
    Ok(MtprotoFakeResult {
        label: spec.label.clone(),
        channels: spec.channels,
        accounts: spec.accounts,
        updates,
        elapsed_s: elapsed,
        updates_per_s: updates as f64 / elapsed.max(1e-9),
        fake_cpu_us_per_update: per(fake_cpu),
        process_cpu_us_per_update: per(cpu),
        setup_s,
    })
}

/// A client on `key`, joined to `names` over MTProto (resolve + join, as a
/// reader does), with its update state saved and its stream open.
async fn connect(fake: &MtprotoFake, key: [u8; 256], names: &[String]) -> anyhow::Result<Reader> {
    let session = Arc::new(MemorySession::from(fake.session_data(key)));
    let params = ConnectionParams {
        // Never drop an update in the client: the figure is the fake's.
        updates_channel_capacity: std::num::NonZeroUsize::new(1 << 20).expect("non-zero"),
        ..ConnectionParams::default()
    };
    let SenderPool {
        runner,
        handle,
        updates,
    } = SenderPool::with_configuration(Arc::clone(&session), 1, params);
    let client = Client::new(handle);
    let pool = tokio::spawn(runner.run());
    client.get_me().await.context("getMe")?;
    for name in names {
        let peer = client
            .resolve_username(name)
            .await
            .context("resolveUsername")?
            .with_context(|| format!("{name} not found"))?;
        let r = peer
            .to_ref()
            .await
            .map_err(|e| anyhow::anyhow!("peer ref: {e}"))?
            .context("no access hash")?;
        client.join_chat(r).await.context("joinChannel")?;
    }
    let tl::enums::updates::State::State(state) = client
        .invoke(&tl::functions::updates::GetState {})
        .await
        .context("getState")?;
    session
        .set_update_state(UpdateState::All(UpdatesState {
            pts: state.pts,
            qts: state.qts,
            date: state.date,
            seq: state.seq,
            channels: Vec::new(),
        }))
        .await
        .map_err(|e| anyhow::anyhow!("save update state: {e:?}"))?;
    let stream = client
        .stream_updates(updates, UpdatesConfiguration { catch_up: true })
        .await
        .map_err(|e| anyhow::anyhow!("open the update stream: {e:?}"))?;
    Ok(Reader {
        client,
        stream,
        pool,
    })
}

/// CPU seconds of the fake: its runtime's threads and the publisher.
fn fake_cpu_seconds() -> f64 {
    thread_cpu_seconds("fake-mtproto") + thread_cpu_seconds("fake-publisher")
}

/// CPU seconds (user + system) of this process's threads named `name`.
pub(crate) fn thread_cpu_seconds(name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut total = 0.0;
    for task in tasks.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        if let (Some(u), Some(s)) = (ticks(11), ticks(12)) {
            // USER_HZ is 100 on every Linux architecture kuryer runs on.
            total += (u + s) / 100.0;
        }
    }
    total
}
