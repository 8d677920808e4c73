//! The reader scenario's commit observer: a trigger on `posts` that notifies
//! every post row at its commit, and a listener on a thread of its own that
//! stamps when each (channel row, message id) was heard, so a busy pipeline
//! thread does not delay the stamps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt as _;

/// Commits of posts as the observer heard them: (channel row, message id)
/// → when, and how many were heard twice.
#[derive(Default)]
pub(crate) struct Heard {
    /// When each post was heard committed.
    pub(crate) at: HashMap<(i64, i32), Instant>,
    /// Posts heard a second time.
    pub(crate) twice: u64,
    /// The order each post was first heard in (0, 1, 2, …): posts of one
    /// page commit in one transaction, within the same instant, so order is
    /// told by this count rather than by the stamps.
    pub(crate) order: HashMap<(i64, i32), u64>,
}

/// The notification channel the trigger and the listener share.
const CHANNEL: &str = "kuryer_bench_posts";

/// A trigger that tells of every post row at its commit (NOTIFY is
/// delivered when the transaction commits).
pub(crate) const TRIGGER: &str = "
CREATE FUNCTION bench_notify_post() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('kuryer_bench_posts', NEW.channel_id || ':' || array_to_string(NEW.message_ids, ','));
  RETURN NULL;
END $$;
CREATE TRIGGER bench_notify_post AFTER INSERT ON posts
  FOR EACH ROW EXECUTE FUNCTION bench_notify_post();";

/// Listens on a thread of its own (`bench-observer`), so a busy pipeline
/// thread does not delay the stamps.
pub(crate) fn observe(
    url: String,
    heard: Arc<Mutex<Heard>>,
) -> anyhow::Result<std::sync::mpsc::Sender<()>> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let (ready, is_ready) = std::sync::mpsc::channel::<anyhow::Result<()>>();
    std::thread::Builder::new()
        .name("bench-observer".to_owned())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready.send(Err(e.into()));
                    return;
                }
            };
            rt.block_on(async move {
                let (client, mut conn) =
                    match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ready.send(Err(e.into()));
                            return;
                        }
                    };
                let heard2 = Arc::clone(&heard);
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
                    while let Some(m) = messages.next().await {
                        let Ok(tokio_postgres::AsyncMessage::Notification(n)) = m else {
                            continue;
                        };
                        let now = Instant::now();
                        let Some((ch, ids)) = n.payload().split_once(':') else {
                            continue;
                        };
                        let Ok(ch) = ch.parse::<i64>() else { continue };
                        let mut h = heard2.lock().unwrap_or_else(|e| e.into_inner());
                        for id in ids.split(',').filter_map(|i| i.parse::<i32>().ok()) {
                            if h.at.insert((ch, id), now).is_some() {
                                h.twice += 1;
                            } else {
                                let n = h.order.len() as u64;
                                h.order.insert((ch, id), n);
                            }
                        }
                    }
                });
                let listen = client.batch_execute(&format!("LISTEN {CHANNEL}")).await;
                let _ = ready.send(listen.map_err(Into::into));
                // Until told to stop (or the sender is dropped).
                let _ = tokio::task::spawn_blocking(move || stopped.recv()).await;
                drop(client);
                driver.abort();
            });
        })?;
    is_ready
        .recv()
        .context("the observer thread ended")?
        .context("listening for post commits")?;
    Ok(stop)
}

/// Waits until every key was heard committed, or nothing new was heard for
/// `patience`; returns how many were.
pub(crate) async fn wait_recorded(
    heard: &Mutex<Heard>,
    keys: &[(i64, i32)],
    patience: Duration,
) -> u64 {
    let mut last = (0u64, Instant::now());
    loop {
        let n = {
            let h = heard.lock().unwrap_or_else(|e| e.into_inner());
            keys.iter().filter(|k| h.at.contains_key(k)).count() as u64
        };
        if n >= keys.len() as u64 {
            return n;
        }
        if n > last.0 {
            last = (n, Instant::now());
        } else if last.1.elapsed() > patience {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Posts of `keys` heard out of order: per channel, a post heard before
/// one with a smaller message id of the same channel (each counted once).
pub(crate) fn out_of_order(heard: &Heard, keys: &[(i64, i32)]) -> u64 {
    let mut by_channel: HashMap<i64, Vec<(i32, u64)>> = HashMap::new();
    for k in keys {
        if let Some(&n) = heard.order.get(k) {
            by_channel.entry(k.0).or_default().push((k.1, n));
        }
    }
    let mut late = 0;
    for posts in by_channel.values_mut() {
        posts.sort_unstable();
        let mut highest = None;
        for &(_, n) in posts.iter() {
            if highest.is_some_and(|h| n < h) {
                late += 1;
            } else {
                highest = Some(n);
            }
        }
    }
    late
}
