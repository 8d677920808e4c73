//! One hostile user hurts no one, part two: `/link` codes that cannot be
//! guessed, chats that stop being yours when you stop being their admin,
//! and per-user budgets of new channels, pending names and history sends.

use std::time::Duration;

use kuryer_sim::fake_bot_api::{ChatKind, MemberStatus};
use sha2::{Digest, Sha256};

use crate::bot::{TOKEN, World, wait_until};

/// The code in the bot's `/link` answer: the longest run of hex digits.
fn code_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .max_by_key(|w| w.len())
        .unwrap_or_default()
        .to_owned()
}

/// Whether `channel` is an active destination of `user`.
async fn linked_to(w: &World, user: i64, channel: i64) -> bool {
    let c = w.db.client().await;
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM destinations d JOIN users u ON u.id = d.owner_user_id
              WHERE u.telegram_id = $1 AND d.chat_id = $2 AND d.is_active",
            &[&user, &channel],
        )
        .await
        .unwrap()
        .get(0);
    n == 1
}

/// `/link` gives 128 random bits (32 hex digits); a second `/link`
/// replaces the first code; what PostgreSQL keeps is the code's SHA-256
/// with an expiry, so another instance (another store on the database)
/// can use it; an expired code links nothing.
#[actix_rt::test]
async fn a_link_code_is_128_bits_one_a_user_kept_hashed_in_postgres_with_an_expiry() {
    let w = World::start(&[TOKEN], &[], |_| {}).await;
    let (user, channel) = (825_001, -100_725_001);
    w.say(TOKEN, user, "/start", "en").await;
    w.fake
        .add_bot_to_chat(TOKEN, channel, ChatKind::Channel, user, true);
    let first = code_in(&w.say(TOKEN, user, "/link", "en").await);
    let second = code_in(&w.say(TOKEN, user, "/link", "en").await);
    assert_eq!(first.len(), 32, "{first}");
    assert_eq!(second.len(), 32, "{second}");
    assert_ne!(first, second);

    // The first code was replaced: it links nothing.
    let before = w.replies(channel).len();
    w.fake
        .channel_admin_says(TOKEN, channel, &format!("/link {first}"));
    let t = w.next_reply(channel, before).await.text.unwrap();
    assert!(!t.contains("now receives posts"), "{t}");
    assert!(!linked_to(&w, user, channel).await);

    // One row for the user: the hash of the live code, never the code.
    let c = w.db.client().await;
    let rows = c
        .query(
            "SELECT l.code_hash, l.expires_at > now() + interval '9 minutes',
                    l.expires_at < now() + interval '11 minutes'
               FROM link_codes l JOIN users u ON u.id = l.user_id WHERE u.telegram_id = $1",
            &[&user],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let hash: Vec<u8> = rows[0].get(0);
    assert_eq!(hash, Sha256::digest(second.as_bytes()).to_vec());
    assert!(rows[0].get::<_, bool>(1) && rows[0].get::<_, bool>(2));
    let plain: i64 = c
        .query_one(
            "SELECT count(*) FROM link_codes WHERE encode(code_hash, 'escape') LIKE $1",
            &[&format!("%{second}%")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(plain, 0);

    // The live code links the channel.
    let before = w.replies(channel).len();
    w.fake
        .channel_admin_says(TOKEN, channel, &format!("/link {second}"));
    let t = w.next_reply(channel, before).await.text.unwrap();
    assert!(t.contains("now receives posts"), "{t}");
    assert!(linked_to(&w, user, channel).await);

    // A code past its expiry links nothing.
    let other = -100_725_002;
    w.fake
        .add_bot_to_chat(TOKEN, other, ChatKind::Channel, user, true);
    let third = code_in(&w.say(TOKEN, user, "/link", "en").await);
    c.execute(
        "UPDATE link_codes SET expires_at = now() - interval '1 second'",
        &[],
    )
    .await
    .unwrap();
    let before = w.replies(other).len();
    w.fake
        .channel_admin_says(TOKEN, other, &format!("/link {third}"));
    let t = w.next_reply(other, before).await.text.unwrap();
    assert!(!t.contains("now receives posts"), "{t}");
    assert!(!linked_to(&w, user, other).await);
}

/// A stranger posting wrong codes in their channel is answered five
/// times, told once that the chat is not listened to, then ignored: even a
/// right code posted there is not read (and not used up). The owner of
/// that code links another channel with it at once.
#[actix_rt::test]
async fn wrong_codes_are_throttled_in_the_chat_that_posts_them_only() {
    let w = World::start(&[TOKEN], &[], |_| {}).await;
    let (user, stranger) = (825_101, 825_102);
    let (theirs, mine) = (-100_725_101, -100_725_102);
    w.say(TOKEN, user, "/start", "en").await;
    w.fake
        .add_bot_to_chat(TOKEN, theirs, ChatKind::Channel, stranger, true);
    w.fake
        .add_bot_to_chat(TOKEN, mine, ChatKind::Channel, user, true);
    let code = code_in(&w.say(TOKEN, user, "/link", "en").await);

    for i in 0..5 {
        let before = w.replies(theirs).len();
        w.fake
            .channel_admin_says(TOKEN, theirs, &format!("/link {:032x}", i));
        let t = w.next_reply(theirs, before).await.text.unwrap();
        assert!(t.contains("/link"), "{t}");
    }
    let before = w.replies(theirs).len();
    w.fake
        .channel_admin_says(TOKEN, theirs, &format!("/link {:032x}", 99));
    let t = w.next_reply(theirs, before).await.text.unwrap();
    assert!(t.contains("Too many wrong codes"), "{t}");
    // Then silence, whatever is posted, and nothing is linked.
    let before = w.replies(theirs).len();
    for i in 100..110 {
        w.fake
            .channel_admin_says(TOKEN, theirs, &format!("/link {:032x}", i));
    }
    w.fake
        .channel_admin_says(TOKEN, theirs, &format!("/link {code}"));
    assert!(
        wait_until(Duration::from_secs(10), || w.fake.pending_updates(TOKEN)
            == 0)
        .await,
        "updates never confirmed"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        w.replies(theirs).len(),
        before,
        "a throttled chat was answered"
    );
    assert!(!linked_to(&w, user, theirs).await);

    // The code was not read there: it still links the owner's channel.
    let before = w.replies(mine).len();
    w.fake
        .channel_admin_says(TOKEN, mine, &format!("/link {code}"));
    let t = w.next_reply(mine, before).await.text.unwrap();
    assert!(t.contains("now receives posts"), "{t}");
    assert!(linked_to(&w, user, mine).await);
}

/// The subscription of `user` to channel `name` and the destination in
/// `chat`: (subscription id, destination id).
async fn ids(w: &World, user: i64, name: &str, chat: i64) -> (i64, i64) {
    let c = w.db.client().await;
    let sub: i64 = c
        .query_one(
            "SELECT s.id FROM subscriptions s JOIN users u ON u.id = s.user_id
               JOIN channels ch ON ch.id = s.channel_id
              WHERE u.telegram_id = $1 AND ch.username = $2",
            &[&user, &name],
        )
        .await
        .unwrap()
        .get(0);
    let dest: i64 = c
        .query_one("SELECT id FROM destinations WHERE chat_id = $1", &[&chat])
        .await
        .unwrap()
        .get(0);
    (sub, dest)
}

/// Where subscription `sub` goes: its destination's chat.
async fn goes_to(w: &World, sub: i64) -> i64 {
    w.db.client()
        .await
        .query_one(
            "SELECT d.chat_id FROM subscriptions s JOIN destinations d ON d.id = s.destination_id
              WHERE s.id = $1",
            &[&sub],
        )
        .await
        .unwrap()
        .get(0)
}

/// `owner` starts, subscribes to `names`, and links each of `groups`
/// (adding our bot there as its creator); returns the id of their `/list`.
async fn owner_with_groups(w: &World, owner: i64, names: &str, groups: &[i64]) -> i32 {
    w.say(TOKEN, owner, "/start", "en").await;
    w.say(TOKEN, owner, &format!("/add {names}"), "en").await;
    for g in groups {
        let before = w.replies(*g).len();
        w.fake
            .add_bot_to_chat(TOKEN, *g, ChatKind::Supergroup, owner, false);
        w.next_reply(*g, before).await; // the hint to send /link
        let before = w.replies(*g).len();
        w.fake.user_says_in(TOKEN, *g, owner, "/link");
        w.next_reply(*g, before).await;
        assert!(linked_to(w, owner, *g).await);
    }
    let list = w.replies(owner).len();
    w.fake.user_says(TOKEN, owner, "/list", Some("en"));
    w.next_reply(owner, list).await.message_id
}

/// Whoever linked a group keeps it only while they are its admin: another
/// admin's `/link` takes a group whose owner lost the rights; the owner's
/// subscriptions routed there come back to their private chat, and they
/// are told.
#[actix_rt::test]
async fn another_admin_takes_a_group_whose_owner_is_no_longer_its_admin() {
    const A_CH: i64 = -100_725_201;
    let w = World::start(&[TOKEN], &[(A_CH, "own_a")], |_| {}).await;
    let (owner, next, group) = (825_201, 825_202, -900_825_201);
    let list = owner_with_groups(&w, owner, "@own_a", &[group]).await;
    w.say(TOKEN, next, "/start", "en").await;
    let (sub_a, dest) = ids(&w, owner, "own_a", group).await;
    let toast = w
        .press(TOKEN, owner, list, &format!("d:{sub_a}:{dest}"))
        .await
        .unwrap_or_default();
    assert!(toast.contains("now goes to"), "{toast}");
    assert_eq!(goes_to(&w, sub_a).await, group);

    // The owner is an admin no more; another member is one now.
    w.fake.set_member(group, owner, MemberStatus::Member);
    w.fake.set_member(group, next, MemberStatus::Administrator);
    let before_owner = w.replies(owner).len();
    let before = w.replies(group).len();
    w.fake.user_says_in(TOKEN, group, next, "/link");
    let t = w.next_reply(group, before).await.text.unwrap();
    assert!(t.contains("now receives posts"), "{t}");
    assert!(linked_to(&w, next, group).await);
    assert!(!linked_to(&w, owner, group).await);
    assert_eq!(
        goes_to(&w, sub_a).await,
        owner,
        "left pointing at the lost group"
    );
    let told = w.next_reply(owner, before_owner).await.text.unwrap();
    assert!(told.contains("no longer an admin"), "{told}");
}

/// Routing a subscription into a group asks `getChatMember` first: an
/// owner who left its admins is refused, and loses the group.
#[actix_rt::test]
async fn routing_into_a_group_checks_the_owner_is_still_its_admin() {
    const B_CH: i64 = -100_725_202;
    let w = World::start(&[TOKEN], &[(B_CH, "own_b")], |_| {}).await;
    let (owner, group) = (825_211, -900_825_211);
    let list = owner_with_groups(&w, owner, "@own_b", &[group]).await;
    w.fake.set_member(group, owner, MemberStatus::Left);
    let (sub_b, dest) = ids(&w, owner, "own_b", group).await;
    let toast = w
        .press(TOKEN, owner, list, &format!("d:{sub_b}:{dest}"))
        .await
        .unwrap_or_default();
    assert!(toast.contains("not an admin"), "{toast}");
    assert_eq!(goes_to(&w, sub_b).await, owner);
    assert!(!linked_to(&w, owner, group).await);
}

/// `new_channels_per_user_per_day`: names no one added before cost the
/// user one each, a day; a name another user added first costs nothing.
/// `pending_names_per_user`: names still being looked up are bounded, and
/// a removed one frees its place. Each refusal is told in the user's
/// language.
#[actix_rt::test]
async fn new_channels_a_day_and_pending_names_are_budgeted_per_user() {
    let names: Vec<(i64, String)> = (0..6)
        .map(|i| (-100_725_300 - i, format!("budget_chan_{i}")))
        .collect();
    let w = World::start(&[TOKEN], &[], |c| {
        c.limits.new_channels_per_user_per_day = 3;
        c.limits.pending_names_per_user = 2;
        c.limits.bot_commands_per_minute = 10_000;
    })
    .await;
    // Public channels our bot is not in: found by getChat, looked up (and
    // joined) by a reader account, so pending here.
    for (chat, name) in &names {
        w.fake.create_channel(*chat, name, name);
    }
    let (user, other) = (825_301, 825_302);
    w.say(TOKEN, user, "/start", "ru").await;
    w.say(TOKEN, other, "/start", "en").await;
    let t = w
        .say(
            TOKEN,
            user,
            "/add @budget_chan_0 @budget_chan_1 @budget_chan_2",
            "ru",
        )
        .await;
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 3, "{t}");
    assert!(lines[2].contains("ещё проверяются"), "{t}");
    // A removed pending subscription frees its place.
    w.say(TOKEN, user, "/remove @budget_chan_0", "ru").await;
    let t = w.say(TOKEN, user, "/add @budget_chan_2", "ru").await;
    assert!(!t.contains("ещё проверяются"), "{t}");
    // Three new channels today: a fourth new name waits for tomorrow...
    w.say(TOKEN, user, "/remove @budget_chan_1", "ru").await;
    let t = w.say(TOKEN, user, "/add @budget_chan_3", "ru").await;
    assert!(t.contains("новых каналов"), "{t}");
    // ...but a name someone else added first costs nothing.
    let t = w.say(TOKEN, other, "/add @budget_chan_4", "en").await;
    assert!(!t.contains("new channels"), "{t}");
    let t = w.say(TOKEN, user, "/add @budget_chan_4", "ru").await;
    assert!(!t.contains("новых каналов"), "{t}");
    let c = w.db.client().await;
    let created: i64 = c
        .query_one(
            "SELECT count(*) FROM channels WHERE username = 'budget_chan_3'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(created, 0, "a refused name was recorded");
}

/// `/add @x last N`: one backfill open per subscription (asking again
/// while it runs adds none), and `backfills_per_user_per_day` a day.
#[actix_rt::test]
async fn backfills_are_one_open_per_subscription_and_budgeted_a_day() {
    const CH: i64 = -100_725_401;
    const CH2: i64 = -100_725_402;
    let w = World::start(&[TOKEN], &[(CH, "hist_a"), (CH2, "hist_b")], |c| {
        c.limits.backfills_per_user_per_day = 2;
        c.limits.bot_commands_per_minute = 10_000;
    })
    .await;
    let user = 825_401;
    w.say(TOKEN, user, "/start", "en").await;
    w.say(TOKEN, user, "/add @hist_a @hist_b", "en").await;
    let c = w.db.client().await;
    // Hold the copies worker off the backfills: they stay open.
    c.execute(
        "CREATE FUNCTION hold_backfills() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN IF NEW.done_at IS NOT NULL THEN NEW.done_at := NULL; END IF;
                    RETURN NEW; END $$",
        &[],
    )
    .await
    .unwrap();
    c.execute(
        "CREATE TRIGGER hold BEFORE UPDATE ON backfills FOR EACH ROW
           EXECUTE FUNCTION hold_backfills()",
        &[],
    )
    .await
    .unwrap();
    let t = w.say(TOKEN, user, "/add @hist_a last 5", "en").await;
    assert!(t.contains("Sending the last 5"), "{t}");
    let t = w.say(TOKEN, user, "/add @hist_a last 5", "en").await;
    assert!(t.contains("still being sent"), "{t}");
    let open: i64 = c
        .query_one("SELECT count(*) FROM backfills WHERE done_at IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(open, 1);
    // The day's budget: the second subscription's first, then no more.
    c.execute("DROP TRIGGER hold ON backfills", &[])
        .await
        .unwrap();
    c.execute("UPDATE backfills SET done_at = now()", &[])
        .await
        .unwrap();
    let t = w.say(TOKEN, user, "/add @hist_b last 3", "en").await;
    assert!(t.contains("Sending the last 3"), "{t}");
    c.execute("UPDATE backfills SET done_at = now()", &[])
        .await
        .unwrap();
    let t = w.say(TOKEN, user, "/add @hist_a last 3", "en").await;
    assert!(t.contains("the most for one day"), "{t}");
    let all: i64 = c
        .query_one("SELECT count(*) FROM backfills", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(all, 2);
}

/// One destination fed by many channels at once (a user with 40
/// subscriptions, all posting): its queue in the limiter holds
/// `delivery.queue_per_destination`, the rest stays owed in PostgreSQL, so
/// the queue never fills and another user's post is not parked behind the
/// backlog; the backlog still arrives whole, once each, each channel in order.
#[actix_rt::test]
async fn one_destinations_backlog_neither_fills_the_queue_nor_delays_another() {
    use kuryer_sim::fake_bot_api::NewChannelMessage;
    const CHANNELS: i64 = 40;
    const POSTS: usize = 4;
    const CALM: i64 = -100_725_599;
    let mut channels: Vec<(i64, String)> = (0..CHANNELS)
        .map(|i| (-100_725_500 - i, format!("hot_feed_{i:02}")))
        .collect();
    channels.push((CALM, "calm_feed_b".to_owned()));
    let refs: Vec<(i64, &str)> = channels.iter().map(|(c, n)| (*c, n.as_str())).collect();
    let w = World::start(&[TOKEN], &refs, |c| {
        c.limits.per_chat_per_second = 5.0;
        c.limits.bot_commands_per_minute = 10_000;
        c.delivery.queue_capacity = 100;
        c.delivery.queue_per_destination = 30;
    })
    .await;
    let (hot_user, calm_user) = (825_501, 825_502);
    w.say(TOKEN, hot_user, "/start", "en").await;
    for half in channels[..CHANNELS as usize].chunks(20) {
        let names: Vec<String> = half.iter().map(|(_, n)| format!("@{n}")).collect();
        let t = w
            .say(TOKEN, hot_user, &format!("/add {}", names.join(" ")), "en")
            .await;
        assert_eq!(t.lines().count(), 20, "{t}");
    }
    w.say(TOKEN, calm_user, "/start", "en").await;
    w.say(TOKEN, calm_user, "/add @calm_feed_b", "en").await;
    let delivered = |chat: i64| -> Vec<(i64, i32)> {
        w.fake
            .received(chat)
            .iter()
            .filter_map(|m| m.source)
            .collect()
    };

    let mut hot: Vec<(i64, i32)> = Vec::new();
    for n in 0..POSTS {
        for (chat, _) in &channels[..CHANNELS as usize] {
            let id = w
                .fake
                .post(*chat, NewChannelMessage::text(format!("hot {n}")));
            hot.push((*chat, id));
        }
    }
    // The backlog is being sent when the calm post comes.
    assert!(
        wait_until(Duration::from_secs(20), || delivered(hot_user).len() >= 5).await,
        "{}",
        w.log()
    );
    let sent = std::time::Instant::now();
    let calm = w.fake.post(CALM, NewChannelMessage::text("calm"));
    assert!(
        wait_until(Duration::from_secs(60), || delivered(calm_user)
            .contains(&(CALM, calm)))
        .await,
        "{}",
        w.log()
    );
    let calm_latency = sent.elapsed();
    let hot_then = delivered(hot_user).len();
    eprintln!(
        "calm post after {calm_latency:?}, {hot_then} of {} hot posts sent by then",
        hot.len()
    );
    // Parked behind the backlog it waited for the posts parked before it
    // (up to one a hot channel, 40, sent at 5 a second): 2–8 s.
    assert!(
        calm_latency < Duration::from_millis(800),
        "the calm post waited {calm_latency:?} ({hot_then} hot posts sent by then)"
    );
    assert!(
        hot_then < hot.len(),
        "the backlog was gone before the test measured"
    );

    assert!(
        wait_until(Duration::from_secs(90), || delivered(hot_user).len()
            >= hot.len())
        .await,
        "{} of {} hot posts\n{}",
        delivered(hot_user).len(),
        hot.len(),
        w.log()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = delivered(hot_user);
    assert_eq!(got.len(), hot.len(), "sent twice");
    for (chat, _) in &channels[..CHANNELS as usize] {
        let want: Vec<i32> = hot
            .iter()
            .filter(|(c, _)| c == chat)
            .map(|(_, id)| *id)
            .collect();
        let had: Vec<i32> = got
            .iter()
            .filter(|(c, _)| c == chat)
            .map(|(_, id)| *id)
            .collect();
        assert_eq!(had, want, "channel {chat} out of order");
    }
}
