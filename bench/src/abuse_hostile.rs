//! The one hostile user of the abuse scenario: everything a stranger can
//! make a public bot do, at once.
//!
//! What they built up beforehand is written straight into the database
//! before kuryer starts (at the default 30 commands a minute it would take
//! them minutes of commands, which the bench does not wait for): channels of
//! their own with the bot an admin, subscribed to from their private chat
//! and from many groups they linked, each group answering every send only
//! seconds later; on two subscriptions twenty of the costliest regular
//! expressions the bot accepts (the per-user budget of 40 patterns, spent),
//! on the others plain rules that grow a post towards the size limit.
//!
//! During the run, from a thread of its own, every 100 ms: a guessed
//! `/link` code posted in a channel; every 200 ms a command in their private
//! chat (`/add` with twenty made-up names, `/add … last 50` backfills,
//! `/replace`, `/list`); every 500 ms a 4,096-character post in one of their
//! channels and the bot added as an admin to yet another channel.

use std::time::{Duration, Instant};

use kuryer_sim::fake_bot_api::{ChatKind, Fault, MemberStatus};
use kuryer_sim::fixtures;
use serde::{Deserialize, Serialize};

use crate::abuse_world::World;

/// The hostile user's Telegram id (and private chat).
pub(crate) const HOSTILE: i64 = 900_000_001;
/// Their channels: `HOSTILE_CHANNEL_BASE - i`, `@hostile_feed_i`.
const HOSTILE_CHANNEL_BASE: i64 = -1_002_000_000_000;
/// Their groups: `HOSTILE_GROUP_BASE - g`.
const HOSTILE_GROUP_BASE: i64 = -600_000_000;
/// The channel they post guessed `/link` codes in.
const LINK_CHANNEL: i64 = -1_003_000_000_001;
/// Channels they add the bot to during the run: `ADDED_BASE - n`.
const ADDED_BASE: i64 = -1_004_000_000_000;

/// How much the hostile user has.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct HostileSize {
    /// Channels of their own they post in.
    pub(crate) channels: u32,
    /// Groups linked as destinations, each subscribed to every one of
    /// their channels, each answering only after `slow_ms`.
    pub(crate) groups: u32,
    pub(crate) slow_ms: u64,
}

/// What the hostile user did during the run.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct HostileCounts {
    pub(crate) commands: u64,
    pub(crate) link_guesses: u64,
    pub(crate) posts: u64,
    pub(crate) channels_added: u64,
    /// Subscriptions held before the run (private chat and groups).
    pub(crate) subscriptions: u64,
    /// Messages the fake accepted into their chats (private and groups).
    pub(crate) received: u64,
}

/// Twenty regex rules whose search costs the most the limits allow (no
/// literal to skip to, a lazy DFA cache too small for them), as the
/// daemon's hostile test uses them.
fn heavy_rules() -> serde_json::Value {
    let rules: Vec<_> = (0..20)
        .map(|i| {
            serde_json::json!({"from": format!("(?:[a-z]{{1,30}} ?){{1,8}}[{i}0-9]"),
                               "to": "$1", "regex": true})
        })
        .collect();
    serde_json::json!({ "replace": rules })
}

/// Plain rules that grow every `a` fourfold, then into 1,000 characters:
/// each would build a huge string if the transform did not stop at the limit.
fn growth_rules() -> serde_json::Value {
    let mut rules = vec![serde_json::json!({"from": "a", "to": "aaaa"})];
    rules.extend((0..19).map(|_| serde_json::json!({"from": "a", "to": "x".repeat(1_000)})));
    serde_json::json!({ "replace": rules })
}

/// A 4,096-character post of short words: the heavy rules' worst case.
pub(crate) fn hostile_text() -> String {
    "abcdefghijklmnopqrstuvwxyzabc ".repeat(140)[..4_096].to_owned()
}

/// Writes what the hostile user built before the run, into the database
/// and the fake. Returns their subscription count.
pub(crate) async fn prepare(w: &World, size: HostileSize) -> anyhow::Result<u64> {
    let token = fixtures::bot_token();
    w.fake.create_chat(HOSTILE, ChatKind::Private);
    for i in 1..=i64::from(size.channels) {
        let chat = HOSTILE_CHANNEL_BASE - i;
        w.fake
            .create_channel(chat, &format!("hostile_feed_{i}"), &format!("Feed {i}"));
        w.fake.set_admin(chat, token, true);
    }
    for g in 1..=i64::from(size.groups) {
        let chat = HOSTILE_GROUP_BASE - g;
        w.fake.create_chat(chat, ChatKind::Supergroup);
        w.fake.set_member(chat, HOSTILE, MemberStatus::Creator);
        w.fake
            .set_fault(chat, Fault::Slow(Duration::from_millis(size.slow_ms)), None);
    }
    // The channel they will guess codes in: the bot is an admin there
    // (its `my_chat_member` update waits for kuryer's first getUpdates).
    w.fake
        .add_bot_to_chat(token, LINK_CHANNEL, ChatKind::Channel, HOSTILE, true);
    let c = kuryer_sim::throwaway_db::connect(&w.url).await?;
    c.batch_execute(&format!(
        "INSERT INTO users (telegram_id) VALUES ({HOSTILE});
         INSERT INTO destinations (chat_id, kind, owner_user_id)
              SELECT {HOSTILE}, 'private', id FROM users WHERE telegram_id = {HOSTILE};
         INSERT INTO destinations (chat_id, kind, owner_user_id, title)
              SELECT {HOSTILE_GROUP_BASE} - g, 'supergroup', u.id, 'Group ' || g
                FROM users u CROSS JOIN generate_series(1, {groups}) g
               WHERE u.telegram_id = {HOSTILE};
         INSERT INTO channels (telegram_id, username, title, status, bot_is_admin)
              SELECT {HOSTILE_CHANNEL_BASE} - g, 'hostile_feed_' || g, 'Feed ' || g, 'active', true
                FROM generate_series(1, {channels}) g;",
        groups = size.groups,
        channels = size.channels,
    ))
    .await?;
    let (heavy, growth) = (heavy_rules().to_string(), growth_rules().to_string());
    // The heavy rules on the private chat's subscriptions to their first two
    // channels (20 patterns each: the per-user budget of 40), growth rules
    // everywhere else.
    let n = c
        .execute(
            &format!(
                "INSERT INTO subscriptions (user_id, channel_id, destination_id, transform)
                 SELECT u.id, ch.id, d.id,
                        CASE WHEN d.kind = 'private' AND ch.telegram_id >= {HOSTILE_CHANNEL_BASE} - 2
                             THEN $1::text::jsonb ELSE $2::text::jsonb END
                   FROM users u
                   JOIN destinations d ON d.owner_user_id = u.id
                  CROSS JOIN channels ch
                  WHERE u.telegram_id = {HOSTILE} AND ch.username LIKE 'hostile\\_feed\\_%'"
            ),
            &[&heavy, &growth],
        )
        .await?;
    Ok(n)
}

/// Does everything at once for `seconds`, from the calling thread.
pub(crate) fn attack(w: &World, size: HostileSize, seconds: f64) -> HostileCounts {
    let token = fixtures::bot_token();
    let text = hostile_text();
    let mut counts = HostileCounts::default();
    let start = Instant::now();
    let ordinary = w.size.channels.max(1);
    let mut tick: u64 = 0;
    while start.elapsed().as_secs_f64() < seconds {
        let due = start + Duration::from_millis(100 * tick);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let code: u128 = rand::random();
        w.fake
            .channel_admin_says(token, LINK_CHANNEL, &format!("/link {code:032x}"));
        counts.link_guesses += 1;
        if tick.is_multiple_of(2) {
            let k = tick / 2;
            let command = match k % 5 {
                0 => {
                    let names: Vec<String> = (0..20)
                        .map(|_| format!("@nx{:012x}", rand::random::<u64>() >> 16))
                        .collect();
                    format!("/add {}", names.join(" "))
                }
                1 => format!(
                    "/add @demo_channel_{} last 50",
                    1 + (k / 5) % u64::from(ordinary)
                ),
                2 => format!("/replace @hostile_feed_3 a => {}", "a".repeat(4)),
                3 => "/add @hostile_feed_1 last 50".to_owned(),
                _ => "/list".to_owned(),
            };
            w.fake.user_says(token, HOSTILE, &command, Some("en"));
            counts.commands += 1;
        }
        if tick.is_multiple_of(5) && size.channels > 0 {
            let i = 1 + (tick / 5) % u64::from(size.channels);
            w.fake.post(
                HOSTILE_CHANNEL_BASE - i as i64,
                kuryer_sim::fake_bot_api::NewChannelMessage::text(text.clone()),
            );
            counts.posts += 1;
        }
        if tick % 5 == 2 {
            counts.channels_added += 1;
            w.fake.add_bot_to_chat(
                token,
                ADDED_BASE - counts.channels_added as i64,
                ChatKind::Channel,
                HOSTILE,
                true,
            );
        }
        tick += 1;
    }
    counts
}

/// Messages the fake accepted into the hostile user's chats.
pub(crate) fn received(w: &World, size: HostileSize) -> u64 {
    let mut n = w.fake.received(HOSTILE).len();
    for g in 1..=i64::from(size.groups) {
        n += w.fake.received(HOSTILE_GROUP_BASE - g).len();
    }
    n as u64
}
