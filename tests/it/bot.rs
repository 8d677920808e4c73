//! The bot, against the real `kuryer run` binary and the fake Bot API over
//! HTTP: simulated people send commands (with their `language_code`),
//! press buttons, add the bot to groups; what the bot answered is read back
//! from what the fake received, and posts are followed to the chats they
//! must reach. No restart anywhere: every change reaches the registry live.

use std::time::{Duration, Instant};

use kuryer_sim::fake_bot_api::{
    ChatKind, FakeLimits, FakeTelegram, MemberStatus, NewChannelMessage, ReceivedMessage,
};
use serde_json::Value;

use kuryer::config::Config;
use kuryer::secret::Secret;

use crate::common::{TestDb, free_port};

pub(crate) const TOKEN: &str = "5151:botSECRETbotSECRETbotSECRET";
pub(crate) const TOKEN2: &str = "5252:botTWOsecretBOTtwoSECRET";

pub(crate) async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// `kuryer run` (its `daemon::run`, in this process, so the test runs
/// the code it was built with), the fake, and channels our bot administers.
pub(crate) struct World {
    pub(crate) db: TestDb,
    pub(crate) fake: FakeTelegram,
    /// The management API's address.
    pub(crate) http: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl World {
    pub(crate) async fn start(
        tokens: &[&str],
        channels: &[(i64, &str)],
        tune: impl FnOnce(&mut Config),
    ) -> Self {
        Self::start_at(FakeLimits::off(), tokens, channels, |cfg| {
            cfg.limits.per_bot_per_second = 100_000.0;
            cfg.limits.per_chat_per_second = 100_000.0;
            cfg.limits.per_group_per_minute = 1_000_000.0;
            tune(cfg);
        })
        .await
    }

    /// As [`World::start`], with the fake enforcing Telegram's own limits
    /// and kuryer's at their defaults (the same).
    pub(crate) async fn start_limited(
        tokens: &[&str],
        channels: &[(i64, &str)],
        tune: impl FnOnce(&mut Config),
    ) -> Self {
        Self::start_at(FakeLimits::telegram(), tokens, channels, tune).await
    }

    async fn start_at(
        limits: FakeLimits,
        tokens: &[&str],
        channels: &[(i64, &str)],
        tune: impl FnOnce(&mut Config),
    ) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let db = TestDb::new().await;
        let fake = FakeTelegram::start(limits).unwrap();
        for t in tokens {
            fake.add_bot(t);
        }
        for (chat, name) in channels {
            fake.create_channel(*chat, name, name);
            fake.set_admin(*chat, tokens[0], true);
        }
        let mut cfg = Config {
            database: db.config(),
            ..Config::default()
        };
        cfg.redis.key_prefix = format!("test:{}:", rand::random::<u64>());
        cfg.telegram.bot_tokens = tokens.iter().map(|t| Secret::new(*t)).collect();
        cfg.telegram.bot_api_url = fake.url();
        cfg.http.listen = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        cfg.delivery.poll_min_interval_ms = 100;
        tune(&mut cfg);
        let http = cfg.http.listen;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        actix_rt::spawn(async move {
            let r = kuryer::daemon::run(cfg, async move {
                let _ = stopped.await;
                "test over"
            })
            .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "kuryer run ended with an error");
            }
        });
        let me = Self {
            db,
            fake,
            http,
            stop: Some(stop),
        };
        // Ready once every bot has set its command menu.
        let ready = wait_until(Duration::from_secs(60), || {
            tokens
                .iter()
                .all(|t| me.fake.my_commands(t, "uz").is_some())
        })
        .await;
        assert!(ready, "the bots never set their commands");
        // And the channels' my_chat_member updates are taken.
        let taken = wait_until(Duration::from_secs(30), || {
            tokens.iter().all(|t| me.fake.pending_updates(t) == 0)
        })
        .await;
        assert!(taken, "updates never confirmed");
        me
    }

    /// The daemon logs to the test's output (`RUST_LOG=kuryer=debug`).
    pub(crate) fn log(&self) -> &'static str {
        "(run with RUST_LOG=kuryer=debug for the daemon's log)"
    }

    /// The bot's own messages in `chat` (not posts it delivered).
    pub(crate) fn replies(&self, chat: i64) -> Vec<ReceivedMessage> {
        self.fake
            .received(chat)
            .into_iter()
            .filter(|m| m.method == "sendMessage" && m.source.is_none())
            .collect()
    }

    /// Waits for the next reply in `chat` after `before` of them.
    pub(crate) async fn next_reply(&self, chat: i64, before: usize) -> ReceivedMessage {
        let ok = wait_until(Duration::from_secs(15), || {
            self.replies(chat).len() > before
        })
        .await;
        assert!(ok, "no reply in {chat}:\n{}", self.log());
        self.replies(chat).swap_remove(before)
    }

    /// `user` writes `text` to `token`'s bot; returns the reply's text.
    pub(crate) async fn say(&self, token: &str, user: i64, text: &str, lang: &str) -> String {
        let before = self.replies(user).len();
        self.fake.user_says(token, user, text, Some(lang));
        self.next_reply(user, before).await.text.unwrap_or_default()
    }

    /// Presses the button whose data starts with `prefix` under the bot's
    /// message `message_id` in `user`'s chat; waits for the answer.
    pub(crate) async fn press(
        &self,
        token: &str,
        user: i64,
        message_id: i32,
        data: &str,
    ) -> Option<String> {
        let before = self.fake.callback_answers().len();
        let id = self.fake.press(token, user, user, message_id, data);
        let ok = wait_until(Duration::from_secs(15), || {
            self.fake.callback_answers().len() > before
        })
        .await;
        assert!(ok, "button {data} never answered:\n{}", self.log());
        let answers = self.fake.callback_answers();
        let a = answers.iter().find(|a| a.callback_query_id == id).unwrap();
        a.text.clone()
    }
}

/// Every button's callback data in a message's keyboard.
pub(crate) fn buttons(m: &ReceivedMessage) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(rows) = m
        .reply_markup
        .as_ref()
        .and_then(|k| k["inline_keyboard"].as_array())
    {
        for row in rows {
            for b in row.as_array().into_iter().flatten() {
                out.push((
                    b["text"].as_str().unwrap_or_default().to_owned(),
                    b["callback_data"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
    }
    out
}

/// The message now in `chat` with id `id` (after edits).
pub(crate) fn message(w: &World, chat: i64, id: i32) -> ReceivedMessage {
    w.fake
        .received(chat)
        .into_iter()
        .find(|m| m.message_id == id)
        .unwrap()
}

/// What each language says where the journey checks it.
struct Words {
    code: &'static str,
    start: &'static str,
    subscribed: &'static str,
    linked: &'static str,
    routed: &'static str,
    filters_saved: &'static str,
    lost: &'static str,
}

const LANGS: [Words; 3] = [
    Words {
        code: "uz",
        start: "Salom!",
        subscribed: "obuna bo'ldingiz",
        linked: "qabul qiluvchilaringizdan",
        routed: "endi",
        filters_saved: "filtrlari saqlandi",
        lost: "chiqarishdi",
    },
    Words {
        code: "ru",
        start: "Здравствуйте!",
        subscribed: "подписка оформлена",
        linked: "среди ваших получателей",
        routed: "теперь доставляется",
        filters_saved: "сохранены",
        lost: "Меня удалили",
    },
    Words {
        code: "en-GB",
        start: "Hi!",
        subscribed: "subscribed",
        linked: "is now one of your destinations",
        routed: "now goes to",
        filters_saved: "saved",
        lost: "I was removed from",
    },
];

/// `/start` → `/add` two channels → `/link` a group → route one
/// subscription there (forward mode) → filter the other → posts arrive in
/// the right chats, copied or forwarded, filtered; the group removed →
/// the owner is told and its posts stop. In Uzbek, Russian and English.
#[actix_rt::test]
async fn a_new_user_goes_from_start_to_posts_in_their_group_in_each_language() {
    let channels: Vec<(i64, String)> = (0..6)
        .map(|i| (-100_700_000 - i, format!("journey_chan_{i}")))
        .collect();
    let refs: Vec<(i64, &str)> = channels.iter().map(|(c, n)| (*c, n.as_str())).collect();
    let w = World::start(&[TOKEN], &refs, |_| {}).await;
    for (i, words) in LANGS.iter().enumerate() {
        let user = 800_001 + i as i64;
        let group = -900_001 - i as i64;
        let (a, a_name) = &channels[2 * i];
        let (b, b_name) = &channels[2 * i + 1];
        let t = w.say(TOKEN, user, "/start", words.code).await;
        assert!(t.starts_with(words.start), "{}: {t}", words.code);
        assert_eq!(t.lines().count(), 3, "three lines: {t}");

        let t = w
            .say(
                TOKEN,
                user,
                &format!("/add @{a_name}\nhttps://t.me/{b_name}/5"),
                words.code,
            )
            .await;
        assert_eq!(t.lines().count(), 2, "{t}");
        assert!(t.lines().all(|l| l.contains(words.subscribed)), "{t}");

        // The bot is added to the user's group, which the user links.
        let before = w.replies(group).len();
        w.fake
            .add_bot_to_chat(TOKEN, group, ChatKind::Supergroup, user, false);
        w.next_reply(group, before).await; // the hint to send /link
        let before_owner = w.replies(user).len();
        let before = w.replies(group).len();
        w.fake.user_says_in(TOKEN, group, user, "/link");
        w.next_reply(group, before).await;
        let t = w.next_reply(user, before_owner).await.text.unwrap();
        assert!(t.contains(words.linked), "{t}");

        // /list → ⚙️ of the first → the group → forward mode.
        let before = w.replies(user).len();
        w.fake.user_says(TOKEN, user, "/list", Some(words.code));
        let list = w.next_reply(user, before).await;
        let settings = buttons(&list)
            .into_iter()
            .find(|(text, _)| text.contains("⚙️ 1"))
            .map(|(_, d)| d)
            .unwrap();
        w.press(TOKEN, user, list.message_id, &settings).await;
        let view = message(&w, user, list.message_id);
        assert!(view.text.as_deref().unwrap().contains(a_name.as_str()));
        let route = buttons(&view)
            .into_iter()
            .find(|(text, _)| text.contains(&format!("Supergroup {group}")))
            .map(|(_, d)| d)
            .unwrap_or_else(|| panic!("{:?}", buttons(&view)));
        let t = w.press(TOKEN, user, list.message_id, &route).await.unwrap();
        assert!(t.contains(words.routed), "{t}");
        let sub = settings.trim_start_matches("s:");
        w.press(TOKEN, user, list.message_id, &format!("m:{sub}:f"))
            .await;
        let view = message(&w, user, list.message_id);
        assert!(
            buttons(&view)
                .iter()
                .any(|(t, d)| t.starts_with('✅') && d.ends_with(":f"))
        );

        // The second stays private, copied, without posts about ads.
        let t = w
            .say(
                TOKEN,
                user,
                &format!("/filter @{b_name} -реклама -Reklama"),
                words.code,
            )
            .await;
        assert!(t.contains(words.filters_saved), "{t}");

        let pa = w
            .fake
            .post(*a, NewChannelMessage::text(format!("news of A {i}")));
        let pb = w
            .fake
            .post(*b, NewChannelMessage::text(format!("news of B {i}")));
        let ad = w
            .fake
            .post(*b, NewChannelMessage::text(format!("РЕКЛАМА {i}")));
        let pb2 = w
            .fake
            .post(*b, NewChannelMessage::text(format!("more of B {i}")));
        let expected = [(group, *a, pa), (user, *b, pb), (user, *b, pb2)];
        let ok = wait_until(Duration::from_secs(30), || {
            w.fake.report(&expected).delivered == 3
        })
        .await;
        assert!(ok, "{:?}\n{}", w.fake.report(&expected), w.log());
        let in_group: Vec<_> = w
            .fake
            .received(group)
            .into_iter()
            .filter(|m| m.source.is_some())
            .collect();
        assert_eq!(in_group.len(), 1);
        assert_eq!(in_group[0].method, "forwardMessage");
        let in_private: Vec<_> = w
            .fake
            .received(user)
            .into_iter()
            .filter(|m| m.source.is_some())
            .collect();
        assert_eq!(
            in_private
                .iter()
                .map(|m| (m.method, m.source.unwrap()))
                .collect::<Vec<_>>(),
            vec![("sendMessage", (*b, pb)), ("sendMessage", (*b, pb2))],
            "copied, the ad filtered out"
        );
        assert!(in_private.iter().all(|m| m.source != Some((*b, ad))));

        // Removed from the group: deactivated, the owner told, posts stop.
        let before = w.replies(user).len();
        w.fake.remove_bot_from_chat(TOKEN, group, user);
        let t = w.next_reply(user, before).await.text.unwrap();
        assert!(t.contains(words.lost), "{t}");
        let after = w
            .fake
            .post(*a, NewChannelMessage::text(format!("late A {i}")));
        let marker = w
            .fake
            .post(*b, NewChannelMessage::text(format!("marker B {i}")));
        let ok = wait_until(Duration::from_secs(30), || {
            w.fake.report(&[(user, *b, marker)]).delivered == 1
        })
        .await;
        assert!(ok);
        assert_eq!(w.fake.report(&[(group, *a, after)]).delivered, 0);
    }
}

/// Each bad input gets a short, translated answer; a stale button, a
/// button of someone else's subscription and `/link` by a non-admin too.
#[actix_rt::test]
async fn every_bad_input_gets_a_short_polite_translated_reply() {
    let w = World::start(
        &[TOKEN],
        &[
            (-100_710_001, "good_channel"),
            (-100_710_002, "other_channel"),
            (-100_710_003, "third_channel"),
        ],
        |c| {
            c.limits.max_subscriptions_per_user = 2;
            c.limits.bot_commands_per_minute = 6000;
        },
    )
    .await;
    w.fake
        .create_channel(-100_710_009, "locked_channel", "Locked");
    w.fake.set_channel_protected(-100_710_009, true);
    w.fake.set_public_username(-900_100, "public_group");
    let u = 810_001;
    let ru = "ru";
    w.say(TOKEN, u, "/start", ru).await;
    let cases: &[(&str, &str)] = &[
        ("/frobnicate", "Такой команды нет"),
        ("hello there", "Отправьте команду"),
        ("/add", "Отправьте /add и имена каналов"),
        (&format!("/add {}", "a".repeat(200)), "это не имя канала"),
        ("/add 😀", "это не имя канала"),
        ("/add '; DROP TABLE users; --", "это не имя канала"),
        ("/add https://t.me/+AbCdEf", "на закрытые каналы"),
        ("/add @nosuch_channel", "такого канала нет"),
        ("/add @public_group", "это не канал"),
        ("/add @locked_channel", "защищает свои материалы"),
        ("/remove @good_channel", "у вас нет такой подписки"),
        ("/pause", "Отправьте /pause и имя канала"),
        ("/lang xx", "Выберите язык"),
        ("/filter @good_channel +a", "у вас нет такой подписки"),
        ("/stats", "только для администраторов"),
    ];
    for (input, want) in cases {
        let t = w.say(TOKEN, u, input, ru).await;
        assert!(t.contains(want), "{input:?} → {t:?}");
        assert!(t.chars().count() < 300, "short: {t}");
        assert!(!t.to_lowercase().contains("error:"), "{t}");
    }
    // The echo of a 200-character name is cut.
    let t = w
        .say(TOKEN, u, &format!("/add {}", "b".repeat(200)), ru)
        .await;
    assert!(t.chars().count() < 80, "{t}");
    // Twice, and the quota of 2.
    let t = w.say(TOKEN, u, "/add @good_channel", ru).await;
    assert!(t.contains("подписка оформлена"), "{t}");
    let t = w.say(TOKEN, u, "/add good_channel", ru).await;
    assert!(t.contains("вы уже подписаны"), "{t}");
    let t = w
        .say(TOKEN, u, "/add @other_channel @third_channel", ru)
        .await;
    let lines: Vec<_> = t.lines().collect();
    assert!(
        lines[0].contains("подписка оформлена") && lines[1].contains("предел в 2"),
        "{t}"
    );
    let t = w.say(TOKEN, u, "/filter @good_channel re:(", ru).await;
    assert!(t.contains("нельзя использовать"), "{t}");

    // A button on a message that is gone, and one naming another user's
    // subscription: "out of date", nothing changed.
    let stale = w.press(TOKEN, u, 99_999, "p:1:0").await.unwrap();
    assert!(stale.contains("устарела"), "{stale}");
    let other = 810_002;
    w.say(TOKEN, other, "/start", "en").await;
    let before = w.replies(other).len();
    w.fake.user_says(TOKEN, other, "/list", Some("en"));
    let list = w.next_reply(other, before).await;
    assert!(list.text.unwrap().contains("no subscriptions"));
    let before = w.replies(u).len();
    w.fake.user_says(TOKEN, u, "/list", Some(ru));
    let mine = w.next_reply(u, before).await;
    let pause = buttons(&mine)
        .into_iter()
        .find(|(_, d)| d.starts_with("p:"))
        .unwrap()
        .1;
    // `other` presses it under a message of their own chat.
    let before = w.fake.callback_answers().len();
    w.fake.press(TOKEN, other, other, list.message_id, &pause);
    assert!(
        wait_until(Duration::from_secs(15), || w.fake.callback_answers().len()
            > before)
        .await
    );
    assert!(
        w.fake
            .callback_answers()
            .last()
            .unwrap()
            .text
            .as_deref()
            .unwrap()
            .contains("out of date")
    );
    let t = w.say(TOKEN, u, "/list", ru).await;
    assert!(!t.contains("на паузе"), "nothing paused: {t}");
    // The real press pauses, shown in the edited list.
    w.press(TOKEN, u, mine.message_id, &pause).await;
    assert!(
        message(&w, u, mine.message_id)
            .text
            .unwrap()
            .contains("на паузе")
    );

    // In a group: /link by a member who is no admin; another command.
    let group = -900_200;
    w.fake
        .add_bot_to_chat(TOKEN, group, ChatKind::Group, u, false);
    w.fake.set_member(group, other, MemberStatus::Member);
    let before = w.replies(group).len();
    w.fake.user_says_in(TOKEN, group, other, "/link");
    let t = w.next_reply(group, before + 1).await.text.unwrap();
    assert!(t.contains("Only an admin"), "{t}");
    w.fake.user_says_in(TOKEN, group, u, "/add @x");
    let t = w.next_reply(group, before + 2).await.text.unwrap();
    assert!(t.contains("только /link"), "{t}");
}

/// A user who floods gets a burst, one "too fast", then silence.
#[actix_rt::test]
async fn the_per_user_command_rate_limit_answers_once_then_drops() {
    let w = World::start(&[TOKEN], &[], |_| {}).await;
    let u = 820_001;
    w.say(TOKEN, u, "/start", "en").await;
    for _ in 0..30 {
        w.fake.user_says(TOKEN, u, "/help", Some("en"));
    }
    // Everything handled (confirmed), then count what was answered.
    assert!(
        wait_until(Duration::from_secs(15), || w.fake.pending_updates(TOKEN)
            == 0)
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let texts: Vec<String> = w
        .replies(u)
        .into_iter()
        .skip(1)
        .filter_map(|m| m.text)
        .collect();
    let warned = texts
        .iter()
        .filter(|t| t.contains("Too many commands"))
        .count();
    assert_eq!(warned, 1, "{texts:?}");
    // Burst of 10 (one spent by /start) plus what refilled meanwhile.
    assert!((9..=11).contains(&(texts.len() - 1)), "{}", texts.len());
    // Another user is served meanwhile.
    let t = w.say(TOKEN, 820_002, "/help", "en").await;
    assert!(t.starts_with("Commands:"));
}

/// Two bots: each user is served by the bot they started, and their
/// posts are sent by that bot, with allow_paid_broadcast when set.
#[actix_rt::test]
async fn two_bots_split_users_and_each_user_gets_posts_from_their_own_bot() {
    let chan = -100_720_001;
    let w = World::start(&[TOKEN, TOKEN2], &[(chan, "shared_news")], |c| {
        c.limits.allow_paid_broadcast = true
    })
    .await;
    let commands: Value = w.fake.my_commands(TOKEN2, "ru").unwrap();
    assert!(
        commands
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["command"] == "link")
    );
    let (a, b) = (830_001, 830_002);
    let t = w.say(TOKEN, a, "/start", "uz").await;
    assert!(t.starts_with("Salom!"));
    let t = w.say(TOKEN2, b, "/start", "en").await;
    assert!(t.starts_with("Hi!"));
    assert!(
        w.say(TOKEN, a, "/add @shared_news", "uz")
            .await
            .contains("obuna")
    );
    assert!(
        w.say(TOKEN2, b, "/add @shared_news", "en")
            .await
            .contains("subscribed")
    );
    let posts: Vec<i32> = (0..5)
        .map(|i| {
            w.fake
                .post(chan, NewChannelMessage::text(format!("shared {i}")))
        })
        .collect();
    let expected: Vec<_> = [a, b]
        .iter()
        .flat_map(|u| posts.iter().map(move |p| (*u, chan, *p)))
        .collect();
    let ok = wait_until(Duration::from_secs(30), || {
        w.fake.report(&expected).delivered == expected.len() as u64
    })
    .await;
    assert!(ok, "{:?}\n{}", w.fake.report(&expected), w.log());
    let report = w.fake.report(&expected);
    assert_eq!((report.duplicates, report.lost), (0, 0));
    for (user, bot_id) in [(a, 5151), (b, 5252)] {
        let got: Vec<_> = w
            .fake
            .received(user)
            .into_iter()
            .filter(|m| m.source.is_some())
            .collect();
        assert_eq!(got.len(), 5);
        assert!(
            got.iter().all(|m| m.bot_id == bot_id),
            "{user}: {:?}",
            got.iter().map(|m| m.bot_id).collect::<Vec<_>>()
        );
        assert!(got.iter().all(|m| m.allow_paid_broadcast));
        // Replies come from that bot too.
        assert!(w.replies(user).iter().all(|m| m.bot_id == bot_id));
    }
}
