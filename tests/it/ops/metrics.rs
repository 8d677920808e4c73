//! Metrics that are right: `/metrics` after a run against the simulated
//! Telegram equals what the fake received, survives a restart, and the
//! Grafana dashboard plots only what kuryer exports. The registry is the one
//! list of names: the docs name only registered metrics, README lists every
//! one, and no code outside the registry writes a metric's name.

use std::time::Duration;

use super::{API_TOKEN, TOKEN, assert_no_secret, metric, scrape, wait_until};
use crate::common::{Daemon, TestDb, free_port};
use kuryer::telemetry::registry;
use kuryer_sim::fake_bot_api::{ChatKind, FakeLimits, FakeTelegram, Fault, NewChannelMessage};
use serde_json::{Value, json};

const CHANNEL: i64 = -1_009_414;

#[tokio::test]
async fn metrics_equal_what_the_fake_received_and_survive_a_restart() {
    let db = TestDb::new().await;
    let fake = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    fake.add_bot(TOKEN);
    fake.create_channel(CHANNEL, "ops_news", "Ops news");
    let users: Vec<i64> = (1..=10).map(|i| 810_000 + i).collect();
    for u in &users {
        fake.create_chat(*u, ChatKind::Private);
    }
    fake.set_admin(CHANNEL, TOKEN, true);
    // Two 429s for one user, a blocked bot for another.
    fake.set_fault(users[0], Fault::TooManyRequests { retry_after: 1 }, Some(2));
    fake.set_fault(users[1], Fault::Forbidden, None);

    let port = free_port();
    let mut daemon = Daemon::start_with(&db.url, &fake, TOKEN, port, 20.0, &[]);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    assert!(
        crate::common::wait_ready(port, Duration::from_secs(60)).await,
        "{}",
        daemon.log_text()
    );
    for u in &users {
        let r = http
            .post(format!("{base}/add_channel"))
            .bearer_auth(API_TOKEN)
            .json(&json!({"user_id": u, "channel_username": "@ops_news"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let resolved = wait_until(Duration::from_secs(30), async || {
        let list: Value = http
            .get(format!("{base}/subscriptions/{}", users[0]))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list[0]["channel_status"] == "active"
    })
    .await;
    assert!(resolved, "{}", daemon.log_text());

    let posts: Vec<i32> = (0..5)
        .map(|i| fake.post(CHANNEL, NewChannelMessage::text(format!("ops post {i}"))))
        .collect();
    let expected: Vec<(i64, i64, i32)> = users[..]
        .iter()
        .filter(|u| **u != users[1])
        .flat_map(|u| posts.iter().map(move |p| (*u, CHANNEL, *p)))
        .collect();
    let delivered = wait_until(Duration::from_secs(60), async || {
        fake.report(&expected).delivered == expected.len() as u64
    })
    .await;
    assert!(
        delivered,
        "{:?}\n{}",
        fake.report(&expected),
        daemon.log_text()
    );
    // Every outcome is counted once the sends are finished: wait for the
    // counters to settle on what the fake saw.
    let settled = wait_until(Duration::from_secs(20), async || {
        let m = scrape(port).await;
        metric(&m, "messages_forwarded_total", &[]) == fake.stats().messages_received as f64
            && metric(&m, "kuryer_deliveries_failed_total", &[("reason", "gone")]) >= 1.0
    })
    .await;
    let m = scrape(port).await;
    let stats = fake.stats();
    assert!(settled, "{stats:?}\n{m}");

    assert_eq!(stats.messages_received, expected.len() as u64);
    assert_eq!(metric(&m, "messages_forwarded_total", &[]), 45.0, "{m}");
    assert_eq!(
        metric(&m, "forward_duration_seconds_count", &[]),
        45.0,
        "{m}"
    );
    assert_eq!(metric(&m, "kuryer_posts_detected_total", &[]), 5.0, "{m}");
    // 429s: as many as the fake answered, by scope, and their waits.
    assert_eq!(stats.rate_limited_429, 2);
    assert_eq!(metric(&m, "kuryer_telegram_429_total", &[]), 2.0, "{m}");
    assert_eq!(metric(&m, "kuryer_rate_limited_total", &[]), 2.0, "{m}");
    assert!(
        metric(
            &m,
            "kuryer_bot_flood_wait_seconds_total",
            &[("bot_id", "5353")]
        ) >= 2.0,
        "{m}"
    );
    // 403s: each one the fake gave (faults less the two 429s) is a delivery
    // failed for good because the chat is gone.
    assert_eq!(
        metric(&m, "kuryer_deliveries_failed_total", &[("reason", "gone")]),
        (stats.faults_injected - 2) as f64,
        "{stats:?}\n{m}"
    );
    assert_eq!(metric(&m, "active_channels", &[]), 1.0, "{m}");
    assert!(metric(&m, "kuryer_db_batch_rows_count", &[]) >= 1.0, "{m}");
    assert!(metric(&m, "kuryer_db_batch_seconds_sum", &[]) > 0.0, "{m}");
    assert!(
        metric(&m, "kuryer_update_loop_lag_seconds_count", &[]) >= 5.0,
        "{m}"
    );
    assert!(
        metric(&m, "process_resident_memory_bytes", &[]) > 1e6,
        "{m}"
    );
    assert!(metric(&m, "kuryer_uptime_seconds", &[]) > 0.0, "{m}");
    for stage in ["limiter", "in_flight", "db_writer"] {
        assert!(
            m.contains(&format!("kuryer_queue_depth{{stage=\"{stage}\"}}")),
            "{m}"
        );
    }

    assert_eq!(daemon.terminate(), Some(0));
    let log = daemon.log_text();
    // The lines an operator filters on carry their fields (JSON here,
    // journald fields of the same names under systemd).
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let fanned: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "Post fanned out.")
        .collect();
    assert_eq!(fanned.len(), 5, "one INFO line per post\n{log}");
    assert!(
        fanned
            .iter()
            .all(|l| l["level"] == "INFO" && l["channel_id"].is_i64() && l["post_id"].is_i64()),
        "{fanned:?}"
    );
    // By Telegram's id, as the API and README's `CHANNEL_ID=-100…` name
    // it; kuryer's own id apart (`channel_id` was kuryer's: 1).
    assert!(
        fanned
            .iter()
            .all(|l| l["channel_id"] == CHANNEL && l["channel_key"].as_i64().is_some_and(|k| k > 0)),
        "{fanned:?}"
    );
    readme_journalctl_examples_find_lines(&lines);
    let flood = lines
        .iter()
        .find(|l| l["message"] == "Flood wait from Telegram; pausing.")
        .expect("a flood wait line");
    assert_eq!(flood["level"], "WARN");
    assert_eq!(flood["chat_id"], users[0]);
    assert!(flood["retry_after_s"].is_u64(), "{flood}");
    assert!(flood["bot_id"] == 5353, "{flood}");
    assert_no_secret(&log);

    // After a restart active_channels reads what is polled, at once (the
    // recorder used to be installed after the pipeline had set it).
    let mut again = Daemon::start_with(&db.url, &fake, TOKEN, port, 20.0, &[]);
    assert!(
        crate::common::wait_ready(port, Duration::from_secs(60)).await,
        "{}",
        again.log_text()
    );
    let m = scrape(port).await;
    assert_eq!(
        metric(&m, "active_channels", &[]),
        1.0,
        "{m}\n{}",
        again.log_text()
    );
    assert_eq!(again.terminate(), Some(0));
    assert_no_secret(&again.log_text());
    fake.stop();
}

/// Every series the Grafana dashboard plots is one kuryer exports: a
/// renamed metric must not leave a panel reading "no data".
#[test]
fn the_dashboard_plots_only_metrics_kuryer_exports() {
    let root = env!("CARGO_MANIFEST_DIR");
    let exported: Vec<&str> = registry::ALL.iter().map(|m| m.name).collect();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/systemd/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut plotted = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            // A series name is the identifier right before a `{` selector.
            for part in expr.split('{').collect::<Vec<_>>().iter().rev().skip(1) {
                let name: String = part
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                if !name.is_empty() && name != "by" {
                    plotted.push(name);
                }
            }
        }
    }
    assert!(plotted.len() >= 15, "{plotted:?}");
    for name in &plotted {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(
            exported.contains(&base),
            "the dashboard plots {name}, which kuryer does not export"
        );
    }
}

/// `name` without the suffix Prometheus adds to a histogram's series.
fn base_name(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

/// The metric-like names a text mentions: each `kuryer_…` identifier (not
/// part of a longer one, not a Rust path), the seed's three names and the
/// registered names without the `kuryer_` prefix.
fn mentioned_metrics(text: &str) -> Vec<String> {
    // Identifiers of kuryer that are no metric: the crates, and the
    // PostgreSQL trigger and NOTIFY channel of subscription changes.
    const NOT_METRICS: &[&str] = &[
        "kuryer_actors",
        "kuryer_sim",
        "kuryer_bench",
        "kuryer_changes",
        "kuryer_subscriptions",
        "kuryer_notify_channel",
    ];
    let unprefixed: Vec<&str> = [
        "messages_forwarded_total",
        "forward_duration_seconds",
        "active_channels",
    ]
    .into_iter()
    .chain(
        registry::ALL
            .iter()
            .map(|m| m.name)
            .filter(|n| !n.starts_with("kuryer_")),
    )
    .collect();
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut found = Vec::new();
    for (at, _) in text.match_indices("kuryer_").chain(
        unprefixed
            .iter()
            .flat_map(|s| text.match_indices(s))
            .collect::<Vec<_>>(),
    ) {
        if text[..at].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let rest = &text[at..];
        let end = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        let name = &rest[..end];
        if rest[end..].starts_with("::") || NOT_METRICS.contains(&name) {
            continue;
        }
        found.push(name.to_owned());
    }
    found.sort();
    found.dedup();
    found
}

/// Every metric README, ARCHITECTURE and the dashboard name is declared in
/// the registry, and README's metrics section lists every registered one.
#[test]
fn the_docs_name_only_registered_metrics_and_readme_lists_them_all() {
    let root = env!("CARGO_MANIFEST_DIR");
    let registered: Vec<&str> = registry::ALL.iter().map(|m| m.name).collect();
    let mut checked = 0;
    for doc in [
        "README.md",
        "ARCHITECTURE.md",
        "systemd/grafana-dashboard.json",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{doc}")).unwrap();
        for name in mentioned_metrics(&text) {
            checked += 1;
            let known = if let Some(prefix) = name.strip_suffix('_') {
                // `kuryer_owned_*`: a family of metrics.
                registered.iter().any(|r| r.starts_with(prefix))
            } else {
                registered.contains(&base_name(&name))
            };
            assert!(known, "{doc} names {name}, which is not in the registry");
        }
    }
    assert!(checked >= 50, "{checked} names found: the scan is broken");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let section = readme
        .split("### Metrics and the Grafana dashboard")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a metrics section");
    let listed = mentioned_metrics(section);
    for m in registry::ALL {
        assert!(
            listed.iter().any(|l| l == m.name),
            "README's metrics section does not list {}",
            m.name
        );
    }
}

/// Every `.rs` file under `dir`, with its path relative to the root.
fn rust_files(root: &str, dir: &str, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
        let entry = entry.unwrap();
        let rel = format!("{dir}/{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            rust_files(root, &rel, out);
        } else if rel.ends_with(".rs") {
            out.push((rel.clone(), std::fs::read_to_string(entry.path()).unwrap()));
        }
    }
}

/// Metric names are written once, in the registry: no metric macro outside
/// the registry and the event modules, none anywhere with a string literal
/// for a name, and no registered name as a string literal elsewhere.
#[test]
fn metric_names_are_written_only_in_the_registry() {
    const REGISTRY: &str = "actors/src/telemetry/registry.rs";
    const MAY_RECORD: &[&str] = &[
        REGISTRY,
        "actors/src/telemetry/events.rs",
        "src/telemetry/events.rs",
    ];
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files = Vec::new();
    rust_files(root, "src", &mut files);
    rust_files(root, "actors/src", &mut files);
    assert!(files.len() > 50, "{} files", files.len());
    // The registry's constants by kind: outside the event modules only a
    // gauge may be named (set by the component that owns its state).
    let registry_text = &files.iter().find(|(p, _)| p == REGISTRY).unwrap().1;
    let recorded_only_by_events: Vec<String> = registry_text
        .lines()
        .filter_map(|l| l.strip_prefix("pub const "))
        .filter_map(|l| l.split_once(": "))
        .filter(|(_, ty)| ty.starts_with("Counter<") || ty.starts_with("Histogram<"))
        .map(|(ident, _)| format!("registry::{ident}"))
        .collect();
    assert!(
        recorded_only_by_events.len() > 30,
        "{recorded_only_by_events:?}"
    );
    let mut macros = 0;
    for (path, text) in &files {
        if !MAY_RECORD.contains(&path.as_str()) {
            for ident in &recorded_only_by_events {
                let named = text.match_indices(ident.as_str()).any(|(at, _)| {
                    !text[at + ident.len()..]
                        .starts_with(|c: char| c == '_' || c.is_ascii_alphanumeric())
                });
                assert!(
                    !named,
                    "{path} records {ident} itself: counters and histograms are recorded by events"
                );
            }
        }
        for kind in ["counter!(", "gauge!(", "histogram!("] {
            for (at, _) in text.match_indices(kind) {
                // `describe_counter!(` and friends describe, not record.
                if text[..at].ends_with("describe_") {
                    continue;
                }
                macros += 1;
                assert!(
                    MAY_RECORD.contains(&path.as_str()),
                    "{path} calls {kind}…): record through an event (or set a gauge through the registry)"
                );
                let arg = text[at + kind.len()..].trim_start();
                assert!(
                    !arg.starts_with('"'),
                    "{path} calls {kind}…) with a string literal for a name"
                );
            }
        }
        if path != REGISTRY {
            for m in registry::ALL {
                assert!(
                    !text.contains(&format!("\"{}\"", m.name)),
                    "{path} writes the metric name \"{}\": use the registry",
                    m.name
                );
            }
        }
    }
    assert!(macros >= 3, "the registry's own macro calls were not found");
}

/// Every `journalctl FIELD=VALUE …` example of README finds lines of this
/// run's JSON log (journald has the same fields, upper-cased): a number is
/// matched by a line carrying all the example's fields with numbers of the
/// same sign (a channel's `-100…`, a user's chat, a bot's id); a word
/// (`ERROR_KIND=token_refused`) is one the code logs in that field.
fn readme_journalctl_examples_find_lines(lines: &[Value]) {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let code: String = ["src", "actors/src"]
        .iter()
        .flat_map(|d| walk(&format!("{root}/{d}")))
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect();
    let mut examples = 0;
    for line in readme.lines().filter(|l| l.contains("journalctl")) {
        let pairs: Vec<(String, &str)> = line
            .split(|c: char| c.is_whitespace() || c == '`' || c == '(' || c == ',')
            .filter_map(|t| t.split_once('='))
            .filter(|(k, v)| {
                !k.is_empty()
                    && !v.is_empty()
                    && k.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            })
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        if pairs.is_empty() {
            continue;
        }
        examples += 1;
        let (numbers, words): (Vec<_>, Vec<_>) =
            pairs.iter().partition(|(_, v)| v.parse::<i64>().is_ok());
        for (k, v) in &words {
            assert!(
                code.contains(&format!("{k} = \"{v}\"")),
                "README's `{line}`: no code logs {k} = \"{v}\""
            );
        }
        if numbers.is_empty() {
            continue;
        }
        let found = lines.iter().any(|l| {
            numbers.iter().all(|(k, v)| {
                let want = v.parse::<i64>().unwrap().signum();
                l[k.as_str()].as_i64().is_some_and(|n| n.signum() == want)
            })
        });
        assert!(found, "README's `{line}` finds no line of a real run's log");
    }
    assert!(
        examples >= 5,
        "README's journalctl examples not found ({examples})"
    );
}

/// The `.rs` files under `dir`.
fn walk(dir: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(p.to_str().unwrap()));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}
