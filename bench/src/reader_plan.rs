//! The `reader` scenario's sizes and how its results print (beside
//! `suite.rs`, which runs every scenario).

use crate::reader::ReaderSpec;
use crate::reader_result::ReaderResult;

/// The reader's sizes, at the fake's Telegram-like limits with getHistory
/// at ~10 calls per 30 s an account (the reader paced at 0.3 a second,
/// under it) and kuryer's daily budgets: 1,000 channels over 3 accounts
/// (all joined); a catch-up of 250 posts (three pages) on each of 100 of
/// 130 channels after a restart; 10,000 over 23 (22 full at 450, the last
/// account's 100 polled while it joins them within its budget).
pub(crate) fn reader_plan(tiny: bool, scenario: &str) -> Vec<ReaderSpec> {
    let base = ReaderSpec {
        label: String::new(),
        channels: 0,
        accounts: 0,
        joined: 0,
        max_per_account: 450,
        // Under the fake's 10 per 30 s (one call every 3.33 s).
        history_per_second: 0.3,
        poll_interval_s: 60,
        poll_max_interval_ms: None,
        posts: 1200,
        rate: 20.0,
        catch_up_channels: 0,
        catch_up_posts: 0,
        catch_up_history_limit: None,
        history_limit_calls: 10,
        history_limit_per_s: 30,
    };
    if tiny {
        return vec![ReaderSpec {
            label: "20 channels / 3 accounts (tiny)".to_owned(),
            channels: 20,
            accounts: 3,
            joined: 16,
            max_per_account: 8,
            // The real limit's shape, ten times faster: 10 per 3 s.
            history_per_second: 3.0,
            history_limit_per_s: 3,
            poll_interval_s: 2,
            poll_max_interval_ms: Some(2000),
            posts: 40,
            catch_up_channels: 4,
            // Three pages and the empty answer each.
            catch_up_posts: 250,
            // One getHistory a second an account against the reader's 3:
            // the restart's reads run into flood waits.
            catch_up_history_limit: Some(1),
            ..base
        }];
    }
    let small = ReaderSpec {
        label: "1,000 channels / 3 accounts".to_owned(),
        channels: 1000,
        accounts: 3,
        joined: 1000,
        ..base.clone()
    };
    let catch_up = ReaderSpec {
        label: "130 channels / 3 accounts, catch-up on 100".to_owned(),
        channels: 130,
        accounts: 3,
        joined: 130,
        posts: 200,
        catch_up_channels: 100,
        catch_up_posts: 250,
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
        "reader-1k" => vec![small, catch_up],
        "reader-10k" => vec![large],
        "reader-catch-up" => vec![catch_up],
        _ => vec![small, catch_up, large],
    }
}

pub(crate) fn reader_lines(r: &ReaderResult) -> Vec<String> {
    let mut out = vec![
        format!(
            "{}: {} joined, {} polled (accounts pre-joined); fake getHistory limit {} per {} s, reader {}/s per account, polled every {} s; setup {:.1} s, first reads {:.1} s",
            r.label,
            r.joined,
            r.polled,
            r.history_limit.0,
            r.history_limit.1,
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
    let p = &r.projection;
    out.push(format!(
        "{}: whole run: flood waits {} (calls during a wait {}), busiest account's look-ups {} and joins {}; not pre-joined, the budgets would need {}–{} days until every channel is read ({} an account at {:.0} look-ups a day) and {} days until {} an account are joined (joins a day {:?})",
        r.label,
        r.run_flood_waits,
        r.run_calls_during_flood_wait,
        r.run_resolves_max,
        r.run_joins_max,
        p.days_to_read_min,
        p.days_to_read_max,
        p.per_account,
        p.resolves_per_day,
        p.days_to_join,
        p.joined_per_account,
        p.joins_by_day
    ));
    if let Some(c) = &r.catch_up {
        out.push(format!(
            "{}: catch-up of {} posts on {} channels: {} recorded, {} lost, {} dup, {} out of order, {} sent, in {:.1} s ({:.0}/s), getHistory pages {:.2} a channel posted to, {:.2} a quiet one, flood waits {} (calls during a wait {}), calls {}",
            r.label,
            c.posts,
            c.channels,
            c.recorded,
            c.lost,
            c.duplicates,
            c.out_of_order,
            c.sent,
            c.seconds,
            c.per_s,
            c.history_per_channel,
            c.history_per_quiet_channel,
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
