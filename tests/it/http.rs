//! The HTTP API over real HTTP (reqwest) against a real PostgreSQL.

use crate::common::TestDb;
use kuryer::config::HttpConfig;
use kuryer::secret::Secret;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub(crate) const TOKEN: &str = "test-api-token-0123456789";

pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    /// The API's database, to set up what only the bot creates.
    pub(crate) store: kuryer::store::Store,
    handle: actix_web::dev::ServerHandle,
    /// Its database, to set up rows no route makes.
    pub(crate) db: TestDb,
}

impl Api {
    pub(crate) async fn start(token: Option<&str>) -> Self {
        let db = TestDb::new().await;
        let store = db.migrated().await;
        let cfg = HttpConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            api_token: token.map(Secret::new),
            workers: 1,
            ..HttpConfig::default()
        };
        let api = kuryer::http::bind(&cfg, store.clone()).unwrap();
        let handle = api.server.handle();
        actix_rt::spawn(api.server);
        Self {
            base: format!("http://{}", api.addr),
            client: reqwest::Client::new(),
            store,
            handle,
            db,
        }
    }

    pub(crate) fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
    }

    pub(crate) fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
    }

    pub(crate) async fn stop(self) {
        self.handle.stop(true).await;
    }
}

pub(crate) async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let body = r.json::<Value>().await.expect("JSON body");
    (status, body)
}

#[actix_rt::test]
async fn add_channel_subscribes_and_is_idempotent() {
    let api = Api::start(Some(TOKEN)).await;
    // Exactly the seed's load-test request.
    let body = json!({"user_id": 123456, "channel_username": "test_channel"});
    let (status, first) = json_of(api.post("/add_channel").json(&body).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["user_id"], 123456);
    assert_eq!(first["channel_username"], "test_channel");
    assert_eq!(first["channel_status"], "pending");
    assert_eq!(first["destination_chat_id"], 123456);
    assert_eq!(first["mode"], "copy");
    assert_eq!(first["active"], true);
    assert_eq!(first["created"], true);
    // Every subscription answer says what happens on edits and deletions.
    assert_eq!(first["edits"], "mirror", "{first}");
    assert_eq!(first["deletions"], "mirror", "{first}");

    let (status, second) = json_of(
        api.post("/add_channel")
            .json(&json!({"user_id": 123456, "channel_username": "@Test_Channel"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["created"], false);

    let (status, list) = json_of(api.get("/subscriptions/123456").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], first["id"]);
    assert_eq!(list[0]["channel_username"], "test_channel");
    assert_eq!(list[0]["edits"], first["edits"], "{list:?}");
    assert_eq!(list[0]["deletions"], first["deletions"], "{list:?}");
    api.stop().await;
}

#[actix_rt::test]
async fn subscriptions_of_an_unknown_user_is_an_empty_list() {
    let api = Api::start(Some(TOKEN)).await;
    let (status, list) = json_of(api.get("/subscriptions/987654").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([]));
    api.stop().await;
}

#[actix_rt::test]
async fn bad_requests_get_400_with_a_json_error() {
    let api = Api::start(Some(TOKEN)).await;
    let cases: Vec<(reqwest::RequestBuilder, &str)> = vec![
        (
            api.post("/add_channel")
                .header("content-type", "application/json")
                .body("{not json"),
            "invalid_json",
        ),
        (
            api.post("/add_channel").json(&json!({"user_id": 1})),
            "invalid_json",
        ),
        (
            api.post("/add_channel")
                .json(&json!({"channel_username": "test_channel"})),
            "invalid_json",
        ),
        (
            api.post("/add_channel")
                .json(&json!({"user_id": "abc", "channel_username": "test_channel"})),
            "invalid_json",
        ),
        (
            api.post("/add_channel")
                .json(&json!({"user_id": 1, "channel_username": "bad-name!"})),
            "invalid_channel_username",
        ),
        (
            api.post("/add_channel")
                .json(&json!({"user_id": 1, "channel_username": "abc"})),
            "invalid_channel_username",
        ),
        (
            api.post("/add_channel")
                .json(&json!({"user_id": 1, "channel_username": "https://t.me/+AbCdEf"})),
            "invalid_channel_username",
        ),
        (
            api.post("/add_channel")
                .json(&json!({"user_id": -5, "channel_username": "test_channel"})),
            "invalid_user_id",
        ),
        (api.get("/subscriptions/abc"), "invalid_user_id"),
        (
            api.get("/subscriptions/99999999999999999999999"),
            "invalid_user_id",
        ),
    ];
    for (req, code) in cases {
        let (status, body) = json_of(req.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], code, "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    // Without a content type the body is still read as JSON (load tools often omit it).
    let r = api
        .post("/add_channel")
        .body(r#"{"user_id": 5, "channel_username": "plain_body"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    api.stop().await;
}

#[actix_rt::test]
async fn an_oversized_body_gets_413() {
    let api = Api::start(Some(TOKEN)).await;
    let huge = format!(
        r#"{{"user_id": 1, "channel_username": "{}"}}"#,
        "a".repeat(100_000)
    );
    let r = api
        .post("/add_channel")
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    api.stop().await;
}

#[actix_rt::test]
async fn management_routes_need_the_bearer_token() {
    let api = Api::start(Some(TOKEN)).await;
    let body = json!({"user_id": 1, "channel_username": "test_channel"});
    let no_auth = api
        .client
        .post(format!("{}/add_channel", api.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status(), StatusCode::UNAUTHORIZED);
    let wrong = api
        .client
        .get(format!("{}/subscriptions/1", api.base))
        .bearer_auth("test-api-token-0123456788")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let (_, err) = json_of(wrong).await;
    assert_eq!(err["error"], "unauthorized");
    assert!(!err.to_string().contains(TOKEN));
    let basic = api
        .client
        .get(format!("{}/subscriptions/1", api.base))
        .basic_auth("user", Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    // Health and metrics need no token.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = api
            .client
            .get(format!("{}{path}", api.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    api.stop().await;
}

#[actix_rt::test]
async fn without_a_configured_token_management_routes_are_404() {
    let api = Api::start(None).await;
    let r = api
        .post("/add_channel")
        .json(&json!({"user_id": 1, "channel_username": "test_channel"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = api.get("/subscriptions/1").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = api
        .client
        .get(format!("{}/healthz", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    api.stop().await;
}

#[actix_rt::test]
async fn health_readiness_metrics_and_unknown_routes() {
    let api = Api::start(Some(TOKEN)).await;
    let (status, body) = json_of(
        api.client
            .get(format!("{}/healthz", api.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let (status, body) = json_of(
        api.client
            .get(format!("{}/readyz", api.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": "ready", "database": "ok", "redis": "not used", "actors": {}})
    );

    // One request to count, then the metrics show the seed's names and it.
    api.post("/add_channel")
        .json(&json!({"user_id": 77, "channel_username": "metric_channel"}))
        .send()
        .await
        .unwrap();
    let text = api
        .client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "messages_forwarded_total",
        "active_channels",
        "kuryer_http_requests_total",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    assert!(text.contains(r#"route="/add_channel""#), "{text}");

    let (status, body) = json_of(
        api.client
            .get(format!("{}/nope", api.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    api.stop().await;
}

#[actix_rt::test]
async fn readiness_fails_when_the_database_is_unreachable() {
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
    let api = kuryer::http::bind(&http, store).unwrap();
    let handle = api.server.handle();
    actix_rt::spawn(api.server);
    let client = reqwest::Client::new();
    let r = client
        .get(format!("http://{}/readyz", api.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = r.text().await.unwrap();
    assert!(!body.contains("hunter2"), "{body}");
    // A management call fails as 503 (try again), not as a 500 or a hang.
    let r = client
        .post(format!("http://{}/add_channel", api.addr))
        .bearer_auth(TOKEN)
        .json(&json!({"user_id": 1, "channel_username": "test_channel"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = r.text().await.unwrap();
    assert!(!body.contains("hunter2"), "{body}");
    handle.stop(true).await;
}

#[actix_rt::test]
async fn many_concurrent_adds_all_land_once() {
    let api = Api::start(Some(TOKEN)).await;
    let mut tasks = Vec::new();
    for user in 1..=50i64 {
        for ch in 0..4 {
            let req = api
                .post("/add_channel")
                .json(&json!({"user_id": user, "channel_username": format!("load_channel_{ch}")}));
            tasks.push(actix_rt::spawn(async move {
                req.send().await.unwrap().status()
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let (_, list) = json_of(api.get("/subscriptions/50").send().await.unwrap()).await;
    assert_eq!(list.as_array().unwrap().len(), 4);
    api.stop().await;
}
