//! More of the bot against `kuryer run` and the fake Bot API: `/add` by a
//! forwarded post, a channel linked by its one-time code, `/list` over
//! several pages, the admins' `/stats`, the command menus, and the
//! daemon's "destination lost" message in the owner's language.

use std::time::Duration;

use kuryer_sim::fake_bot_api::{ChatKind, Fault, NewChannelMessage};
use serde_json::Value;

use kuryer::secret::Secret;

use crate::bot::{TOKEN, TOKEN2, World, buttons, message, wait_until};

/// A post forwarded from a channel subscribes to that channel.
#[actix_rt::test]
async fn a_post_forwarded_from_a_channel_subscribes_to_it() {
    let chan = -100_720_001;
    let w = World::start(&[TOKEN], &[(chan, "forwarded_chan")], |_| {}).await;
    let user = 820_001;
    w.say(TOKEN, user, "/start", "ru").await;
    let post = w.fake.post(chan, NewChannelMessage::text("worth a follow"));
    let before = w.replies(user).len();
    w.fake.user_forwards(TOKEN, user, chan, post);
    let t = w.next_reply(user, before).await.text.unwrap();
    assert!(t.contains("подписка оформлена"), "{t}");
    assert!(t.contains("forwarded_chan"), "{t}");
    let t = w.say(TOKEN, user, "/list", "ru").await;
    assert!(t.contains("@forwarded_chan"), "{t}");
    // And the next post arrives.
    let next = w.fake.post(chan, NewChannelMessage::text("next"));
    assert!(
        wait_until(Duration::from_secs(30), || {
            w.fake.report(&[(user, chan, next)]).delivered == 1
        })
        .await,
        "{}",
        w.log()
    );
}

/// The code (32 hex digits) in the bot's `/link` answer.
fn code_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .find(|w| w.len() == 32)
        .unwrap_or_else(|| panic!("no code in {text}"))
        .to_owned()
}

/// `/link` in private gives a one-time code; `/link <code>` posted in a
/// channel where the bot is admin links it to that user; the code works
/// once; a wrong code links nothing.
#[actix_rt::test]
async fn a_channel_is_linked_by_its_one_time_code() {
    const API: &str = "bot-more-api-token-012345";
    let w = World::start(&[TOKEN], &[], |cfg| {
        cfg.http.api_token = Some(Secret::new(API));
    })
    .await;
    let (user, channel, other) = (820_101, -100_720_101, -100_720_102);
    w.say(TOKEN, user, "/start", "en").await;
    w.fake
        .add_bot_to_chat(TOKEN, channel, ChatKind::Channel, user, true);
    w.fake
        .add_bot_to_chat(TOKEN, other, ChatKind::Channel, user, true);
    let t = w.say(TOKEN, user, "/link", "en").await;
    let code = code_in(&t);

    // A wrong code: nothing linked, the channel told how it works.
    let before = w.replies(other).len();
    w.fake.channel_admin_says(TOKEN, other, "/link 000001");
    let t = w.next_reply(other, before).await.text.unwrap();
    assert!(t.contains("/link"), "{t}");

    let before_owner = w.replies(user).len();
    let before = w.replies(channel).len();
    w.fake
        .channel_admin_says(TOKEN, channel, &format!("/link {code}"));
    let t = w.next_reply(channel, before).await.text.unwrap();
    assert!(t.contains("now receives posts"), "{t}");
    let t = w.next_reply(user, before_owner).await.text.unwrap();
    assert!(t.contains("is now one of your destinations"), "{t}");

    // Used once: the same code in the other channel links nothing.
    let before = w.replies(other).len();
    w.fake
        .channel_admin_says(TOKEN, other, &format!("/link {code}"));
    let t = w.next_reply(other, before).await.text.unwrap();
    assert!(!t.contains("now receives posts"), "{t}");

    let dests: Value = reqwest::Client::new()
        .get(format!("http://{}/destinations/{user}", w.http))
        .bearer_auth(API)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let chats: Vec<(i64, &str)> = dests
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["chat_id"].as_i64().unwrap(), d["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(chats, vec![(user, "private"), (channel, "channel")]);
}

/// UTF-16 code units: what Telegram's 4,096 limit counts.
fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// 20 subscriptions: `/list` shows 8 a page with ◀/▶, every page under
/// 4,096 UTF-16 units, every subscription on exactly one page.
#[actix_rt::test]
async fn a_long_list_is_paged_and_no_message_is_too_long() {
    let channels: Vec<(i64, String)> = (0..20)
        .map(|i| (-100_730_000 - i, format!("long_list_channel_number_{i:02}")))
        .collect();
    let refs: Vec<(i64, &str)> = channels.iter().map(|(c, n)| (*c, n.as_str())).collect();
    // Each name `/add` checks costs a command: room for twenty.
    let w = World::start(&[TOKEN], &refs, |c| {
        c.limits.bot_commands_per_minute = 1_000
    })
    .await;
    let user = 820_201;
    w.say(TOKEN, user, "/start", "uz").await;
    for chunk in channels.chunks(10) {
        let names: Vec<String> = chunk.iter().map(|(_, n)| format!("@{n}")).collect();
        let t = w
            .say(TOKEN, user, &format!("/add {}", names.join(" ")), "uz")
            .await;
        assert_eq!(t.lines().count(), 10, "{t}");
    }
    let before = w.replies(user).len();
    w.fake.user_says(TOKEN, user, "/list", Some("uz"));
    let list = w.next_reply(user, before).await;
    let mut seen = Vec::new();
    let mut page = list.clone();
    for p in 0..3 {
        let text = page.text.clone().unwrap();
        assert!(
            utf16_len(&text) <= 4096,
            "page {p}: {} units",
            utf16_len(&text)
        );
        let names: Vec<&str> = channels
            .iter()
            .map(|(_, n)| n.as_str())
            .filter(|n| text.contains(&format!("@{n} ")))
            .collect();
        assert_eq!(names.len(), if p < 2 { 8 } else { 4 }, "page {p}:\n{text}");
        seen.extend(names.iter().map(|n| n.to_string()));
        let b = buttons(&page);
        // Three buttons a subscription, then the page buttons.
        let nav: Vec<&str> = b
            .iter()
            .filter(|(_, d)| d.starts_with("l:"))
            .map(|(_, d)| d.as_str())
            .collect();
        let expected: &[&str] = match p {
            0 => &["l:1"],
            1 => &["l:0", "l:2"],
            _ => &["l:1"],
        };
        assert_eq!(nav, expected, "page {p}");
        if p == 2 {
            break;
        }
        let edits = page.edits;
        w.press(TOKEN, user, list.message_id, &format!("l:{}", p + 1))
            .await;
        assert!(
            wait_until(Duration::from_secs(15), || {
                message(&w, user, list.message_id).edits > edits
            })
            .await
        );
        page = message(&w, user, list.message_id);
    }
    seen.sort();
    let mut all: Vec<String> = channels.iter().map(|(_, n)| n.clone()).collect();
    all.sort();
    assert_eq!(seen, all, "every subscription on exactly one page");
    // Nothing the bot sent this user is over the limit.
    for m in w.fake.received(user) {
        let len = m.text.as_deref().map_or(0, utf16_len);
        assert!(len <= 4096, "{len} units: {:?}", m.text);
    }
}

/// `/stats` for an admin (figures), a polite refusal for anyone else.
#[actix_rt::test]
async fn stats_is_for_admins_only() {
    let chan = -100_740_001;
    let admin = 820_301;
    let w = World::start(&[TOKEN], &[(chan, "stats_chan")], |cfg| {
        cfg.telegram.admins = vec![admin];
    })
    .await;
    let user = 820_302;
    w.say(TOKEN, user, "/start", "en").await;
    w.say(TOKEN, user, "/add @stats_chan", "en").await;
    let t = w.say(TOKEN, user, "/stats", "en").await;
    assert!(t.contains("administrators"), "{t}");
    assert!(!t.contains("Users:"), "{t}");
    let t = w.say(TOKEN, admin, "/stats", "en").await;
    for line in [
        "Users: 2",
        "Subscriptions: 1 active of 1",
        "Sent:",
        "Queue:",
        "Channels:",
    ] {
        assert!(t.contains(line), "{line} missing from\n{t}");
    }
    assert!(t.contains("active 1"), "the channel by status:\n{t}");
    // In the admin's language too.
    let t = w.say(TOKEN, admin, "/lang ru", "en").await;
    assert!(!t.is_empty());
    let t = w.say(TOKEN, admin, "/stats", "en").await;
    assert!(!t.contains("Users:"), "{t}");
    assert!(t.contains('2'), "{t}");
}

/// `/stats` counts the reader accounts by state, as `kuryer accounts` lists
/// them: none at first, then two active, one lost (Telegram ended its
/// session) and one never signed in.
#[actix_rt::test]
async fn stats_count_the_reader_accounts_by_state() {
    let admin = 820_311;
    let w = World::start(&[TOKEN], &[], |cfg| {
        cfg.telegram.admins = vec![admin];
    })
    .await;
    let t = w.say(TOKEN, admin, "/stats", "en").await;
    assert!(t.contains("Reader accounts: 0"), "{t}");

    let store = w.db.store();
    for (i, name) in ["alpha", "beta", "gamma"].iter().enumerate() {
        store.ensure_reader_account(name, None).await.unwrap();
        store
            .set_session_user(name, 830_000 + i as i64, 0)
            .await
            .unwrap();
    }
    store.ensure_reader_account("delta", None).await.unwrap();
    assert!(
        store
            .end_reader_session("gamma", "lost", Some("AUTH_KEY_UNREGISTERED"))
            .await
            .unwrap()
    );
    let t = w.say(TOKEN, admin, "/stats", "en").await;
    assert!(
        t.contains("Reader accounts: active 2, lost 1, new 1"),
        "{t}"
    );
    // The same counts in another language.
    w.say(TOKEN, admin, "/lang ru", "en").await;
    let t = w.say(TOKEN, admin, "/stats", "en").await;
    assert!(
        t.contains("Аккаунты-читатели: active 2, lost 1, new 1"),
        "{t}"
    );
}

/// Each bot sets its command menu in uz, ru, en and a default: the same
/// commands, described in each language.
#[actix_rt::test]
async fn every_bot_sets_its_commands_in_each_language() {
    let w = World::start(&[TOKEN, TOKEN2], &[], |_| {}).await;
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c["command"].as_str().unwrap().to_owned())
            .collect()
    };
    let descriptions = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c["description"].as_str().unwrap().to_owned())
            .collect()
    };
    for token in [TOKEN, TOKEN2] {
        let menus: Vec<Value> = ["uz", "ru", "en", ""]
            .iter()
            .map(|l| {
                w.fake
                    .my_commands(token, l)
                    .unwrap_or_else(|| panic!("no {l:?} menu for {token}"))
            })
            .collect();
        let en = names(&menus[2]);
        for c in [
            "start", "help", "add", "list", "remove", "pause", "resume", "lang",
        ] {
            assert!(en.iter().any(|n| n == c), "{c} missing: {en:?}");
        }
        for m in &menus {
            assert_eq!(names(m), en, "the same commands in every language");
        }
        assert_eq!(descriptions(&menus[2])[0], "Start and a short introduction");
        assert_ne!(descriptions(&menus[0]), descriptions(&menus[2]), "uz");
        assert_ne!(descriptions(&menus[1]), descriptions(&menus[2]), "ru");
        assert_ne!(descriptions(&menus[0]), descriptions(&menus[1]));
        assert!(
            descriptions(&menus[1])
                .iter()
                .any(|d| d.chars().any(|c| ('а'..='я').contains(&c))),
            "ru in Cyrillic"
        );
    }
}

/// A send to a linked group fails with 403 (the bot was kicked without
/// Telegram telling it): the daemon deactivates it and tells the owner in
/// their language, through the bot they started.
#[actix_rt::test]
async fn the_daemon_tells_a_lost_destination_in_the_owners_language_through_their_bot() {
    const API: &str = "bot-more-api-token-lost01";
    let chan = -100_750_001;
    let w = World::start(&[TOKEN, TOKEN2], &[(chan, "lost_dest_chan")], |cfg| {
        cfg.http.api_token = Some(Secret::new(API));
    })
    .await;
    let (user, group) = (820_401, -100_750_101);
    w.say(TOKEN2, user, "/start", "ru").await;
    let t = w.say(TOKEN2, user, "/add @lost_dest_chan", "ru").await;
    assert!(t.contains("подписка оформлена"), "{t}");
    w.fake
        .add_bot_to_chat(TOKEN2, group, ChatKind::Supergroup, user, false);
    let before = w.replies(user).len();
    w.fake.user_says_in(TOKEN2, group, user, "/link");
    w.next_reply(user, before).await;

    let client = reqwest::Client::new();
    let api = |path: String| {
        client
            .get(format!("http://{}{path}", w.http))
            .bearer_auth(API)
    };
    let dests: Value = api(format!("/destinations/{user}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dest = dests
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["chat_id"] == group)
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let subs: Value = api(format!("/subscriptions/{user}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sub = subs[0]["id"].as_i64().unwrap();
    let r = client
        .put(format!(
            "http://{}/subscriptions/{user}/{sub}/destination",
            w.http
        ))
        .bearer_auth(API)
        .json(&serde_json::json!({"destination_id": dest}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);

    w.fake.set_fault(group, Fault::Forbidden, None);
    let before = w.replies(user).len();
    w.fake
        .post(chan, NewChannelMessage::text("to a group I left"));
    let told = w.next_reply(user, before).await;
    let t = told.text.unwrap();
    assert!(t.contains("Меня удалили"), "{t}");
    assert!(t.contains("/link"), "{t}");
    assert_eq!(told.bot_id, 5252, "sent by the bot the owner started");
    let dests: Value = api(format!("/destinations/{user}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let g = dests
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["chat_id"] == group)
        .unwrap();
    assert_eq!(g["active"], false);
}
