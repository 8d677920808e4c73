//! The status page of `kuryer run` (`/status`), over HTTP against the real
//! binary: refused without the token, the login form's cookie, what it
//! shows, its speed with 10,000 channels, and a dead letter made by a real
//! failure replayed from its button and delivered once.

use std::time::{Duration, Instant};

use crate::intake::{API_TOKEN, Intake, text, wait_until};

/// `kuryer run` with `@dl_console` and 10,000 more channels in its database.
async fn with_many_channels() -> Intake {
    let t = Intake::start(&[(CHANNEL, "dl_console")]).await;
    t.db.client()
        .await
        .batch_execute(
            "INSERT INTO channels (telegram_id, username, title, status)
             SELECT -1002000000000 - g, 'bulk_' || g, 'Bulk channel ' || g, 'invalid'
               FROM generate_series(1, 10000) g",
        )
        .await
        .unwrap();
    t
}

const CHANNEL: i64 = -1_027_401;
const USER: i64 = 927_401;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_status_page_is_refused_without_the_token_and_shows_the_installation() {
    let t = with_many_channels().await;
    t.subscribe(USER, "dl_console").await;
    // Reader accounts as other instances left them in PostgreSQL: one held
    // elsewhere, waiting out a flood wait, with today's budgets partly
    // spent and its joins stopped; one Telegram froze.
    t.db.client()
        .await
        .batch_execute(
            "INSERT INTO reader_accounts (name, status, lease_holder, lease_expires_at,
                                          flood_wait_until, flood_wait_method)
             VALUES ('busy', 'active', 'elsewhere', now() + interval '1 hour',
                     now() + interval '2 hours', 'contacts.resolveUsername');
             INSERT INTO reader_accounts (name, status, lost_reason)
             VALUES ('frosty', 'frozen', 'FROZEN_METHOD_INVALID');
             INSERT INTO reader_budgets (account, day, resolves, joins, resolve_limit,
                                         join_limit, joins_stopped)
             VALUES ('busy', (now() AT TIME ZONE 'UTC')::date, 27, 4, 30, 10, 'PEER_FLOOD'),
                    ('busy', (now() AT TIME ZONE 'UTC')::date - 1, 30, 10, 30, 10, NULL);",
        )
        .await
        .unwrap();
    let http = client();
    let status = format!("{}/status", t.base);

    // No token, a wrong one, a wrong cookie: the login form, 401.
    let r = http.get(&status).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body = r.text().await.unwrap();
    assert!(body.contains("action=\"/status/login\""), "{body}");
    assert!(!body.contains("Bulk channel"), "{body}");
    let r = http.get(&status).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(&status)
        .header("Cookie", "kuryer_console=wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{}/status/login", t.base))
        .form(&[("token", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{}/status/dead_letters/1/replay", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The form's cookie opens it.
    let r = http
        .post(format!("{}/status/login", t.base))
        .form(&[("token", API_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let cookie = cookie.split(';').next().unwrap().to_owned();

    // 10,000 channels: the page is one bounded page; timed over 5 loads.
    let mut slowest = Duration::ZERO;
    let mut body = String::new();
    for _ in 0..5 {
        let start = Instant::now();
        let r = http
            .get(&status)
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        body = r.text().await.unwrap();
        slowest = slowest.max(start.elapsed());
    }
    println!("status page with 10,001 channels: slowest of 5 loads {slowest:?}");
    assert!(slowest < Duration::from_millis(500), "{slowest:?}");
    for want in [
        "Instances and leases",
        "live",
        "Reader accounts",
        "Queues of every instance",
        "Dead letters",
        "10001 channel(s)",
        "@bulk_1<",
        "rel=next",
        "http.grafana_url",
    ] {
        assert!(body.contains(want), "{want} missing");
    }
    // Every account, from PostgreSQL: state, flood wait, what is left today.
    let busy = body
        .split("<tr>")
        .find(|r| r.contains("<td>busy</td>"))
        .unwrap_or_else(|| panic!("no row of busy: {body}"));
    for want in [
        "elsewhere",
        "(contacts.resolveUsername)",
        ">3 of 30<",
        ">6 of 10 (stopped: PEER_FLOOD)<",
    ] {
        assert!(busy.contains(want), "{want} missing from {busy}");
    }
    let frosty = body
        .split("<tr>")
        .find(|r| r.contains("<td>frosty</td>"))
        .unwrap_or_else(|| panic!("no row of frosty: {body}"));
    assert!(
        frosty.contains("class=bad>frozen (FROZEN_METHOD_INVALID)<"),
        "{frosty}"
    );
    assert!(!body.contains("<script"), "a script on the page");
    assert!(!body.contains("src=\"http"), "an asset from elsewhere");

    // Searchable, and the last page has no next link.
    let r = http
        .get(format!("{status}?q=bulk_9999"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains("1 channel(s) matching"), "{body}");
    assert!(body.contains("@bulk_9999") && !body.contains("rel=next"));
    let r = http
        .get(format!("{status}?q=%40DL_console"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(
        body.contains("@dl_console") && body.contains("(bot admin)"),
        "{body}"
    );
    let r = http
        .get(format!("{status}?page=200"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(
        body.contains("showing 10001–10001") && !body.contains("rel=next"),
        "{body}"
    );

    // A user's subscriptions and destinations.
    let r = http
        .get(format!("{status}?user={USER}"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(
        body.contains(&USER.to_string()) && body.contains("Private"),
        "{body}"
    );
    t.stop();
}

/// A post PostgreSQL refused is listed on the page; its Replay button
/// delivers it once; pressed again, it says the letter is not waiting.
#[tokio::test]
async fn a_dead_letter_is_replayed_from_the_status_page_and_delivered_once() {
    let t = Intake::start(&[(CHANNEL, "dl_console")]).await;
    t.subscribe(USER, "dl_console").await;
    t.db.client()
        .await
        .batch_execute(&format!(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
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
    let refused = text(&t.fake, CHANNEL, "refused, then replayed from the page");
    let http = client();
    let page = async || {
        http.get(format!("{}/status", t.base))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let shown = wait_until(Duration::from_secs(60), async || {
        page().await.contains("id=dl-1>")
    })
    .await;
    assert!(shown, "{}", page().await);
    assert!(page().await.contains("refused by the test"));
    t.db.client()
        .await
        .batch_execute("DROP TRIGGER refuse ON posts")
        .await
        .unwrap();
    let press = async || {
        http.post(format!("{}/status/dead_letters/1/replay", t.base))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap()
    };
    let r = press().await;
    assert_eq!(r.status(), 303);
    let back = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.contains("replayed"), "{back}");
    t.expect(&[(USER, CHANNEL, refused)], Duration::from_secs(30))
        .await;
    let r = press().await;
    let back = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.contains("not%20waiting"), "{back}");
    let body = page().await;
    assert!(!body.contains("id=dl-1>"), "still listed as waiting");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(t.fake.received(USER).len(), 1);
    t.stop();
}

/// The cells of `instance`'s row in the page's queue table.
fn queue_row(body: &str, instance: &str) -> Option<Vec<String>> {
    let section = body.split("<h2 id=queues>").nth(1)?.split("<h2").next()?;
    let row = section
        .split("<tr>")
        .find(|r| r.starts_with(&format!("<td>{instance}</td>")))?;
    Some(
        row.split("<td")
            .skip(1)
            .map(|c| {
                let c = c.split_once('>').map_or(c, |(_, rest)| rest);
                c.split("</td>").next().unwrap_or("").to_owned()
            })
            .collect(),
    )
}

#[tokio::test]
async fn the_page_of_either_instance_shows_the_queues_of_both() {
    let w = crate::instances::world(6, 4, 2, 1.0).await;
    let west = w.start("west", 1.0).await;
    let east = w.start("east", 1.0).await;
    w.wait_fair(&["east", "west"], Duration::from_secs(30))
        .await
        .expect("two fair shares");
    let http = client();
    // Each page must show both rows, each instance's channels as it wrote
    // them: the two together poll all six channels.
    for asked in [&west, &east] {
        let page = format!("http://127.0.0.1:{}/status", asked.port);
        let read = async || -> Option<Vec<u64>> {
            let r = http.get(&page).bearer_auth(API_TOKEN).send().await.ok()?;
            let body = r.text().await.ok()?;
            let mut polled = Vec::new();
            for name in ["west", "east"] {
                let row = queue_row(&body, name)?;
                // instance, as of, queued, in flight, rows waiting, held, polled, …
                polled.push(row.get(6)?.parse::<u64>().ok()?);
            }
            (polled.iter().sum::<u64>() == 6 && polled.iter().all(|&n| n > 0)).then_some(polled)
        };
        let start = Instant::now();
        let mut polled = None;
        while polled.is_none() && start.elapsed() < Duration::from_secs(20) {
            polled = read().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            polled.is_some(),
            "the page of {} does not show both instances' queues",
            asked.name
        );
    }
}
