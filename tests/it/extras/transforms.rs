//! `/header`, `/footer`, `/replace` set through the bot, then posts as the
//! fake received them: the exact text, the entities at their shifted UTF-16
//! offsets, a caption through `copyMessage`'s `caption`, a cut at 4,096.

use std::time::Duration;

use kuryer_sim::fake_bot_api::{MediaKind, NewChannelMessage};
use serde_json::json;

use crate::bot::{TOKEN, World, wait_until};

const CHANNEL: i64 = -100_716_001;
const USER: i64 = 816_001;

#[actix_rt::test]
async fn header_footer_and_replacements_reach_the_fake_with_entities_shifted() {
    let w = World::start(&[TOKEN], &[(CHANNEL, "shape_news")], |c| {
        c.limits.bot_commands_per_minute = 1_000;
    })
    .await;
    w.say(TOKEN, USER, "/start", "en").await;
    let t = w.say(TOKEN, USER, "/add @shape_news", "en").await;
    assert!(t.contains("subscribed"), "{t}");
    let t = w
        .say(TOKEN, USER, "/header @shape_news 📣 Shape", "en")
        .await;
    assert!(t.contains("text changes saved"), "{t}");
    w.say(TOKEN, USER, "/footer @shape_news — via kuryer", "en")
        .await;
    let t = w
        .say(
            TOKEN,
            USER,
            "/replace @shape_news re:(\\d+) so'm => $1 UZS",
            "en",
        )
        .await;
    assert!(t.contains("saved"), "{t}");
    w.say(TOKEN, USER, "/replace @shape_news REKLAMA: =>", "en")
        .await;
    let t = w
        .say(TOKEN, USER, "/replace @shape_news re:( => x", "en")
        .await;
    assert!(t.contains("cannot be used"), "{t}");
    let t = w
        .say(TOKEN, USER, "/replace @shape_news no arrow", "en")
        .await;
    assert!(t.contains("/replace @channel old => new"), "{t}");

    // "😀 REKLAMA: Narx 1500 so'm" — bold on "Narx 1500 so'm" after the
    // emoji (2 UTF-16 units) and "REKLAMA: " ("REKLAMA:" removed: 8 units).
    let text = "😀 REKLAMA: Narx 1500 so'm";
    let bold = json!({"type": "bold", "offset": 12, "length": 14});
    let link = json!({"type": "italic", "offset": 0, "length": 2});
    let first = w.fake.post(
        CHANNEL,
        NewChannelMessage::text(text).with_entities(vec![link.clone(), bold]),
    );
    let photo = w.fake.post(
        CHANNEL,
        NewChannelMessage::media(MediaKind::Photo, Some("Rasm 20 so'm")),
    );
    let long = w
        .fake
        .post(CHANNEL, NewChannelMessage::text("x".repeat(4_090)));
    let got = wait_until(Duration::from_secs(20), || {
        w.fake
            .received(USER)
            .iter()
            .filter(|m| m.text.as_deref().is_some_and(|t| t.starts_with("📣 Shape")))
            .count()
            >= 3
    })
    .await;
    assert!(got, "posts never arrived:\n{}", w.log());
    let posts: Vec<_> = w
        .fake
        .received(USER)
        .into_iter()
        .filter(|m| m.text.as_deref().is_some_and(|t| t.starts_with("📣 Shape")))
        .collect();
    assert_eq!(posts.len(), 3, "{posts:#?}");
    // 1: sendMessage with the new text; bold shifted back by 8 ("REKLAMA:"
    // removed), still on "Narx 1500 UZS" (one unit shorter), after the header line.
    let header = "📣 Shape\n".encode_utf16().count();
    assert_eq!(posts[0].method, "sendMessage");
    assert_eq!(
        posts[0].text.as_deref(),
        Some("📣 Shape\n😀  Narx 1500 UZS\n— via kuryer")
    );
    assert_eq!(
        posts[0].entities,
        vec![
            json!({"type": "italic", "offset": header, "length": 2}),
            json!({"type": "bold", "offset": header + 4, "length": 13}),
        ]
    );
    // 2: copyMessage of the photo with the new caption.
    assert_eq!(posts[1].method, "copyMessage");
    assert_eq!(posts[1].source, Some((CHANNEL, photo)));
    assert_eq!(
        posts[1].text.as_deref(),
        Some("📣 Shape\nRasm 20 UZS\n— via kuryer")
    );
    // 3: over 4,096 with header and footer: cut to 4,096 ending in "…".
    let cut = posts[2].text.clone().unwrap();
    assert_eq!(cut.encode_utf16().count(), 4_096);
    assert!(cut.ends_with("x…"), "{}", &cut[cut.len() - 10..]);
    let _ = (first, long);

    // Cleared: the next post arrives as the channel wrote it.
    w.say(TOKEN, USER, "/header @shape_news off", "en").await;
    w.say(TOKEN, USER, "/footer @shape_news off", "en").await;
    let t = w.say(TOKEN, USER, "/replace @shape_news off", "en").await;
    assert!(t.contains("no text changes"), "{t}");
    w.fake
        .post(CHANNEL, NewChannelMessage::text("plain 5 so'm"));
    let plain = wait_until(Duration::from_secs(20), || {
        w.fake
            .received(USER)
            .iter()
            .any(|m| m.text.as_deref() == Some("plain 5 so'm"))
    })
    .await;
    assert!(plain, "{:#?}", w.fake.received(USER));
}

/// One user's subscriptions compile at most `MAX_PATTERNS_PER_USER` (40)
/// regular expressions together: two subscriptions of 20 regex rules fill
/// it; a 41st rule, or a filter regex, on a third is refused, a plain rule
/// is not.
#[actix_rt::test]
async fn a_users_regular_expressions_are_budgeted_across_subscriptions() {
    let channels = [
        (-100_716_011, "budget_a"),
        (-100_716_012, "budget_b"),
        (-100_716_013, "budget_c"),
    ];
    let w = World::start(&[TOKEN], &channels, |c| {
        c.limits.bot_commands_per_minute = 10_000;
    })
    .await;
    let user = 816_011;
    w.say(TOKEN, user, "/start", "en").await;
    for (_, name) in channels {
        let t = w.say(TOKEN, user, &format!("/add @{name}"), "en").await;
        assert!(t.contains("subscribed"), "{t}");
    }
    for name in ["budget_a", "budget_b"] {
        for i in 0..20 {
            let t = w
                .say(
                    TOKEN,
                    user,
                    &format!("/replace @{name} re:x{i}+ => y"),
                    "en",
                )
                .await;
            assert!(t.contains("saved"), "{name} {i}: {t}");
        }
    }
    let t = w
        .say(TOKEN, user, "/replace @budget_c re:z+ => y", "en")
        .await;
    assert!(t.contains("at most 40 regular expressions"), "{t}");
    let t = w.say(TOKEN, user, "/filter @budget_c re:z+", "en").await;
    assert!(t.contains("at most 40 regular expressions"), "{t}");
    let t = w.say(TOKEN, user, "/replace @budget_c z => y", "en").await;
    assert!(t.contains("saved"), "{t}");
    // Replacing a subscription's own rules counts them once, not twice.
    let t = w.say(TOKEN, user, "/replace @budget_a off", "en").await;
    assert!(t.contains("no text changes"), "{t}");
    let t = w
        .say(TOKEN, user, "/replace @budget_c re:z+ => y", "en")
        .await;
    assert!(t.contains("saved"), "{t}");
}
