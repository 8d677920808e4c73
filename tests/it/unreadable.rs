//! A Bot API answer this version cannot read is named as what it is: the
//! fake answers `getMe` without `has_main_web_app` (which teloxide
//! requires), and `kuryer run` says "Telegram answered something this
//! version cannot read (getMe, field …)" at ERROR — never "unreachable" —,
//! counts it in `kuryer_bot_api_unreadable_total{method="getMe"}`, runs
//! the bot, and reports `/readyz` degraded.

use std::time::{Duration, Instant};

use crate::common::{Daemon, TestDb, free_port};
use kuryer_sim::fake_bot_api::{FakeLimits, FakeTelegram};
use serde_json::Value;

const TOKEN: &str = "5151:unreadableSECRETunreadable";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_me_without_a_required_field_is_named_not_unreachable() {
    let db = TestDb::new().await;
    let fake = FakeTelegram::start(FakeLimits::off()).unwrap();
    fake.add_bot(TOKEN);
    fake.omit_get_me_field("has_main_web_app");
    let port = free_port();
    let mut daemon = Daemon::start_with(&db.url, &fake, TOKEN, port, 20.0, &[]);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let start = Instant::now();
    let mut body = Value::Null;
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            body = r.json().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(body["status"], "degraded", "{body}\n{}", daemon.log_text());
    assert_eq!(
        body["bot_api_unreadable"],
        serde_json::json!(["getMe"]),
        "{body}"
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kuryer_bot_api_unreadable_total{method=\"getMe\"} 1"),
        "{metrics}"
    );
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    let log = daemon.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("\"error_kind\":\"bot_api_unreadable\""))
        .unwrap_or_else(|| panic!("no unreadable line:\n{log}"));
    assert!(line.contains("\"level\":\"ERROR\""), "{line}");
    assert!(line.contains("\"method\":\"getMe\""), "{line}");
    assert!(line.contains("has_main_web_app"), "{line}");
    assert!(!log.contains("bot_api_unreachable"), "{log}");
    assert!(!log.contains("unreadableSECRET"), "bot token in the log");
}
