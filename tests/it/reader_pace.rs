//! An account reading many joined channels against the fake data centre
//! over TCP: the re-reads of silent channels (in case a push was lost) take
//! at most half of its getHistory pace, however low `verify_interval_s`
//! is, so a read that carries posts never waits behind a queue of them;
//! a channel Telegram stopped pushing is still read, and nothing is lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kuryer::reader::ReaderPool;
use kuryer_actors::ports::ChannelSource;
use kuryer_sim::fake_bot_api::FakeLimits;

use crate::reader::reader_config;
use crate::reader_pages::{Quiet, channel};

const CHANNELS: usize = 20;
/// getHistory calls a second the account may make.
const PACE: f64 = 10.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_reads_of_silent_channels_take_at_most_half_the_history_pace() {
    let (db, store, _bot_api, dc, account) =
        crate::reader::reader_world(FakeLimits::off(), "+998900003701", "pace").await;
    let mut channels = Vec::new();
    for i in 0..CHANNELS {
        channels.push(
            channel(
                &db,
                &store,
                &dc,
                account,
                "pace",
                &format!("paced{i}"),
                true,
            )
            .await,
        );
    }
    let mut cfg = reader_config(&db);
    cfg.reader.history_per_second = PACE;
    // A re-read of every channel each second would need 20 calls a
    // second, twice the whole pace.
    cfg.reader.verify_interval_s = 1;
    cfg.reader.quiet_check_min_s = 1;
    let pool = ReaderPool::start(store.clone(), &cfg, "pace".to_owned(), Arc::new(Quiet)).await;
    // One poller a channel, reading every 100 ms as a woken poller would
    // (a source's reads are not `Send`: the pollers run on one thread).
    let local = tokio::task::LocalSet::new();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut pollers = Vec::new();
    for (r, _) in &channels {
        let mut source = pool.source(r);
        let stop = Arc::clone(&stop);
        pollers.push(local.spawn_local(async move {
            let mut hwm = 0;
            let mut got = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for m in source.fetch(hwm, 100).await.unwrap() {
                    assert!(m.id > hwm, "in order, never twice");
                    hwm = m.id;
                    got.push(m.id);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            got
        }));
    }
    local
        .run_until(async {
            // Every channel read once (the first read after a start).
            let started = Instant::now();
            while dc.stats(account).calls("messages.getHistory") < CHANNELS as u64 {
                assert!(started.elapsed() < Duration::from_secs(20), "first reads");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;

            // Silence: only re-reads. Measured over 8 s.
            let window = Duration::from_secs(8);
            let before = dc.stats(account).calls("messages.getHistory");
            tokio::time::sleep(window).await;
            let re_reads = dc.stats(account).calls("messages.getHistory") - before;
            let half = PACE * 0.5 * window.as_secs_f64();
            assert!(
                re_reads >= 1,
                "silent channels are still re-read in case a push was lost"
            );
            assert!(
                (re_reads as f64) <= half * 1.25,
                "{re_reads} re-reads in {window:?}: more than half the pace ({half})"
            );

            // A channel Telegram stopped pushing: its post arrives through a re-read.
            let silenced = channels[3].1;
            dc.silence_channel(silenced, true);
            let lost_push = dc.publish_text(silenced, "never pushed");
            // Pushed posts of the others arrive as ever.
            let mut pushed = Vec::new();
            for (_, ch) in channels.iter().skip(4).take(4) {
                pushed.push(dc.publish_text(*ch, "pushed"));
            }
            // verify_every = 20 channels ÷ (10 × 0.5) = 4 s, and a little.
            tokio::time::sleep(Duration::from_secs(6)).await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let mut got = Vec::new();
            for p in pollers {
                got.push(p.await.unwrap());
            }
            assert_eq!(got[3], [lost_push], "the unpushed post, through a re-read");
            for (i, id) in pushed.iter().enumerate() {
                assert_eq!(got[4 + i], [*id], "a pushed post");
            }
            pool.close().await;
        })
        .await;
}
