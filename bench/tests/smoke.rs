//! `kuryer-bench --tiny`: the benchmark suite at a tiny size completes and
//! its counts are exact. Not a timed test: no figure is compared with a
//! target here (a shared CI machine says nothing about speed).

use std::process::Command;

use serde_json::Value;

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn assert_exact(run: &Value) {
    let label = run["label"].as_str().unwrap_or("?");
    let expected = u(run, "deliveries_expected");
    assert!(expected > 0, "{label}: nothing expected");
    assert_eq!(u(run, "delivered"), expected, "{label}: delivered");
    assert_eq!(u(run, "lost"), 0, "{label}: lost");
    assert_eq!(u(run, "duplicates"), 0, "{label}: duplicates");
    assert_eq!(u(run, "rows_persisted"), expected, "{label}: persisted");
}

#[test]
fn tiny_bench_completes_with_exact_counts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plot = dir.path().join("growth.svg");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kuryer-bench"));
    cmd.args(["--tiny", "--json", "--plot"]).arg(&plot);
    if let Ok(url) = std::env::var("KURYER_TEST_DATABASE_URL") {
        // The bench creates its throw-away databases on this server.
        cmd.env("KURYER_DATABASE_URL", url);
    }
    let out = cmd.output().expect("run kuryer-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kuryer-bench failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    let last = stdout.lines().last().expect("a JSON line");
    let report: Value = serde_json::from_str(last).expect("the last line is JSON");
    assert_eq!(report["exact"], Value::Bool(true), "{stderr}");

    let seed = report["seed"].as_array().expect("seed runs");
    assert_eq!(seed.len(), 1);
    seed.iter().for_each(assert_exact);
    let growth = report["growth"].as_array().expect("growth runs");
    assert_eq!(growth.len(), 3);
    growth.iter().for_each(assert_exact);

    let persistence = report["persistence"].as_array().expect("persistence runs");
    assert_eq!(persistence.len(), 1);
    assert_eq!(persistence[0]["counts_exact"], Value::Bool(true));

    let ceiling = report["ceiling"].as_array().expect("ceiling runs");
    assert_eq!(
        ceiling.len(),
        3,
        "one bot, three bots, one bot with paid broadcast"
    );
    for run in ceiling {
        assert_eq!(u(run, "duplicates"), 0);
        let c = &run["ceiling"];
        assert!(c["achieved_per_s"].as_f64().unwrap_or(0.0) > 0.0, "{c}");
        // What arrived never broke a limit (the fake would have refused it).
        assert!(u(c, "max_private_in_1s") <= 1, "{c}");
        assert!(u(c, "max_group_in_60s") <= 20, "{c}");
        // Sending at Telegram's real limits draws no 429 (the fake answers
        // 429 to any request over a limit; BENCHMARKS.md: zero in every run).
        assert_eq!(u(c, "rate_limited_429"), 0, "{c}");
    }

    // The seed-design baseline ran, and delivered exactly. It needs Python
    // 3 with venv (`.ci/services.sh` installs them); its packages the bench
    // installs into a virtualenv of its own. A baseline that could not run
    // fails here with the bench's reason.
    assert!(
        report["baseline"].is_object(),
        "the baseline did not run: {}\n{stderr}",
        report["baseline_note"]
    );
    assert_exact(&{
        let mut b = report["baseline"].clone();
        b["label"] = Value::String("baseline".into());
        b
    });

    let svg = std::fs::read_to_string(&plot).expect("the growth plot");
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(100)]);
}

/// The reader scenario at its tiny size (the MTProto reader against the
/// fake data centre, flood limits on): every post recorded once, in the
/// steady state and in the catch-up after a restart; no flood wait in the
/// steady state (the reader's pace is under Telegram's limits); in the
/// catch-up, getHistory limited below that pace, flood waits that are
/// obeyed (no call during one). Counts only, never timings.
#[test]
fn tiny_reader_scenario_records_every_post_once() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kuryer-bench"));
    cmd.args(["--tiny", "--json", "--scenario", "reader"]);
    if let Ok(url) = std::env::var("KURYER_TEST_DATABASE_URL") {
        cmd.env("KURYER_DATABASE_URL", url);
    }
    let out = cmd.output().expect("run kuryer-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kuryer-bench failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    let last = stdout.lines().last().expect("a JSON line");
    let report: Value = serde_json::from_str(last).expect("the last line is JSON");
    assert_eq!(report["exact"], Value::Bool(true), "{stderr}");
    let runs = report["reader"].as_array().expect("reader runs");
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    assert!(u(r, "polled") > 0, "some channels polled: {r}");
    assert!(u(r, "joined") > 0, "some channels joined: {r}");
    let posts = u(r, "posts");
    assert!(posts > 0, "{r}");
    assert_eq!(u(r, "recorded"), posts, "{r}");
    assert_eq!(u(r, "lost"), 0, "{r}");
    assert_eq!(u(r, "duplicates"), 0, "{r}");
    assert_eq!(u(r, "flood_waits"), 0, "{r}");
    assert_eq!(u(r, "calls_during_flood_wait"), 0, "{r}");
    let c = &r["catch_up"];
    let posts = u(c, "posts");
    assert!(posts > 0, "{c}");
    assert_eq!(u(c, "recorded"), posts, "{c}");
    assert_eq!(u(c, "lost"), 0, "{c}");
    assert_eq!(u(c, "duplicates"), 0, "{c}");
    assert!(u(c, "flood_waits") > 0, "no flood wait to obey: {c}");
    assert_eq!(u(c, "calls_during_flood_wait"), 0, "{c}");
    // Each channel's posts recorded in order, every one sent, and more than
    // two history pages read for each channel posted to.
    assert_eq!(u(c, "out_of_order"), 0, "{c}");
    assert_eq!(u(c, "sent"), posts, "{c}");
    assert!(
        c["history_per_channel"].as_f64().unwrap_or(0.0) > 3.0,
        "{c}"
    );
    assert_eq!(u(r, "run_calls_during_flood_wait"), 0, "{r}");
}

/// The abuse scenario at its tiny size (a real `kuryer run` process, the
/// fake at Telegram's limits, without and with the hostile user): every
/// ordinary delivery and reply arrives, each user's replies in order, the
/// process stays up and keeps earning its watchdog pings. Counts only,
/// never timings. Needs the `kuryer` binary beside `kuryer-bench` (`cargo
/// test --workspace` builds it).
#[test]
fn tiny_abuse_scenario_serves_every_ordinary_user() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kuryer-bench"));
    cmd.args(["--tiny", "--json", "--scenario", "abuse"]);
    if let Ok(url) = std::env::var("KURYER_TEST_DATABASE_URL") {
        cmd.env("KURYER_DATABASE_URL", url);
    }
    let out = cmd.output().expect("run kuryer-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kuryer-bench failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    let last = stdout.lines().last().expect("a JSON line");
    let report: Value = serde_json::from_str(last).expect("the last line is JSON");
    let a = &report["abuse"];
    for run in [&a["without"], &a["with"]] {
        let expected = u(run, "deliveries_expected");
        assert!(expected > 0, "{run}");
        assert_eq!(u(run, "delivered"), expected, "{run}\n{stderr}");
        assert_eq!(u(run, "lost"), 0, "{run}");
        assert!(u(run, "commands") > 0, "{run}");
        assert_eq!(u(run, "replies_lost"), 0, "{run}\n{stderr}");
        assert_eq!(u(run, "replies_out_of_order"), 0, "{run}");
        let p = &run["process"];
        assert_eq!(p["alive"], Value::Bool(true), "{p}");
        assert!(u(p, "watchdog_pings") > 0, "{p}");
        assert!(u(p, "healthz_answers") > 0, "{p}");
        assert_eq!(u(p, "healthz_failures"), 0, "{p}");
    }
    let h = &a["with"]["hostile_did"];
    assert!(u(h, "commands") > 0 && u(h, "posts") > 0, "{h}");
    assert!(
        u(h, "link_guesses") > 0 && u(h, "channels_added") > 0,
        "{h}"
    );
}
