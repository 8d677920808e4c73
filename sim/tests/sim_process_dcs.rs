//! The real `kuryer-sim` binary's two data centres from outside: its JSON
//! line names both, `GET /mtproto/public_key` gives what a client needs for
//! the key exchange, and `POST /mtproto/accounts/{a}/home_dc` moves an
//! account between them (refusing what it cannot do).

use std::path::Path;
use std::time::Duration;

use kuryer_sim::mtproto::PUBLIC_KEY_PEM;
use kuryer_sim::process::{FakeProcess, FakeSpec};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_names_both_data_centres_and_its_public_key() {
    let sim = FakeProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_kuryer-sim")),
        &[],
        &FakeSpec {
            channels: 0,
            users: 0,
            ..FakeSpec::default()
        },
    )
    .expect("kuryer-sim starts");
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let control = sim.control_url().to_owned();
    let key: Value = http
        .get(format!("{control}/mtproto/public_key"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(key["pem"], PUBLIC_KEY_PEM);
    assert_eq!(
        key["dcs"]["2"].as_str(),
        sim.mtproto.as_deref(),
        "DC 2 is the announced address"
    );
    let dc1 = key["dcs"]["1"].as_str().expect("a second DC");
    assert_ne!(Some(dc1), sim.mtproto.as_deref());
    std::net::TcpStream::connect(dc1).expect("DC 1 listens");

    let post = async |route: String, body: Value| -> (u16, Value) {
        let r = http.post(route).json(&body).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    };
    let (status, account) = post(
        format!("{control}/mtproto/accounts"),
        json!({"phone": "+15550009", "signed_in": false}),
    )
    .await;
    assert_eq!(status, 200, "{account}");
    assert!(account.get("auth_key").is_none(), "no key handed out");
    let id = account["user_id"].as_i64().unwrap();
    let (status, moved) = post(
        format!("{control}/mtproto/accounts/{id}/home_dc"),
        json!({"dc": 1}),
    )
    .await;
    assert_eq!((status, &moved["dc"]), (200, &json!(1)), "{moved}");
    let (status, refusal) = post(
        format!("{control}/mtproto/accounts/{id}/home_dc"),
        json!({"dc": 7}),
    )
    .await;
    assert_eq!((status, &refusal["error"]), (400, &json!("dc_invalid")));
    let (status, refusal) = post(
        format!("{control}/mtproto/accounts/999999/home_dc"),
        json!({"dc": 1}),
    )
    .await;
    assert_eq!(
        (status, &refusal["error"]),
        (404, &json!("unknown_account"))
    );
}
