//! The status page in a real browser: the system's headless Chromium driven
//! through chromedriver by selenium (`tests/browser/status_page.py`),
//! against `kuryer run` with 10,000 channels and the fake Bot API. Refused
//! without the token; signed in through the form; loads under a second;
//! a dead letter made by a real failure (PostgreSQL refusing a post) is
//! shown, replayed with its button and delivered exactly once. The
//! screenshot is README's ("Operating kuryer"): with
//! `KURYER_UPDATE_SCREENSHOT=1` it is written to
//! `tests/browser/status-page.png`.
//!
//! Skipped, saying so, only where Chromium, chromedriver or selenium is
//! not installed (`.ci/services.sh` installs all three).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::intake::{API_TOKEN, Intake, text, wait_until};

const CHANNEL: i64 = -1_027_501;
const USER: i64 = 927_501;

fn browser_missing() -> Option<String> {
    for bin in [
        "/usr/bin/chromium",
        "/usr/bin/chromedriver",
        "/usr/bin/python3",
    ] {
        if !Path::new(bin).exists() {
            return Some(format!("{bin} is missing"));
        }
    }
    let selenium = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import selenium"])
        .status();
    match selenium {
        Ok(s) if s.success() => None,
        _ => Some("python3-selenium is missing".into()),
    }
}

#[tokio::test]
async fn the_status_page_in_chromium_replays_a_dead_letter_delivered_once() {
    if let Some(why) = browser_missing() {
        eprintln!(
            "SKIPPED the browser test: {why}; `apt-get install -y chromium chromium-driver python3-selenium` (what .ci/services.sh runs) installs it"
        );
        return;
    }
    let t = Intake::start(&[(CHANNEL, "news_uz")]).await;
    t.subscribe(USER, "news_uz").await;
    let c = t.db.client().await;
    c.batch_execute(&format!(
        "INSERT INTO channels (telegram_id, username, title, status)
         SELECT -1002000000000 - g, 'bulk_' || g, 'Bulk channel ' || g, 'invalid'
           FROM generate_series(1, 10000) g;
         CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.channel_id = (SELECT id FROM channels WHERE telegram_id = {CHANNEL}) THEN
             RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'check_violation';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON posts FOR EACH ROW EXECUTE FUNCTION refuse();"
    ))
    .await
    .unwrap();
    let refused = text(&t.fake, CHANNEL, "a post PostgreSQL refused once");
    let kept = wait_until(Duration::from_secs(60), async || {
        t.count("SELECT count(*) FROM dead_letters WHERE kind = 'post'")
            .await
            == 1
    })
    .await;
    assert!(kept, "{}", t.daemon.log_text());
    let id: i64 = c
        .query_one("SELECT id FROM dead_letters", &[])
        .await
        .unwrap()
        .get(0);
    c.batch_execute("DROP TRIGGER refuse ON posts")
        .await
        .unwrap();

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let shot = if std::env::var("KURYER_UPDATE_SCREENSHOT").is_ok_and(|v| v == "1") {
        root.join("tests/browser/status-page.png")
    } else {
        dir.path().join("status-page.png")
    };
    let base = t.base.clone();
    let script = root.join("tests/browser/status_page.py");
    let shot_arg = shot.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("/usr/bin/python3")
            .arg(script)
            .args([&base, API_TOKEN, &id.to_string()])
            .arg(shot_arg)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    println!("browser: {r}");
    assert_eq!(r["refused_title"], "kuryer — sign in", "{r}");
    assert_eq!(r["refused_shows_channels"], false, "{r}");
    assert_eq!(r["title"], "kuryer status", "{r}");
    for ms in r["load_ms"].as_array().unwrap() {
        let ms = ms.as_f64().unwrap();
        assert!(ms > 0.0 && ms < 1000.0, "a load took {ms} ms: {r}");
    }
    assert!(
        r["channel_count"]
            .as_str()
            .unwrap()
            .starts_with("10001 channel(s)"),
        "{r}"
    );
    assert_eq!(r["dead_letter_shown"], true, "{r}");
    assert!(
        r["dead_letter_row"]
            .as_str()
            .unwrap()
            .contains("refused by the test")
    );
    assert!(
        r["after_replay"].as_str().unwrap().contains("replayed"),
        "{r}"
    );
    assert_eq!(r["still_listed"], false, "{r}");
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);

    t.expect(&[(USER, CHANNEL, refused)], Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(t.fake.received(USER).len(), 1, "delivered more than once");
    t.stop();
}
