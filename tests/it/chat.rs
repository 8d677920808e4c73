//! "Try the bot on a laptop", as a person would: the real `kuryer-sim`
//! prints a config (`--print-config`), the real `kuryer run` is started on
//! exactly that file, and `kuryer-sim chat` is driven through its standard
//! input — `/start`, `/add @sim_news`, a post published on the channel arrives,
//! `/list` shows a keyboard and a button is pressed by its number. The
//! conversation it prints is README's transcript: the test fails when the
//! README's copy differs, so it cannot drift.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{TestDb, free_port, wait_ready};

/// A made-up token, as README's walk-through uses.
const TOKEN: &str = "4242:madeUpSecretForTheSimulator";

/// The `kuryer-sim` binary beside `kuryer`. `cargo test --workspace` (CI,
/// the README's test command) builds it for the simulator's own tests; run
/// alone, this test builds it when it is missing. (Building it always would
/// resolve features for that package alone and rebuild shared crates.)
fn sim_binary() -> PathBuf {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_kuryer")).with_file_name("kuryer-sim");
    if !exe.exists() {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "kuryer-sim",
                "--bin",
                "kuryer-sim",
            ])
            .status()
            .expect("run cargo");
        assert!(status.success(), "cargo build -p kuryer-sim failed");
    }
    assert!(exe.exists(), "{} was not built", exe.display());
    exe
}

/// A child killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines a child printed, collected by a thread.
fn collect(out: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// Waits until a line printed after the first `from` satisfies `want`, then
/// until nothing more arrives for a moment (so the next step's lines come
/// after all of this one's).
async fn wait_for(
    lines: &Mutex<Vec<String>>,
    from: usize,
    what: &str,
    want: impl Fn(&str) -> bool,
) {
    let start = Instant::now();
    loop {
        if lines.lock().unwrap()[from..].iter().any(|l| want(l)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no {what} in 30 s; the chat so far:\n{}",
            lines.lock().unwrap().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut seen = lines.lock().unwrap().len();
    loop {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let now = lines.lock().unwrap().len();
        if now == seen {
            return;
        }
        seen = now;
    }
}

async fn control(http: &reqwest::Client, url: String, body: Value) -> Value {
    let r = http
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("control API");
    assert!(r.status().is_success(), "{:?}", r.text().await);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_talks_to_the_bot_through_kuryer_sim_chat() {
    let sim_exe = sim_binary();
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();

    // 1. kuryer-sim prints a config for `kuryer run`; stdin held open.
    let mut sim = Killed(
        Command::new(&sim_exe)
            .args([
                // Free ports: tests run at once, and beside a laptop's own.
                "--listen",
                "127.0.0.1:0",
                "--bot-api-port",
                "0",
                "--channels",
                "0",
                "--users",
                "0",
                "--bot-token",
                TOKEN,
                "--print-config",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start kuryer-sim"),
    );
    let mut config = String::new();
    let mut out = BufReader::new(sim.0.stdout.take().unwrap());
    while !config.lines().any(|l| l.starts_with("listen = ")) {
        assert!(
            out.read_line(&mut config).unwrap() > 0,
            "config ended early:\n{config}"
        );
    }
    let control_url = config
        .lines()
        .find_map(|l| l.strip_prefix("# Control API: "))
        .expect("the config names the control API")
        .to_owned();
    assert!(
        config.contains(&format!("bot_tokens = [\"{TOKEN}\"]")),
        "{config}"
    );
    let config_path = dir.path().join("sim.toml");
    std::fs::write(&config_path, &config).unwrap();

    // 2. `kuryer run` on that very file (its database, Redis prefix and HTTP
    //    port moved aside for the test, by environment).
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("kuryer.log")).unwrap();
    let mut kuryer = Command::new(env!("CARGO_BIN_EXE_kuryer"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KURYER_") || k == "CREDENTIALS_DIRECTORY" || k == "RUST_LOG" {
            kuryer.env_remove(k);
        }
    }
    let _kuryer = Killed(
        kuryer
            .args(["run", "--config"])
            .arg(&config_path)
            .env("KURYER_DATABASE_URL", &db.url)
            .env("KURYER_DATABASE_POOL_MAX", "8")
            .env("KURYER_HTTP_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "KURYER_REDIS_KEY_PREFIX",
                format!("test:{}:", rand::random::<u64>()),
            )
            .env("KURYER_DELIVERY_POLL_MIN_INTERVAL_MS", "100")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kuryer run"),
    );
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    // The channel, its administrator our bot (bot 1: the one `--bot-token`
    // after the generated bot 0).
    let channel = control(
        &http,
        format!("{control_url}/mtproto/channels"),
        json!({"title": "News", "username": "sim_news", "admin_bots": [1]}),
    )
    .await;
    // README's walk-through publishes on this id.
    assert_eq!(channel["id"], 1_700_000_001, "{channel}");
    assert!(
        wait_ready(port, Duration::from_secs(60)).await,
        "kuryer run did not become ready:\n{}",
        std::fs::read_to_string(dir.path().join("kuryer.log")).unwrap_or_default()
    );

    // 3. The person, through `kuryer-sim chat`'s standard input.
    let mut chat = Killed(
        Command::new(&sim_exe)
            .args([
                "chat",
                "--control",
                &control_url,
                "--user",
                "42",
                "--lang",
                "en",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kuryer-sim chat"),
    );
    let lines = collect(chat.0.stdout.take().unwrap());
    let errors = collect(chat.0.stderr.take().unwrap());
    let mut input = chat.0.stdin.take().unwrap();
    let mut type_line = move |line: &str| {
        writeln!(input, "{line}").unwrap();
        input.flush().unwrap();
    };
    let mark = |l: &Mutex<Vec<String>>| l.lock().unwrap().len();

    let at = mark(&lines);
    type_line("/start");
    wait_for(&lines, at, "answer to /start", |l| l.starts_with("bot: ")).await;

    let at = mark(&lines);
    type_line("/add @sim_news");
    wait_for(&lines, at, "answer to /add", |l| l.starts_with("bot: ")).await;

    let at = mark(&lines);
    let id = channel["id"].as_i64().unwrap();
    control(
        &http,
        format!("{control_url}/mtproto/channels/{id}/posts"),
        json!({"text": "Hello from the News channel"}),
    )
    .await;
    wait_for(&lines, at, "delivered post", |l| {
        l.starts_with("post (channel ") && l.ends_with("Hello from the News channel")
    })
    .await;

    let at = mark(&lines);
    type_line("/list");
    wait_for(&lines, at, "keyboard of /list", |l| l.contains("[1] ")).await;

    let at = mark(&lines);
    type_line("1");
    wait_for(&lines, at, "answer to the button", |l| l.starts_with("bot")).await;

    let at = mark(&lines);
    type_line("9");
    wait_for(&lines, at, "refused press", |l| {
        l.starts_with("error: no button [9]")
    })
    .await;

    // The end of input ends the client, with success.
    drop(type_line);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = chat.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "chat did not end with its input:\n{}",
            lines.lock().unwrap().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}: {:?}", errors.lock().unwrap());
    tokio::time::sleep(Duration::from_millis(100)).await;

    let transcript = lines.lock().unwrap().join("\n");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let ours = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("try-the-bot.txt");
    std::fs::write(&ours, &transcript).unwrap();
    assert!(
        readme.contains(&format!("```text\n{transcript}\n```")),
        "README's \"Try the bot on a laptop\" transcript differs from this conversation \
         (written to {}):\n{transcript}",
        ours.display()
    );
    drop(sim);
}
