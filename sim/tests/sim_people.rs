//! The real `kuryer-sim` binary's people's routes from outside, with a bot
//! played by teloxide over the Bot API face: a person's message (with its
//! language), a forwarded post, a button press, and the chat read back with
//! a cursor; every refusal once. Then how the process ends: said on stderr
//! when its standard input closes, not at all with `--ignore-stdin`, and
//! `--print-config` naming its Bot API and token.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kuryer_sim::process::{FakeProcess, FakeSpec};
use serde_json::{Value, json};
use teloxide::payloads::{GetUpdatesSetters, SendMessageSetters};
use teloxide::prelude::Requester;
use teloxide::types::{ChatId, InlineKeyboardButton, InlineKeyboardMarkup, UpdateKind};

const BOT: &str = "4343:peopleROUTESpeopleROUTES";
const EXE: &str = env!("CARGO_BIN_EXE_kuryer-sim");

/// Free ports rather than the fixed defaults: tests run at once.
const FREE_PORTS: [&str; 4] = ["--listen", "127.0.0.1:0", "--bot-api-port", "0"];

async fn call(http: &reqwest::Client, sim: &FakeProcess, route: &str, body: Value) -> (u16, Value) {
    let r = http
        .post(format!("{}{route}", sim.control_url()))
        .json(&body)
        .send()
        .await
        .expect("control API");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn chat(http: &reqwest::Client, sim: &FakeProcess, chat: i64, after: u64) -> Value {
    http.get(format!(
        "{}/chats/{chat}/messages?after={after}",
        sim.control_url()
    ))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap()
}

#[tokio::test]
async fn people_talk_press_forward_and_read_their_chat_through_the_control_api() {
    let spec = FakeSpec {
        channels: 0,
        users: 0,
        bot_tokens: vec![BOT.to_owned()],
        ..FakeSpec::default()
    };
    let sim = FakeProcess::spawn(Path::new(EXE), &[], &spec).expect("starts");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let bot = teloxide::Bot::new(BOT).set_api_url(reqwest::Url::parse(&sim.bot_api).unwrap());

    // A message, with its language and command entity, to the default bot
    // (the `--bot-token` one).
    let (s, v) = call(
        &http,
        &sim,
        "/people/42/says",
        json!({"text": "/start", "lang": "uz"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let updates = bot.get_updates().await.unwrap();
    let UpdateKind::Message(m) = &updates[0].kind else {
        panic!("{:?}", updates[0].kind)
    };
    assert_eq!((m.chat.id.0, m.text()), (42, Some("/start")));
    assert_eq!(
        m.from.as_ref().unwrap().language_code.as_deref(),
        Some("uz")
    );

    // The bot answers with a keyboard; the chat shows it, with a cursor.
    let keyboard = InlineKeyboardMarkup::new([[
        InlineKeyboardButton::callback("one", "k:1"),
        InlineKeyboardButton::callback("two", "k:2"),
    ]]);
    let sent = bot
        .send_message(ChatId(42), "pick")
        .reply_markup(keyboard)
        .await
        .unwrap();
    let page = chat(&http, &sim, 42, 0).await;
    assert_eq!(page["next"], 1, "{page}");
    let shown = &page["messages"][0];
    assert_eq!(shown["text"], "pick");
    assert_eq!(shown["message_id"], sent.id.0);
    assert_eq!(
        shown["reply_markup"]["inline_keyboard"][0][1]["callback_data"],
        "k:2"
    );
    let page = chat(&http, &sim, 42, 1).await;
    assert_eq!(
        (page["messages"].as_array().unwrap().len(), &page["next"]),
        (0, &json!(1))
    );

    // A press of a button that is there arrives as a callback query.
    let (s, v) = call(
        &http,
        &sim,
        "/people/42/presses",
        json!({"message_id": sent.id.0, "data": "k:2"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let offset = updates.last().unwrap().id.0 as i32 + 1;
    let presses = bot.get_updates().offset(offset).await.unwrap();
    let UpdateKind::CallbackQuery(q) = &presses[0].kind else {
        panic!("{:?}", presses[0].kind)
    };
    assert_eq!(q.data.as_deref(), Some("k:2"));
    assert_eq!(q.id.0, v["callback_query_id"].as_str().unwrap());

    // A forwarded channel post.
    let (_, ch) = call(
        &http,
        &sim,
        "/mtproto/channels",
        json!({"title": "News", "username": "people_news"}),
    )
    .await;
    let (_, post) = call(
        &http,
        &sim,
        &format!("/mtproto/channels/{}/posts", ch["id"]),
        json!({"text": "a post"}),
    )
    .await;
    let channel = ch["bot_api_chat_id"].as_i64().unwrap();
    let (s, v) = call(
        &http,
        &sim,
        "/people/42/forwards",
        json!({"channel": channel, "message_id": post["ids"][0]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let offset = presses.last().unwrap().id.0 as i32 + 1;
    let fwd = bot.get_updates().offset(offset).await.unwrap();
    let UpdateKind::Message(f) = &fwd[0].kind else {
        panic!("{:?}", fwd[0].kind)
    };
    assert!(f.forward_origin().is_some());
    assert_eq!(f.text(), Some("a post"));

    // Refusals: each names what is wrong, and nothing reaches the bot.
    for (route, body, status, code) in [
        (
            "/people/42/says",
            json!({"text": "  "}),
            400,
            "text_invalid",
        ),
        (
            "/people/42/says",
            json!({"text": "x".repeat(4097)}),
            400,
            "text_invalid",
        ),
        (
            "/people/42/says",
            json!({"text": "hi", "lang": "u z"}),
            400,
            "lang_invalid",
        ),
        ("/people/0/says", json!({"text": "hi"}), 400, "user_invalid"),
        (
            "/people/42/says",
            json!({"text": "hi", "bot": 9}),
            404,
            "unknown_bot",
        ),
        (
            "/people/42/presses",
            json!({"message_id": sent.id.0, "data": "k:9"}),
            404,
            "no_such_button",
        ),
        (
            "/people/42/presses",
            json!({"message_id": 777, "data": "k:1"}),
            404,
            "unknown_message",
        ),
        (
            "/people/42/forwards",
            json!({"channel": channel, "message_id": 99}),
            404,
            "unknown_message",
        ),
        (
            "/people/42/forwards",
            json!({"channel": -5, "message_id": 1}),
            404,
            "unknown_message",
        ),
        (
            "/people/42/says",
            json!({"text": "hi", "extra": 1}),
            400,
            "bad_request",
        ),
    ] {
        let (s, v) = call(&http, &sim, route, body).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (status, Some(code)),
            "{route}: {v}"
        );
    }
    let offset = fwd.last().unwrap().id.0 as i32 + 1;
    assert!(
        bot.get_updates()
            .offset(offset)
            .timeout(0)
            .await
            .unwrap()
            .is_empty()
    );
    sim.quit().await;
}

/// Waits up to 10 s for the child to exit; its status and stderr.
fn exit_of(mut child: std::process::Child) -> (Option<std::process::ExitStatus>, String) {
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > Duration::from_secs(10) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status, err)
}

#[test]
fn with_stdin_closed_it_says_why_it_stops_unless_told_to_ignore_stdin() {
    let closed = Command::new(EXE)
        .args(["--no-mtproto", "--channels", "0", "--users", "0"])
        .args(FREE_PORTS)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, err) = exit_of(closed);
    assert!(status.is_some(), "kept running with stdin closed");
    assert!(err.contains("standard input closed"), "{err:?}");
    assert!(err.contains("--ignore-stdin"), "{err:?}");

    // With --ignore-stdin it runs on, prints its config, and ends on /quit.
    let mut kept = Command::new(EXE)
        .args([
            "--no-mtproto",
            "--channels",
            "0",
            "--users",
            "0",
            "--bot-token",
            BOT,
        ])
        .args(["--ignore-stdin", "--print-config"])
        .args(FREE_PORTS)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(kept.stdout.take().unwrap());
    let mut config = String::new();
    while !config.lines().any(|l| l.starts_with("listen = ")) {
        assert!(
            std::io::BufRead::read_line(&mut out, &mut config).unwrap() > 0,
            "{config}"
        );
    }
    assert!(
        config.contains(&format!("bot_tokens = [\"{BOT}\"]")),
        "{config}"
    );
    assert!(
        config.contains("bot_api_url = \"http://127.0.0.1:"),
        "{config}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        kept.try_wait().unwrap().is_none(),
        "stopped although told to ignore stdin"
    );
    let control = config
        .lines()
        .find_map(|l| l.strip_prefix("# Control API: "))
        .unwrap()
        .to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(format!("{control}/quit"))
            .send()
            .await
            .unwrap();
    });
    let (status, _) = exit_of(kept);
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// Without port options, kuryer-sim listens where it did last time (the
/// Bot API on 8081, the control API on 8082), so the config it printed
/// once, and the chat client's default `--control`, stay right across
/// restarts.
#[test]
fn the_default_ports_are_fixed_so_a_printed_config_holds_across_restarts() {
    let start = || {
        let mut sim = Command::new(EXE)
            .args(["--no-mtproto", "--channels", "0", "--users", "0"])
            .args(["--bot-token", BOT, "--print-config"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(sim.stdout.take().unwrap());
        let mut config = String::new();
        while !config.lines().any(|l| l.starts_with("listen = ")) {
            assert!(
                std::io::BufRead::read_line(&mut out, &mut config).unwrap() > 0,
                "{config}"
            );
        }
        // Closing its standard input ends it (and frees the ports).
        drop(sim.stdin.take());
        let (status, err) = exit_of(sim);
        assert!(status.is_some(), "kept running: {err}");
        config
    };
    let first = start();
    assert!(
        first.contains("bot_api_url = \"http://127.0.0.1:8081\""),
        "{first}"
    );
    assert!(
        first.contains("# Control API: http://127.0.0.1:8082"),
        "{first}"
    );
    assert_eq!(start(), first, "the second start printed another config");
}
