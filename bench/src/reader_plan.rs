//! The `reader` scenario's sizes and how its results print (beside
//! `suite.rs`, which runs every scenario).

use crate::reader::ReaderSpec;
use crate::reader_result::ReaderResult;

/// The reader's sizes: 1,000 channels over 3 accounts (all joined, and a
/// catch-up of 100 posts on each after a restart), 10,000 over 23 (22 full
/// at 450, the last account's 100 polled while it joins them).
pub(crate) fn reader_plan(tiny: bool, scenario: &str) -> Vec<ReaderSpec> {
    let base = ReaderSpec {
        label: String::new(),
        channels: 0,
        accounts: 0,
        joined: 0,
        max_per_account: 450,
        // Under the fake's Telegram-like 3 a second.
        history_per_second: 2.5,
        poll_interval_s: 60,
        poll_max_interval_ms: None,
        posts: 1200,
        rate: 20.0,
        catch_up_channels: 0,
        catch_up_posts: 0,
        catch_up_history_limit: None,
    };
    if tiny {
        return vec![ReaderSpec {
            label: "20 channels / 3 accounts (tiny)".to_owned(),
            channels: 20,
            accounts: 3,
            joined: 16,
            max_per_account: 8,
            poll_interval_s: 2,
            poll_max_interval_ms: Some(2000),
            posts: 40,
            catch_up_channels: 10,
            catch_up_posts: 5,
            // One getHistory a second an account against the reader's 2.5:
            // the restart's first reads run into flood waits.
            catch_up_history_limit: Some(1),
            ..base
        }];
    }
    let small = ReaderSpec {
        label: "1,000 channels / 3 accounts".to_owned(),
        channels: 1000,
        accounts: 3,
        joined: 1000,
        catch_up_channels: 1000,
        catch_up_posts: 100,
        ..base.clone()
    };
    let large = ReaderSpec {
        label: "10,000 channels / 23 accounts".to_owned(),
        channels: 10_000,
        accounts: 23,
        joined: 9_900,
        ..base
    };
    match scenario {
        "reader-1k" => vec![small],
        "reader-10k" => vec![large],
        _ => vec![small, large],
    }
}

pub(crate) fn reader_lines(r: &ReaderResult) -> Vec<String> {
    let mut out = vec![
        format!(
            "{}: {} joined, {} polled (accounts pre-joined; joining at Telegram's 5/min would take ~{:.0} min); history {}/s per account, polled every {} s; setup {:.1} s, first reads {:.1} s",
            r.label,
            r.joined,
            r.polled,
            f64::from(r.joined) / 5.0 / f64::from(r.accounts.max(1)),
            r.history_per_second,
            r.poll_interval_s,
            r.setup_s,
            r.first_reads_s
        ),
        format!(
            "{}: {} posts, {} recorded, {} lost, {} dup; publish → committed joined p50/p99/max {:.0}/{:.0}/{:.0} ms (n {}), polled {:.0}/{:.0}/{:.0} ms (n {}); CPU {:.0} µs/post (fake {:.1} s); RSS {:.0} MiB before, peak {:.0} MiB",
            r.label,
            r.posts,
            r.recorded,
            r.lost,
            r.duplicates,
            r.latency_joined.p50,
            r.latency_joined.p99,
            r.latency_joined.max,
            r.latency_joined.n,
            r.latency_polled.p50,
            r.latency_polled.p99,
            r.latency_polled.max,
            r.latency_polled.n,
            r.cpu_us_per_post,
            r.fake_cpu_s,
            r.rss_before_mb,
            r.peak_rss_mb
        ),
        format!(
            "{}: flood waits {} (calls during a wait {}); calls per account per minute (mean / busiest): {}",
            r.label,
            r.flood_waits,
            r.calls_during_flood_wait,
            r.calls
                .iter()
                .map(|(m, c)| format!("{m} {:.1}/{:.1}", c.mean_per_min, c.max_per_min))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ];
    if let Some(c) = &r.catch_up {
        out.push(format!(
            "{}: catch-up of {} posts: {} recorded, {} lost, {} dup in {:.1} s ({:.0}/s), flood waits {} (calls during a wait {}), calls {}",
            r.label,
            c.posts,
            c.recorded,
            c.lost,
            c.duplicates,
            c.seconds,
            c.per_s,
            c.flood_waits,
            c.calls_during_flood_wait,
            c.calls
                .iter()
                .map(|(m, n)| format!("{m} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out
}
