//! Dead letters read back: made by real failures on the production intake
//! path (`kuryer run` reading bot-admin channels from the fake Bot API, a
//! PostgreSQL trigger refusing what it records, an update no one can
//! parse), then listed, shown, replayed and discarded through the HTTP API
//! and `kuryer dead-letters`. Before these, nothing read a dead letter back.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::intake::{API_TOKEN, Intake, TOKEN, text, wait_until};

/// `kuryer dead-letters <args>` against `db_url`.
fn dead_letters(db_url: &str, args: &[&str]) -> (bool, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kuryer"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KURYER_") || k == "CREDENTIALS_DIRECTORY" {
            c.env_remove(k);
        }
    }
    c.env("KURYER_DATABASE_URL", db_url)
        .env("KURYER_LOG_LEVEL", "warn")
        .arg("dead-letters")
        .arg(args[0])
        .args(["--config", "/dev/null"])
        .args(&args[1..]);
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A trigger that refuses `table` rows of channel `chat` (Telegram's id).
async fn refuse(t: &Intake, table: &str, chat: i64) {
    t.db.client()
        .await
        .batch_execute(&format!(
            "CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.channel_id = (SELECT id FROM channels WHERE telegram_id = {chat}) THEN
                 RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'check_violation';
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table}
               FOR EACH ROW EXECUTE FUNCTION refuse_{table}();"
        ))
        .await
        .unwrap();
}

async fn allow(t: &Intake, table: &str) {
    t.db.client()
        .await
        .batch_execute(&format!("DROP TRIGGER refuse_{table} ON {table}"))
        .await
        .unwrap();
}

async fn get(t: &Intake, path: &str) -> (u16, Value) {
    let r = t
        .http
        .get(format!("{}{path}", t.base))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

async fn post(t: &Intake, path: &str) -> (u16, Value) {
    let r = t
        .http
        .post(format!("{}{path}", t.base))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

/// The one waiting dead letter of `kind`, once it is there.
async fn the_dead_letter(t: &Intake, kind: &str) -> Value {
    let mut found = Value::Null;
    let kept = wait_until(Duration::from_secs(60), async || {
        let (_, list) = get(t, &format!("/dead_letters?kind={kind}&state=waiting")).await;
        found = list.get(0).cloned().unwrap_or_default();
        !found.is_null()
    })
    .await;
    assert!(kept, "no {kind} dead letter:\n{}", t.daemon.log_text());
    found
}

/// A post PostgreSQL refused is a dead letter; its replay while the cause
/// lasts fails again and keeps both reasons; once the cause is gone, the
/// replay delivers it, once — a second replay, and the sweep every second,
/// send nothing more.
#[tokio::test]
async fn a_refused_post_replayed_through_the_api_is_delivered_once() {
    const CHANNEL: i64 = -1_027_101;
    const USER: i64 = 927_001;
    let t = Intake::start_env(
        &[(CHANNEL, "dl_refused")],
        &[("KURYER_DELIVERY_SWEEP_INTERVAL_S", "1".into())],
    )
    .await;
    t.subscribe(USER, "dl_refused").await;
    refuse(&t, "posts", CHANNEL).await;
    let refused = text(&t.fake, CHANNEL, "the database refuses this one");
    let d = the_dead_letter(&t, "post").await;
    let id = d["id"].as_i64().unwrap();
    assert_eq!(d["message_id"], json!(refused), "{d}");
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("refused by the test"),
        "{d}"
    );

    // Without the token: refused.
    let anon = t
        .http
        .get(format!("{}/dead_letters", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let anon = t
        .http
        .post(format!("{}/dead_letters/{id}/replay", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);

    // Shown: the post as kept, and redacted on request.
    let (status, shown) = get(&t, &format!("/dead_letters/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        shown["raw"]
            .as_str()
            .unwrap()
            .contains("the database refuses this one")
    );
    let (_, shown) = get(&t, &format!("/dead_letters/{id}?redact=true")).await;
    assert!(
        !shown["raw"].as_str().unwrap().contains("refuses this one"),
        "{shown}"
    );

    // The cause lasts: the replay fails again, and both reasons are kept.
    let (status, again) = post(&t, &format!("/dead_letters/{id}/replay")).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["error"], "failed_again");
    assert_eq!(again["reasons"].as_array().unwrap().len(), 2, "{again}");
    let (_, d) = get(&t, &format!("/dead_letters/{id}")).await;
    assert_eq!(d["state"], "waiting");
    assert_eq!(d["earlier_reasons"].as_array().unwrap().len(), 1, "{d}");
    assert!(t.fake.received(USER).is_empty());

    // The cause is gone: replayed, delivered once.
    allow(&t, "posts").await;
    let (status, done) = post(&t, &format!("/dead_letters/{id}/replay")).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["replayed"]["post"]["published"], true, "{done}");
    t.expect(&[(USER, CHANNEL, refused)], Duration::from_secs(30))
        .await;
    let (status, twice) = post(&t, &format!("/dead_letters/{id}/replay")).await;
    assert_eq!(status, 409, "{twice}");
    assert_eq!(twice["error"], "not_waiting");
    // Sweeps come and go: still one.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let r = t.fake.report(&[(USER, CHANNEL, refused)]);
    assert_eq!((r.delivered, r.duplicates), (1, 0), "{r:?}");
    assert_eq!(t.fake.received(USER).len(), 1);

    // The command line sees the same.
    let (ok, out, err) = dead_letters(&t.db.url, &["list", "--kind", "post"]);
    assert!(ok, "{err}");
    assert!(out.contains("replayed"), "{out}");
    assert!(out.contains(&id.to_string()), "{out}");
    let metrics = t
        .http
        .get(format!("{}/metrics", t.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "kuryer_dead_letters_replayed_total{kind=\"post\"} 1",
        "kuryer_dead_letters_replay_failed_total{kind=\"post\"} 1",
    ] {
        assert!(
            metrics.contains(line),
            "{line} missing:\n{}",
            metrics
                .lines()
                .filter(|l| l.contains("dead_letters"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    t.stop();
}

/// A channel post whose inbox row PostgreSQL refused is set aside as an
/// update; replayed from the command line, the running update loop handles
/// it like a fresh update and the post is delivered once.
#[tokio::test]
async fn a_refused_update_replayed_from_the_command_line_is_delivered_once() {
    const CHANNEL: i64 = -1_027_201;
    const USER: i64 = 927_101;
    let t = Intake::start(&[(CHANNEL, "dl_update")]).await;
    t.subscribe(USER, "dl_update").await;
    refuse(&t, "bot_inbox", CHANNEL).await;
    let refused = text(&t.fake, CHANNEL, "the inbox refuses this one");
    let d = the_dead_letter(&t, "update").await;
    let id = d["id"].as_i64().unwrap().to_string();
    allow(&t, "bot_inbox").await;

    let (ok, out, err) = dead_letters(&t.db.url, &["replay", &id]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("update loop"), "{out}");
    t.expect(&[(USER, CHANNEL, refused)], Duration::from_secs(30))
        .await;
    let (_, d) = get(&t, &format!("/dead_letters/{id}")).await;
    assert_eq!(d["state"], "replayed", "{d}");
    let (ok, _, err) = dead_letters(&t.db.url, &["replay", &id]);
    assert!(!ok);
    assert!(err.contains("replayed, not waiting"), "{err}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(t.fake.received(USER).len(), 1);
    t.stop();
}

/// An update no one can parse: listed by kind, shown with what a person
/// wrote hidden on request, its replay fails again with both reasons, and
/// it can be discarded.
#[tokio::test]
async fn an_unparsable_update_is_shown_redacted_fails_again_and_is_discarded() {
    const CHANNEL: i64 = -1_027_301;
    let t = Intake::start(&[(CHANNEL, "dl_parse")]).await;
    t.fake.push_raw_update(
        TOKEN,
        "brand_new_kind",
        json!({"text": "a user's private words", "from": {"id": 55_501, "first_name": "Zarina"}}),
    );
    let d = the_dead_letter(&t, "update").await;
    let id = d["id"].as_i64().unwrap().to_string();
    let url = t.db.url.clone();

    let (ok, out, err) = dead_letters(&url, &["list", "--kind", "update", "--since", "1h"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("unparsable update of kind brand_new_kind"),
        "{out}"
    );
    let (ok, out, _) = dead_letters(&url, &["list", "--kind", "post"]);
    assert!(ok);
    assert_eq!(out.trim(), "no dead letters");
    let (ok, out, _) = dead_letters(&url, &["show", &id]);
    assert!(ok);
    assert!(out.contains("a user's private words"), "{out}");
    let (ok, out, _) = dead_letters(&url, &["show", &id, "--redact"]);
    assert!(ok);
    for hidden in ["private words", "55501", "Zarina"] {
        assert!(!out.contains(hidden), "{hidden} shown:\n{out}");
    }

    let (ok, out, _) = dead_letters(&url, &["replay", &id]);
    assert!(!ok, "{out}");
    assert!(out.contains("failed again"), "{out}");
    let (ok, out, _) = dead_letters(&url, &["show", &id]);
    assert!(ok);
    assert!(out.contains("earlier reason 1: unparsable update"), "{out}");
    assert!(out.contains("state: waiting"), "{out}");

    let (ok, out, err) = dead_letters(&url, &["discard", &id]);
    assert!(ok, "{err}");
    assert!(out.contains("discarded"));
    let (_, d) = get(&t, &format!("/dead_letters/{id}")).await;
    assert_eq!(d["state"], "discarded");
    let (status, _) = post(&t, &format!("/dead_letters/{id}/discard")).await;
    assert_eq!(status, 409);
    t.stop();
}
