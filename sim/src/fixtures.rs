//! The generated world that `kuryer demo`, the benchmarks and the tests
//! share: a population of users, channels and subscriptions written straight
//! into a migrated database, the same channels and chats in the fake
//! Telegram, the demo's posts, and the list of deliveries that must arrive.

use serde_json::json;

use crate::fake_bot_api::{ChatKind, FakeLimits, FakeTelegram, MediaKind, NewChannelMessage};

const BOT_TOKEN: &str = "1000001:DEMOdemoDEMOdemoDEMOdemoDEMOdemo";
/// Users are `FIRST_USER + 1 ..= FIRST_USER + users` (their private chats too).
pub const FIRST_USER: i64 = 100_000;
const CHANNEL_BASE: i64 = -1_001_000_000_000;

/// Fills an empty, migrated database: `users` users, `channels` resolved
/// channels, each user's private chat subscribed to `subs` distinct
/// channels. Returns every (destination chat, source channel chat) pair.
pub async fn populate(
    c: &tokio_postgres::Client,
    channels: u32,
    users: u32,
    subs: u32,
) -> Result<Vec<(i64, i64)>, tokio_postgres::Error> {
    let subs = subs.clamp(1, channels.max(1));
    c.batch_execute(&format!(
        "INSERT INTO users (telegram_id) SELECT {FIRST_USER} + g FROM generate_series(1, {users}) g;
         INSERT INTO channels (telegram_id, username, title, status)
              SELECT {CHANNEL_BASE} - g, 'demo_channel_' || g, 'Demo channel ' || g, 'active'
                FROM generate_series(1, {channels}) g;
         INSERT INTO destinations (chat_id, kind, owner_user_id)
              SELECT telegram_id, 'private', id FROM users;
         INSERT INTO subscriptions (user_id, channel_id, destination_id)
              SELECT u.id, c.id, d.id
                FROM users u
                JOIN destinations d ON d.owner_user_id = u.id
                CROSS JOIN generate_series(0, {subs} - 1) k
                JOIN channels c ON c.telegram_id = {CHANNEL_BASE} - (((u.id * 31 + k) % {channels}) + 1);
         ANALYZE;"
    ))
    .await?;
    Ok(c.query(
        "SELECT d.chat_id, c.telegram_id FROM subscriptions s
           JOIN destinations d ON d.id = s.destination_id
           JOIN channels c ON c.id = s.channel_id",
        &[],
    )
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect())
}

/// A fake Telegram knowing the demo's bot, channels and users' chats.
pub fn start_fake(limits: FakeLimits, channels: u32, users: u32) -> std::io::Result<FakeTelegram> {
    start_fake_on(limits, channels, users, 0)
}

/// [`start_fake`] with its Bot API on 127.0.0.1:`port` (0: a free port).
pub fn start_fake_on(
    limits: FakeLimits,
    channels: u32,
    users: u32,
    port: u16,
) -> std::io::Result<FakeTelegram> {
    let fake = FakeTelegram::start_on(limits, port)?;
    fake.add_bot(BOT_TOKEN);
    for i in 1..=i64::from(channels) {
        fake.create_channel(
            channel_chat(i),
            &format!("demo_channel_{i}"),
            &format!("Demo channel {i}"),
        );
    }
    for u in 1..=i64::from(users) {
        fake.create_chat(FIRST_USER + u, ChatKind::Private);
    }
    Ok(fake)
}

/// The demo bot's token (the fake knows it). Never printed.
pub fn bot_token() -> &'static str {
    BOT_TOKEN
}

/// First chat id of the benchmark's group destinations (group `g` is
/// `GROUP_BASE - g`): negative like every group id, and far from channels'.
pub const GROUP_BASE: i64 = -500_000_000;

/// Telegram chat id of benchmark group `g` (1-based).
pub fn group_chat(g: i64) -> i64 {
    GROUP_BASE - g
}

/// Token of bot `k` (0-based): bot 0 is the demo's bot; the others exist
/// only in the fake. Never printed.
pub fn nth_bot_token(k: usize) -> String {
    if k == 0 {
        return BOT_TOKEN.to_owned();
    }
    format!("{}:BENCHbenchBENCHbenchBENCHbench{k:04}", 1_000_001 + k)
}

/// Telegram chat id of demo channel `i` (1-based); its `channels.id` is `i`.
pub fn channel_chat(i: i64) -> i64 {
    CHANNEL_BASE - i
}

/// Every (destination, channel, post) that must arrive, given the
/// subscription pairs and the posts published so far.
pub fn expected_list(pairs: &[(i64, i64)], posts: &[(i64, i32)]) -> Vec<(i64, i64, i32)> {
    let mut by_channel: std::collections::HashMap<i64, Vec<i32>> = Default::default();
    for (chat, first) in posts {
        by_channel.entry(*chat).or_default().push(*first);
    }
    let mut out = Vec::with_capacity(pairs.len() * 4);
    for (dest, channel) in pairs {
        if let Some(ids) = by_channel.get(channel) {
            for id in ids {
                out.push((*dest, *channel, *id));
            }
        }
    }
    out
}

/// Publishes post `round` on channel `i`: mostly text with entities, some
/// photos with captions, and every fifth an album of three photos.
/// Returns the post's first message id.
pub fn publish(fake: &FakeTelegram, chat: i64, i: i64, round: u32) -> i32 {
    let text = format!("Demo post {round} of channel {i}: news, with a bold start.");
    let bold = json!({"type": "bold", "offset": 0, "length": 4});
    match round % 5 {
        4 => {
            let group = Some(format!("{}{:04}", i, round));
            let mut first = 0;
            for part in 0..3 {
                let id = fake.post(
                    chat,
                    NewChannelMessage {
                        text: (part == 0).then(|| text.clone()),
                        entities: if part == 0 {
                            vec![bold.clone()]
                        } else {
                            vec![]
                        },
                        media: Some(MediaKind::Photo),
                        media_group_id: group.clone(),
                        protected: false,
                    },
                );
                if part == 0 {
                    first = id;
                }
            }
            first
        }
        2 => fake.post(
            chat,
            NewChannelMessage {
                text: Some(text),
                entities: vec![bold],
                media: Some(MediaKind::Photo),
                media_group_id: None,
                protected: false,
            },
        ),
        _ => fake.post(
            chat,
            NewChannelMessage {
                text: Some(text),
                entities: vec![bold],
                media: None,
                media_group_id: None,
                protected: false,
            },
        ),
    }
}
