//! The real `kuryer-sim` binary, driven from outside as an operator or a
//! `kuryer run` would see it: its JSON line names both faces, the control
//! API creates an account and a channel on the MTProto face, an unmodified
//! grammers client connects with the key the control API returned, and a
//! post published through the control API is pushed to it and delivered to
//! the admin bot on the Bot API face. Every control route's refusal is
//! checked once.

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use grammers_client::client::UpdateStream;
use grammers_client::sender::UpdatesConfiguration;
use grammers_client::session::Session;
use grammers_client::session::storages::MemorySession;
use grammers_client::session::types::{DcOption, PeerInfo, UpdateState, UpdatesState};
use grammers_client::session::updates::UpdatesLike;
use grammers_client::tl;
use grammers_client::{Client, InvocationError, SenderPool, SignInError};
use grammers_session::SessionData;
use kuryer_sim::process::{FakeProcess, FakeSpec};
use serde_json::{Value, json};

const API_ID: i32 = 1;

/// The token an outside `kuryer run` would be configured with (made up).
const OUTSIDE_BOT: &str = "4242:outsideOUTSIDEoutsideOUTSIDE";

fn spawn_sim() -> FakeProcess {
    FakeProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_kuryer-sim")),
        &[],
        &FakeSpec {
            channels: 1,
            users: 1,
            bot_tokens: vec![OUTSIDE_BOT.to_owned()],
            ..FakeSpec::default()
        },
    )
    .expect("kuryer-sim starts and prints its addresses")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A control call that must succeed; its JSON answer.
async fn ok(http: &reqwest::Client, sim: &FakeProcess, route: &str, body: Value) -> Value {
    let r = http
        .post(format!("{}{route}", sim.control_url()))
        .json(&body)
        .send()
        .await
        .expect("control API reachable");
    let status = r.status();
    let v: Value = r.json().await.expect("JSON answer");
    assert!(status.is_success(), "{route}: {status} {v}");
    v
}

async fn get(http: &reqwest::Client, sim: &FakeProcess, route: &str) -> (u16, Value) {
    let r = http
        .get(format!("{}{route}", sim.control_url()))
        .send()
        .await
        .expect("control API reachable");
    let status = r.status().as_u16();
    (status, r.json().await.expect("JSON answer"))
}

/// A control call that must be refused with `status` and error `code`, in
/// the control API's error shape.
async fn refused(
    http: &reqwest::Client,
    sim: &FakeProcess,
    get_query: bool,
    route: &str,
    body: &str,
    status: u16,
    code: &str,
) {
    let url = format!("{}{route}", sim.control_url());
    let req = if get_query {
        http.get(url)
    } else {
        http.post(url)
            .header("content-type", "application/json")
            .body(body.to_owned())
    };
    let r = req.send().await.expect("control API reachable");
    let got = r.status().as_u16();
    let v: Value = r.json().await.expect("an error is JSON");
    assert_eq!(got, status, "{route} {body}: {v}");
    assert_eq!(v["error"], code, "{route} {body}: {v}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{route}: {v}"
    );
}

fn key_from_hex(s: &str) -> [u8; 256] {
    assert_eq!(s.len(), 512, "an auth key is 256 bytes");
    let mut key = [0u8; 256];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
    }
    key
}

/// The session a client needs, from what `/mtproto/accounts` answered: its
/// home DC is the fake, holding the key (so grammers skips the key exchange).
fn session_from(answer: &Value) -> SessionData {
    let dc_id = i32::try_from(answer["dc_id"].as_i64().expect("dc_id")).expect("small");
    let addr: SocketAddr = answer["dc_addr"]
        .as_str()
        .expect("dc_addr")
        .parse()
        .expect("an address");
    let SocketAddr::V4(ipv4) = addr else {
        panic!("the fake listens on 127.0.0.1, got {addr}")
    };
    let ipv6 = SocketAddrV6::new(ipv4.ip().to_ipv6_mapped(), ipv4.port(), 0, 0);
    let mut data = SessionData {
        home_dc: dc_id,
        ..SessionData::default()
    };
    data.dc_options.insert(
        dc_id,
        DcOption {
            id: dc_id,
            ipv4: SocketAddrV4::new(*ipv4.ip(), ipv4.port()),
            ipv6,
            auth_key: Some(key_from_hex(answer["auth_key"].as_str().expect("key"))),
        },
    );
    data
}

/// A grammers client on a session made from a control API answer.
struct Connected {
    client: Client,
    session: Arc<MemorySession>,
    updates: tokio::sync::mpsc::Receiver<UpdatesLike>,
    pool: tokio::task::JoinHandle<()>,
}

fn connect(answer: &Value) -> Connected {
    let session = Arc::new(MemorySession::from(session_from(answer)));
    let SenderPool {
        runner,
        handle,
        updates,
    } = SenderPool::new(Arc::clone(&session), API_ID);
    Connected {
        client: Client::new(handle),
        session,
        updates,
        pool: tokio::spawn(runner.run()),
    }
}

async fn next_update(stream: &mut UpdateStream) -> tl::enums::Update {
    tokio::time::timeout(Duration::from_secs(10), stream.next_raw())
        .await
        .expect("an update within 10 s")
        .expect("update stream")
        .0
}

fn new_message(u: &tl::enums::Update) -> &tl::types::Message {
    match u {
        tl::enums::Update::NewChannelMessage(u) => match &u.message {
            tl::enums::Message::Message(m) => m,
            other => panic!("{other:?}"),
        },
        other => panic!("expected a new channel message, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_published_from_outside_reaches_grammers_and_the_admin_bot() {
    let sim = spawn_sim();
    let http = http();
    let mtproto = sim
        .mtproto
        .clone()
        .expect("the JSON line names the MTProto face");

    let account = ok(
        &http,
        &sim,
        "/mtproto/accounts",
        json!({"phone": "+998 90 000 00 01", "first_name": "Outside"}),
    )
    .await;
    assert_eq!(account["dc_addr"], mtproto.as_str(), "{account}");
    let user_id = account["user_id"].as_i64().expect("user_id");
    let channel = ok(
        &http,
        &sim,
        "/mtproto/channels",
        // Bot 1: the first `--bot-token` (after the one generated bot).
        json!({"title": "From outside", "username": "sim_outside", "admin_bots": [1]}),
    )
    .await;
    let channel_id = channel["id"].as_i64().expect("id");
    let chat = channel["bot_api_chat_id"].as_i64().expect("Bot API id");

    // An unmodified grammers client on the key the control API issued.
    let Connected {
        client,
        session,
        updates,
        pool,
    } = connect(&account);
    let me = client.get_me().await.expect("users.getUsers(self)");
    assert_eq!(me.id().bare_id_unchecked(), user_id);
    assert_eq!(me.first_name(), Some("Outside"));
    session
        .cache_peer(PeerInfo::User {
            id: user_id,
            auth: me.to_ref().await.expect("ref").map(|r| r.auth),
            bot: Some(false),
            is_self: Some(true),
        })
        .await
        .expect("cache self");

    let peer = client
        .resolve_username("sim_outside")
        .await
        .expect("resolve")
        .expect("occupied");
    assert_eq!(peer.id().bare_id_unchecked(), channel_id);
    client
        .join_chat(peer.to_ref().await.expect("ref").expect("hash"))
        .await
        .expect("join");
    let tl::enums::updates::State::State(state) = client
        .invoke(&tl::functions::updates::GetState {})
        .await
        .expect("getState");
    session
        .set_update_state(UpdateState::All(UpdatesState {
            pts: state.pts,
            qts: state.qts,
            date: state.date,
            seq: state.seq,
            channels: Vec::new(),
        }))
        .await
        .expect("save state");
    let mut stream = client
        .stream_updates(updates, UpdatesConfiguration { catch_up: true })
        .await
        .expect("stream");

    // A text post, then an album, published through the control API.
    let posted = ok(
        &http,
        &sim,
        &format!("/mtproto/channels/{channel_id}/posts"),
        json!({"text": "hello from outside"}),
    )
    .await;
    let id = i32::try_from(posted["ids"][0].as_i64().expect("id")).expect("small");
    let u = next_update(&mut stream).await;
    let m = new_message(&u);
    assert_eq!((m.id, m.message.as_str()), (id, "hello from outside"));
    let album = ok(
        &http,
        &sim,
        &format!("/mtproto/channels/{channel_id}/posts"),
        json!({"album": [{"media": "photo", "text": "two photos"}, {"media": "photo"}]}),
    )
    .await;
    assert_eq!(album["ids"], json!([id + 1, id + 2]));
    let (a, b) = (
        next_update(&mut stream).await,
        next_update(&mut stream).await,
    );
    let (a, b) = (new_message(&a), new_message(&b));
    assert!(
        a.grouped_id.is_some() && a.grouped_id == b.grouped_id,
        "{a:?} {b:?}"
    );
    assert!(matches!(a.media, Some(tl::enums::MessageMedia::Photo(_))));

    // Edited and deleted through the control API: pushed too.
    ok(
        &http,
        &sim,
        &format!("/mtproto/channels/{channel_id}/edit"),
        json!({"message_id": id, "text": "hello, edited"}),
    )
    .await;
    match next_update(&mut stream).await {
        tl::enums::Update::EditChannelMessage(u) => {
            let tl::enums::Message::Message(m) = u.message else {
                panic!("an edited message")
            };
            assert_eq!(m.message, "hello, edited");
        }
        other => panic!("expected an edit, got {other:?}"),
    }
    let deleted = ok(
        &http,
        &sim,
        &format!("/mtproto/channels/{channel_id}/delete"),
        json!({"message_ids": [id + 2]}),
    )
    .await;
    assert_eq!(deleted["deleted"], 1);
    match next_update(&mut stream).await {
        tl::enums::Update::DeleteChannelMessages(u) => assert_eq!(u.messages, vec![id + 2]),
        other => panic!("expected a delete, got {other:?}"),
    }

    // The same post on the Bot API face: a channel_post to the admin bot
    // (the one named by --bot-token), and in the control API's history.
    let updates: Value = http
        .get(format!("{}/bot{}/getUpdates", sim.bot_api, OUTSIDE_BOT))
        .send()
        .await
        .expect("Bot API reachable")
        .json()
        .await
        .expect("JSON");
    let posts: Vec<&Value> = updates["result"]
        .as_array()
        .expect("updates")
        .iter()
        .filter_map(|u| u.get("channel_post"))
        .collect();
    assert!(
        posts.iter().any(|p| p["chat"]["id"] == chat
            && p["message_id"] == id
            && p["text"] == "hello from outside"),
        "{updates}"
    );
    let (status, history) = get(&http, &sim, &format!("/history?chat={chat}&after=0")).await;
    assert_eq!(status, 200);
    assert_eq!(history[0]["id"], id, "{history}");
    assert_eq!(history[0]["text"], "hello from outside");

    // What the account called, as the fake counted it.
    let (status, stats) = get(&http, &sim, &format!("/mtproto/accounts/{user_id}/stats")).await;
    assert_eq!(status, 200);
    assert_eq!(
        stats["methods"]["contacts.resolveUsername"]["calls"], 1,
        "{stats}"
    );
    assert_eq!(stats["methods"]["channels.joinChannel"]["calls"], 1);
    assert!(stats["pushed"].as_u64().expect("pushed") >= 5, "{stats}");

    // A session revoked from outside: the next call is refused.
    ok(
        &http,
        &sim,
        "/mtproto/sessions/revoke",
        json!({"auth_key": account["auth_key"]}),
    )
    .await;
    let e = client.get_me().await.expect_err("revoked");
    assert!(
        matches!(&e, InvocationError::Rpc(r) if r.name == "SESSION_REVOKED"),
        "{e}"
    );

    drop(stream);
    client.disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(5), pool).await;
    sim.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_from_outside_with_a_code_and_the_2fa_password() {
    let sim = spawn_sim();
    let http = http();
    let phone = "+998 90 000 00 02";
    let account = ok(
        &http,
        &sim,
        "/mtproto/accounts",
        json!({"phone": phone, "password": "correct horse", "signed_in": false}),
    )
    .await;
    assert_eq!(account.get("auth_key"), None, "not signed in: {account}");
    let user_id = account["user_id"].as_i64().expect("user_id");
    // A key signed in to nobody, as a fresh login has.
    let key = ok(&http, &sim, "/mtproto/keys", json!({"account": null})).await;
    let Connected { client, pool, .. } = connect(&key);
    assert!(!client.is_authorized().await.expect("getState answered"));
    let token = client
        .request_login_code(phone, "hash")
        .await
        .expect("auth.sendCode");
    let (status, code) = get(&http, &sim, "/mtproto/login_code?phone=998900000002").await;
    assert_eq!(status, 200, "{code}");
    let code = code["code"].as_str().expect("code").to_owned();
    let Err(SignInError::PasswordRequired(password)) = client.sign_in(&token, &code).await else {
        panic!("a 2FA account needs its password")
    };
    let user = client
        .check_password(password, "correct horse")
        .await
        .expect("the password the control API set");
    assert_eq!(user.id().bare_id_unchecked(), user_id);
    assert_eq!(
        client
            .get_me()
            .await
            .expect("signed in")
            .id()
            .bare_id_unchecked(),
        user_id
    );
    client.disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(5), pool).await;
    sim.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_control_route_refuses_what_it_cannot_do() {
    let sim = spawn_sim();
    let http = http();
    let account = ok(
        &http,
        &sim,
        "/mtproto/accounts",
        json!({"phone": "+1 555 0100"}),
    )
    .await;
    let a = account["user_id"].as_i64().expect("user_id");
    let channel = ok(
        &http,
        &sim,
        "/mtproto/channels",
        json!({"title": "Taken", "username": "taken_name"}),
    )
    .await;
    let c = channel["id"].as_i64().expect("id");
    let member = format!("{{\"account\": {a}}}");
    let unknown_key = format!("{{\"auth_key\": \"{}\"}}", "0".repeat(512));
    let cases: Vec<(bool, String, &str, u16, &str)> = vec![
        // The Bot API face's routes.
        (
            false,
            "/publish".into(),
            "{\"posts\": 1}",
            400,
            "bad_request",
        ),
        (true, "/history?after=0".into(), "", 400, "bad_request"),
        (false, "/pairs".into(), "{}", 400, "bad_request"),
        (false, "/report".into(), "[", 400, "bad_request"),
        (true, "/no/such/route".into(), "", 404, "not_found"),
        // The MTProto face's routes.
        (
            false,
            "/mtproto/accounts".into(),
            r#"{"phone": "none"}"#,
            400,
            "phone_invalid",
        ),
        (
            false,
            "/mtproto/accounts".into(),
            r#"{"phone": "15550100"}"#,
            409,
            "phone_taken",
        ),
        (
            false,
            "/mtproto/keys".into(),
            r#"{"account": 424242}"#,
            404,
            "unknown_account",
        ),
        (
            true,
            "/mtproto/login_code?phone=15550100".into(),
            "",
            404,
            "no_code",
        ),
        (
            true,
            "/mtproto/accounts/424242/stats".into(),
            "",
            404,
            "unknown_account",
        ),
        (
            false,
            "/mtproto/accounts/424242/drop_pushes".into(),
            "{}",
            404,
            "unknown_account",
        ),
        (
            false,
            format!("/mtproto/accounts/{a}/delay_pushes"),
            r#"{"ms": 3600000}"#,
            400,
            "delay_too_long",
        ),
        (
            false,
            format!("/mtproto/accounts/{a}/too_long"),
            r#"{"channel": 7}"#,
            404,
            "unknown_channel",
        ),
        (
            false,
            "/mtproto/channels".into(),
            r#"{"title": "T", "username": "1bad"}"#,
            400,
            "username_invalid",
        ),
        (
            false,
            "/mtproto/channels".into(),
            r#"{"title": "T", "username": "Taken_Name"}"#,
            409,
            "username_taken",
        ),
        (
            false,
            "/mtproto/channels".into(),
            r#"{"title": "T", "admin_bots": [9]}"#,
            404,
            "unknown_bot",
        ),
        (
            false,
            "/mtproto/channels/7/members".into(),
            &member,
            404,
            "unknown_channel",
        ),
        (
            false,
            format!("/mtproto/channels/{c}/posts"),
            "{}",
            400,
            "post_empty",
        ),
        (
            false,
            format!("/mtproto/channels/{c}/posts"),
            r#"{"album": [{"media": "photo"}]}"#,
            400,
            "album_invalid",
        ),
        (
            false,
            format!("/mtproto/channels/{c}/edit"),
            r#"{"message_id": 99, "text": "x"}"#,
            404,
            "unknown_message",
        ),
        (
            false,
            format!("/mtproto/channels/{c}/delete"),
            r#"{"message_ids": []}"#,
            400,
            "message_ids_empty",
        ),
        (
            false,
            format!("/mtproto/channels/{c}/rename"),
            r#"{"title": " "}"#,
            400,
            "title_empty",
        ),
        (
            false,
            "/mtproto/channels/7/private".into(),
            "",
            404,
            "unknown_channel",
        ),
        (
            false,
            "/mtproto/channels/x/private".into(),
            "",
            404,
            "not_found",
        ),
        (
            false,
            "/mtproto/channels/7/delete_channel".into(),
            "",
            404,
            "unknown_channel",
        ),
        (
            false,
            "/mtproto/channels/7/behaviour".into(),
            r#"{"silent": true}"#,
            404,
            "unknown_channel",
        ),
        (
            false,
            "/mtproto/sessions/revoke".into(),
            r#"{"auth_key": "zz"}"#,
            400,
            "auth_key_invalid",
        ),
        (
            false,
            "/mtproto/sessions/revoke".into(),
            &unknown_key,
            404,
            "unknown_key",
        ),
        (
            false,
            "/mtproto/flood".into(),
            r#"{"method": "resolveUsername"}"#,
            400,
            "method_invalid",
        ),
        (
            false,
            "/mtproto/flood".into(),
            r#"{"method": "contacts.resolveUsername", "limit": {"max_calls": 0, "per_ms": 1000}}"#,
            400,
            "limit_invalid",
        ),
        (
            false,
            "/mtproto/flood".into(),
            r#"{"method": "contacts.resolveUsername", "escalating": {"free": 1, "per_ms": 1000, "waits_s": []}}"#,
            400,
            "limit_invalid",
        ),
        (
            false,
            "/mtproto/accounts/1/restrict".into(),
            r#"{"frozen": true}"#,
            404,
            "unknown_account",
        ),
    ];
    for (is_get, route, body, status, code) in &cases {
        refused(&http, &sim, *is_get, route, body, *status, code).await;
    }
    // The refusals changed nothing: the one account and channel are intact.
    let (status, stats) = get(&http, &sim, &format!("/mtproto/accounts/{a}/stats")).await;
    assert_eq!((status, stats["pushed"].as_u64()), (200, Some(0)));
    sim.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_mtproto_serves_the_bot_api_alone_and_a_bad_token_stops_the_start() {
    let spec = FakeSpec {
        channels: 1,
        users: 1,
        no_mtproto: true,
        ..FakeSpec::default()
    };
    let exe = Path::new(env!("CARGO_BIN_EXE_kuryer-sim"));
    let sim = FakeProcess::spawn(exe, &[], &spec).expect("starts");
    assert_eq!(sim.mtproto, None, "no MTProto face announced");
    refused(
        &http(),
        &sim,
        false,
        "/mtproto/accounts",
        r#"{"phone": "1"}"#,
        404,
        "not_found",
    )
    .await;
    sim.quit().await;

    let bad = FakeSpec {
        bot_tokens: vec!["not-a-token".to_owned()],
        ..spec
    };
    let e = FakeProcess::spawn(exe, &[], &bad)
        .err()
        .expect("a malformed --bot-token is refused");
    assert!(e.to_string().contains("did not start"), "{e}");
}
