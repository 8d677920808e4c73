//! Metrics that are right: `/metrics` after a run against the simulated
//! Telegram equals what the fake received, survives a restart, and the
//! Grafana dashboard plots only what kuryer exports.

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

