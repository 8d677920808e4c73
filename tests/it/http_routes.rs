//! The routes for what the bot does (remove, pause/resume, destinations,
//! settings) over real HTTP (reqwest) against a real PostgreSQL: every
//! status code of each; and, against `kuryer run` with the fake Bot API,
//! that a change made through them is in effect for the next post.

use std::time::Duration;

use kuryer::config::HttpConfig;
use kuryer::secret::Secret;
use kuryer_actors::model::DestinationKind;
use kuryer_sim::fake_bot_api::NewChannelMessage;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::bot::{self, World, wait_until};
use crate::http::{Api, TOKEN, json_of};

const USER: i64 = 4_100_001;
const OTHER: i64 = 4_100_002;
const BOT: i64 = 5151;

/// What the setup made: two subscriptions of `USER`, one of `OTHER`, and
/// `USER`'s destinations (private, a linked group, a group the bot left).
struct Setup {
    sub_a: i64,
    sub_b: i64,
    other_sub: i64,
    private: i64,
    group: i64,
    lost: i64,
    other_private: i64,
}

async fn add(api: &Api, user: i64, channel: &str) -> i64 {
    let (status, body) = json_of(
        api.post("/add_channel")
            .json(&json!({"user_id": user, "channel_username": channel}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["id"].as_i64().unwrap()
}

/// Users as `/start` registers them and chats as `/link` makes them
/// destinations: what only the bot creates, set up through the store.
async fn setup(api: &Api) -> Setup {
    let s = &api.store;
    s.start_user(USER, "en", BOT).await.unwrap();
    s.start_user(OTHER, "ru", BOT).await.unwrap();
    let sub_a = add(api, USER, "route_chan_a").await;
    let sub_b = add(api, USER, "route_chan_b").await;
    let other_sub = add(api, OTHER, "route_chan_a").await;
    let link = |owner, chat, title| async move {
        match s
            .link_destination(owner, chat, DestinationKind::Supergroup, Some(title), BOT)
            .await
            .unwrap()
        {
            kuryer::store::LinkOutcome::Linked { destination_id, .. } => destination_id,
            other => panic!("{other:?}"),
        }
    };
    let group = link(USER, -1_004_100_001, "Team").await;
    let lost = link(USER, -1_004_100_002, "Old").await;
    s.lose_destination_chat(-1_004_100_002, "kicked")
        .await
        .unwrap()
        .unwrap();
    let dest_of = |user| async move {
        s.destinations_of(user)
            .await
            .unwrap()
            .into_iter()
            .find(|d| d.kind == DestinationKind::Private)
            .unwrap()
            .id
    };
    Setup {
        sub_a,
        sub_b,
        other_sub,
        private: dest_of(USER).await,
        group,
        lost,
        other_private: dest_of(OTHER).await,
    }
}

impl Api {
    fn call(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
    }

    async fn expect(&self, req: reqwest::RequestBuilder, status: StatusCode) -> Value {
        let (got, body) = json_of(req.send().await.unwrap()).await;
        assert_eq!(got, status, "{body}");
        if !status.is_success() {
            assert!(body["error"].is_string(), "{body}");
            assert!(
                body["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{body}"
            );
        }
        body
    }

    async fn error(&self, req: reqwest::RequestBuilder, status: StatusCode, code: &str) {
        let body = self.expect(req, status).await;
        assert_eq!(body["error"], code, "{body}");
    }
}

/// Every new route with a valid body, for the token and database checks.
fn new_routes(sub: i64, dest: i64) -> Vec<(Method, String, Option<Value>)> {
    let s = format!("/subscriptions/{USER}/{sub}");
    vec![
        (Method::GET, format!("/destinations/{USER}"), None),
        (Method::DELETE, s.clone(), None),
        (Method::POST, format!("{s}/pause"), None),
        (Method::POST, format!("{s}/resume"), None),
        (
            Method::PATCH,
            format!("{s}/settings"),
            Some(json!({"mode": "forward"})),
        ),
        (
            Method::PUT,
            format!("{s}/destination"),
            Some(json!({"destination_id": dest})),
        ),
    ]
}

#[actix_rt::test]
async fn destinations_list_a_users_chats_private_first() {
    let api = Api::start(Some(TOKEN)).await;
    let s = setup(&api).await;
    let list = api
        .expect(api.get(&format!("/destinations/{USER}")), StatusCode::OK)
        .await;
    let ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![s.private, s.group, s.lost]);
    assert_eq!(list[0]["kind"], "private");
    assert_eq!(list[0]["chat_id"], USER);
    assert_eq!(list[1]["title"], "Team");
    assert_eq!(list[1]["active"], true);
    assert_eq!(list[2]["active"], false);
    // Like /subscriptions: a user never seen has none.
    let none = api
        .expect(api.get("/destinations/987654"), StatusCode::OK)
        .await;
    assert_eq!(none, json!([]));
    for bad in ["/destinations/abc", "/destinations/-3", "/destinations/0"] {
        api.error(api.get(bad), StatusCode::BAD_REQUEST, "invalid_user_id")
            .await;
    }
    api.stop().await;
}

#[actix_rt::test]
async fn pause_resume_and_remove_with_every_status() {
    let api = Api::start(Some(TOKEN)).await;
    let s = setup(&api).await;
    let a = format!("/subscriptions/{USER}/{}", s.sub_a);
    let body = api
        .expect(api.post(&format!("{a}/pause")), StatusCode::OK)
        .await;
    assert_eq!(body["id"], s.sub_a);
    assert_eq!(body["paused"], true);
    assert_eq!(body["active"], false);
    assert_eq!(body["changed"], true);
    // Twice: nothing changes, still 200.
    let body = api
        .expect(api.post(&format!("{a}/pause")), StatusCode::OK)
        .await;
    assert_eq!(body["changed"], false);
    let body = api
        .expect(api.post(&format!("{a}/resume")), StatusCode::OK)
        .await;
    assert_eq!(
        (body["paused"].clone(), body["active"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(body["changed"], true);

    // Another user's subscription under this user: not found, untouched.
    let foreign = format!("/subscriptions/{USER}/{}", s.other_sub);
    for action in ["pause", "resume"] {
        api.error(
            api.post(&format!("{foreign}/{action}")),
            StatusCode::NOT_FOUND,
            "subscription_not_found",
        )
        .await;
    }
    api.error(
        api.call(Method::DELETE, &foreign),
        StatusCode::NOT_FOUND,
        "subscription_not_found",
    )
    .await;
    let theirs = api
        .expect(api.get(&format!("/subscriptions/{OTHER}")), StatusCode::OK)
        .await;
    assert_eq!(theirs[0]["active"], true);

    let body = api
        .expect(api.call(Method::DELETE, &a), StatusCode::OK)
        .await;
    assert_eq!(body, json!({"id": s.sub_a, "removed": true}));
    api.error(
        api.call(Method::DELETE, &a),
        StatusCode::NOT_FOUND,
        "subscription_not_found",
    )
    .await;
    api.error(
        api.post(&format!("{a}/resume")),
        StatusCode::NOT_FOUND,
        "subscription_not_found",
    )
    .await;
    let left = api
        .expect(api.get(&format!("/subscriptions/{USER}")), StatusCode::OK)
        .await;
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["id"], s.sub_b);
    // add_channel brings a removed subscription back.
    add(&api, USER, "route_chan_a").await;

    let cases = [
        (
            format!("/subscriptions/{USER}/abc/pause"),
            "invalid_subscription_id",
        ),
        (
            format!("/subscriptions/abc/{}/pause", s.sub_b),
            "invalid_user_id",
        ),
        (
            format!("/subscriptions/-1/{}/pause", s.sub_b),
            "invalid_user_id",
        ),
        (
            format!("/subscriptions/{USER}/99999999999999999999999/resume"),
            "invalid_subscription_id",
        ),
    ];
    for (path, code) in cases {
        api.error(api.post(&path), StatusCode::BAD_REQUEST, code)
            .await;
    }
    api.error(
        api.post(&format!("/subscriptions/{USER}/987654321/pause")),
        StatusCode::NOT_FOUND,
        "subscription_not_found",
    )
    .await;
    api.stop().await;
}

#[actix_rt::test]
async fn settings_set_mode_and_filters_validated_like_the_bot() {
    let api = Api::start(Some(TOKEN)).await;
    let s = setup(&api).await;
    let path = format!("/subscriptions/{USER}/{}/settings", s.sub_a);
    let patch = |body: Value| api.call(Method::PATCH, &path).json(&body);
    let body = api
        .expect(patch(json!({"mode": "forward"})), StatusCode::OK)
        .await;
    assert_eq!(body["mode"], "forward");
    assert_eq!(body["filters"], json!({}));
    let filters = json!({"include": ["Toshkent"], "exclude": ["реклама"],
                         "regex": "^\\d+", "skip_media": ["video", "sticker"]});
    let body = api
        .expect(patch(json!({"filters": filters})), StatusCode::OK)
        .await;
    assert_eq!(body["filters"], filters);
    assert_eq!(body["mode"], "forward", "the mode stays");
    let body = api
        .expect(
            patch(json!({"mode": "copy", "filters": {}})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        (body["mode"].clone(), body["filters"].clone()),
        (json!("copy"), json!({}))
    );

    let bad = [
        (json!({"mode": "mirror"}), "invalid_mode"),
        (json!({"filters": {"regex": "("}}), "invalid_filters"),
        (
            json!({"filters": {"regex": "a".repeat(300)}}),
            "invalid_filters",
        ),
        (
            json!({"filters": {"skip_media": ["hologram"]}}),
            "invalid_filters",
        ),
        (json!({"filters": {"include": [""]}}), "invalid_filters"),
        (
            json!({"filters": {"include": vec!["w"; 51]}}),
            "invalid_filters",
        ),
        (json!({"filters": {"only": ["a"]}}), "invalid_filters"),
        (json!({"filters": ["a"]}), "invalid_filters"),
        (json!({"filters": {"include": "a"}}), "invalid_filters"),
        (json!({}), "nothing_to_change"),
        (json!({"colour": "red"}), "invalid_json"),
        (json!({"mode": 5}), "invalid_json"),
    ];
    for (body, code) in bad {
        api.error(patch(body), StatusCode::BAD_REQUEST, code).await;
    }
    api.error(
        api.call(Method::PATCH, &path)
            .header("content-type", "application/json")
            .body("{mode"),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    // Nothing of the refused bodies was stored.
    let now = api
        .expect(api.get(&format!("/subscriptions/{USER}")), StatusCode::OK)
        .await;
    assert_eq!(now[0]["id"], s.sub_a);
    assert_eq!(
        (now[0]["mode"].clone(), now[0]["filters"].clone()),
        (json!("copy"), json!({}))
    );
    api.error(
        api.call(
            Method::PATCH,
            &format!("/subscriptions/{USER}/{}/settings", s.other_sub),
        )
        .json(&json!({"mode": "forward"})),
        StatusCode::NOT_FOUND,
        "subscription_not_found",
    )
    .await;
    api.error(
        api.call(Method::PATCH, &path)
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"filters": {{"include": ["{}"]}}}}"#,
                "a".repeat(100_000)
            )),
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    )
    .await;
    api.stop().await;
}

#[actix_rt::test]
async fn routing_to_a_destination_with_every_status() {
    let api = Api::start(Some(TOKEN)).await;
    let s = setup(&api).await;
    let path = format!("/subscriptions/{USER}/{}/destination", s.sub_a);
    let put = |dest: Value| api.call(Method::PUT, &path).json(&dest);
    let body = api
        .expect(put(json!({"destination_id": s.group})), StatusCode::OK)
        .await;
    assert_eq!(body["destination_id"], s.group);
    assert_eq!(body["destination_chat_id"], -1_004_100_001i64);
    assert_eq!(body["destination_title"], "Team");
    assert_eq!(body["changed"], true);
    let body = api
        .expect(put(json!({"destination_id": s.group})), StatusCode::OK)
        .await;
    assert_eq!(body["changed"], false);

    // The bot left that chat: 409, /link it again first.
    api.error(
        put(json!({"destination_id": s.lost})),
        StatusCode::CONFLICT,
        "destination_inactive",
    )
    .await;
    for dest in [987_654_321, s.other_private] {
        api.error(
            put(json!({"destination_id": dest})),
            StatusCode::NOT_FOUND,
            "destination_not_found",
        )
        .await;
    }
    // A second subscription to the same channel (add_channel makes one in
    // the private chat while the first goes to the group) cannot join the
    // first there: every post would arrive twice.
    let twin = add(&api, USER, "route_chan_a").await;
    assert_ne!(twin, s.sub_a);
    api.error(
        api.call(
            Method::PUT,
            &format!("/subscriptions/{USER}/{twin}/destination"),
        )
        .json(&json!({"destination_id": s.group})),
        StatusCode::CONFLICT,
        "already_routed",
    )
    .await;
    api.expect(
        api.call(Method::DELETE, &format!("/subscriptions/{USER}/{twin}")),
        StatusCode::OK,
    )
    .await;
    // And back to the private chat.
    let body = api
        .expect(put(json!({"destination_id": s.private})), StatusCode::OK)
        .await;
    assert_eq!(body["destination_id"], s.private);
    api.error(
        api.call(
            Method::PUT,
            &format!("/subscriptions/{USER}/{}/destination", s.other_sub),
        )
        .json(&json!({"destination_id": s.group})),
        StatusCode::NOT_FOUND,
        "subscription_not_found",
    )
    .await;
    for (body, code) in [
        (json!({}), "invalid_json"),
        (json!({"destination_id": "x"}), "invalid_json"),
        (json!({"destination_id": 1, "extra": 2}), "invalid_json"),
    ] {
        api.error(put(body), StatusCode::BAD_REQUEST, code).await;
    }
    api.error(
        api.call(Method::PUT, &path)
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"destination_id": 1, "x": "{}"}}"#,
                "a".repeat(100_000)
            )),
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    )
    .await;
    let _ = s.sub_b;
    api.stop().await;
}

#[actix_rt::test]
async fn new_routes_need_the_token_and_are_404_without_one_configured() {
    let api = Api::start(Some(TOKEN)).await;
    let s = setup(&api).await;
    for (method, path, body) in new_routes(s.sub_b, s.group) {
        for auth in [None, Some("test-api-token-0123456788")] {
            let mut req = api
                .client
                .request(method.clone(), format!("{}{path}", api.base));
            if let Some(token) = auth {
                req = req.bearer_auth(token);
            }
            if let Some(b) = &body {
                req = req.json(b);
            }
            let (status, err) = json_of(req.send().await.unwrap()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(err["error"], "unauthorized");
            assert!(!err.to_string().contains(TOKEN));
        }
    }
    // Nothing was changed by the refused calls.
    let list = api
        .expect(api.get(&format!("/subscriptions/{USER}")), StatusCode::OK)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(list.as_array().unwrap().iter().all(|s| s["active"] == true));
    api.stop().await;

    let open = Api::start(None).await;
    for (method, path, body) in new_routes(1, 1) {
        let mut req = open.call(method.clone(), &path);
        if let Some(b) = &body {
            req = req.json(b);
        }
        open.error(req, StatusCode::NOT_FOUND, "not_found").await;
    }
    open.stop().await;
}

#[actix_rt::test]
async fn new_routes_answer_503_when_the_database_is_away() {
    let cfg = kuryer::config::DatabaseConfig {
        url: kuryer::secret::SecretUrl::new("postgres://postgres:hunter2@127.0.0.1:1/none"),
        connect_timeout_ms: 300,
        pool_wait_timeout_ms: 300,
        ..Default::default()
    };
    let store = kuryer::store::Store::new(&cfg).unwrap();
    let http = HttpConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        api_token: Some(Secret::new(TOKEN)),
        workers: 1,
        ..HttpConfig::default()
    };
    let server = kuryer::http::bind(&http, store).unwrap();
    let handle = server.server.handle();
    actix_rt::spawn(server.server);
    let client = reqwest::Client::new();
    for (method, path, body) in new_routes(7, 8) {
        let mut req = client
            .request(method.clone(), format!("http://{}{path}", server.addr))
            .bearer_auth(TOKEN);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let r = req.send().await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}"
        );
        let text = r.text().await.unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        let err: Value = serde_json::from_str(&text).unwrap();
        assert!(
            ["database_unavailable", "timeout"].contains(&err["error"].as_str().unwrap()),
            "{err}"
        );
    }
    handle.stop(true).await;
}

/// Against `kuryer run`: paused over the API → the next post is not
/// delivered; resumed → the next is; forward mode set → forwarded. No
/// restart: the registry takes each change before the 200.
#[actix_rt::test]
async fn a_change_through_the_api_is_live_without_a_restart() {
    const API_TOKEN: &str = "live-api-token-0123456789";
    let (chan, marker_chan) = (-100_710_001, -100_710_002);
    let w = World::start(
        &[bot::TOKEN],
        &[(chan, "api_live_chan"), (marker_chan, "api_marker_chan")],
        |cfg| cfg.http.api_token = Some(Secret::new(API_TOKEN)),
    )
    .await;
    let user = 4_200_001;
    w.say(bot::TOKEN, user, "/start", "en").await;
    let t = w
        .say(
            bot::TOKEN,
            user,
            "/add @api_live_chan @api_marker_chan",
            "en",
        )
        .await;
    assert_eq!(t.lines().count(), 2, "{t}");
    let client = reqwest::Client::new();
    let base = format!("http://{}", w.http);
    let call = |method: Method, path: String| {
        client
            .request(method, format!("{base}{path}"))
            .bearer_auth(API_TOKEN)
    };
    let (_, list) = json_of(
        call(Method::GET, format!("/subscriptions/{user}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let sub = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["channel_username"] == "api_live_chan")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let delivered = |post| w.fake.report(&[(user, chan, post)]).delivered == 1;
    // Delivered, then paused: a post after it is not, while a later post of
    // the other channel is (so the poller did pass it).
    let p1 = w.fake.post(chan, NewChannelMessage::text("before pause"));
    assert!(
        wait_until(Duration::from_secs(30), || delivered(p1)).await,
        "{}",
        w.log()
    );
    let r = call(Method::POST, format!("/subscriptions/{user}/{sub}/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let p2 = w.fake.post(chan, NewChannelMessage::text("while paused"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = w.fake.post(marker_chan, NewChannelMessage::text("marker"));
    assert!(
        wait_until(Duration::from_secs(30), || {
            w.fake.report(&[(user, marker_chan, m)]).delivered == 1
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!delivered(p2), "a post reached a paused subscription");

    // Resumed and set to forward: the next post is forwarded.
    let r = call(Method::POST, format!("/subscriptions/{user}/{sub}/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = call(
        Method::PATCH,
        format!("/subscriptions/{user}/{sub}/settings"),
    )
    .json(&json!({"mode": "forward"}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let p3 = w.fake.post(chan, NewChannelMessage::text("after resume"));
    assert!(
        wait_until(Duration::from_secs(30), || delivered(p3)).await,
        "{}",
        w.log()
    );
    let got = w
        .fake
        .received(user)
        .into_iter()
        .find(|m| m.source == Some((chan, p3)))
        .unwrap();
    assert_eq!(got.method, "forwardMessage");

    // Removed: nothing more.
    let r = call(Method::DELETE, format!("/subscriptions/{user}/{sub}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let p4 = w.fake.post(chan, NewChannelMessage::text("after removal"));
    let m = w
        .fake
        .post(marker_chan, NewChannelMessage::text("marker 2"));
    assert!(
        wait_until(Duration::from_secs(30), || {
            w.fake.report(&[(user, marker_chan, m)]).delivered == 1
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!delivered(p4), "a post reached a removed subscription");
}
