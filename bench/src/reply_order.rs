//! Matching a bot's replies to the commands that asked for them, chat by
//! chat: the k-th reply in a chat answers its k-th command, and must be the
//! answer to that command. Which text answers which command is learnt from
//! the replies themselves (the most frequent first line among the replies
//! paired with each kind of command), so a reply that overtook another in
//! its chat shows as the wrong text for its place.

use std::collections::HashMap;
use std::time::Instant;

use kuryer_sim::fake_bot_api::FakeTelegram;

/// A command sent: its chat, its kind (command and language, e.g.
/// `"/help uz"`), when.
pub(crate) type Sent = (i64, String, Instant);

/// What the replies to a set of commands showed.
#[derive(Debug, Default)]
pub(crate) struct ReplyCheck {
    /// Command sent → reply recorded by the fake (µs), one per answered command.
    pub(crate) latencies_us: Vec<u64>,
    /// Commands with no reply.
    pub(crate) lost: u64,
    /// Replies whose text is not the answer to the command at their place.
    pub(crate) out_of_order: u64,
    /// Replies recorded in the chats in all.
    pub(crate) replies: u64,
    /// The last reply's instant.
    pub(crate) last: Option<Instant>,
}

/// The bot's replies (sendMessage with no channel source) in `chat`, in
/// order: the first line of each and when the fake recorded it.
pub(crate) fn replies_in(fake: &FakeTelegram, chat: i64) -> Vec<(String, Instant)> {
    fake.received(chat)
        .into_iter()
        .filter(|m| m.method == "sendMessage" && m.source.is_none())
        .map(|m| {
            let first = m
                .text
                .as_deref()
                .and_then(|t| t.lines().next())
                .unwrap_or("")
                .to_owned();
            (first, m.received_at)
        })
        .collect()
}

/// Pairs every command of `sent` with its chat's reply at the same place.
pub(crate) fn check(fake: &FakeTelegram, sent: &[Sent]) -> ReplyCheck {
    let mut replies: HashMap<i64, Vec<(String, Instant)>> = HashMap::new();
    for (chat, _, _) in sent {
        if !replies.contains_key(chat) {
            replies.insert(*chat, replies_in(fake, *chat));
        }
    }
    pair(sent, &replies)
}

/// The pairing of [`check`], on replies already read.
fn pair(sent: &[Sent], replies: &HashMap<i64, Vec<(String, Instant)>>) -> ReplyCheck {
    let mut place: HashMap<i64, usize> = HashMap::new();
    let mut pairs = Vec::with_capacity(sent.len());
    let mut out = ReplyCheck {
        replies: replies.values().map(|r| r.len() as u64).sum(),
        ..ReplyCheck::default()
    };
    for (chat, kind, at) in sent {
        let k = place.entry(*chat).or_default();
        match replies.get(chat).and_then(|r| r.get(*k)) {
            Some((text, reply_at)) => {
                out.latencies_us
                    .push(reply_at.saturating_duration_since(*at).as_micros() as u64);
                out.last = out.last.max(Some(*reply_at));
                pairs.push((kind.as_str(), text.as_str()));
            }
            None => out.lost += 1,
        }
        *k += 1;
    }
    let mut votes: HashMap<&str, HashMap<&str, u64>> = HashMap::new();
    for (kind, text) in &pairs {
        *votes.entry(kind).or_default().entry(text).or_default() += 1;
    }
    let answer: HashMap<&str, &str> = votes
        .iter()
        .filter_map(|(kind, texts)| {
            texts
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(text, _)| (*kind, *text))
        })
        .collect();
    out.out_of_order = pairs
        .iter()
        .filter(|(kind, text)| answer.get(kind) != Some(text))
        .count() as u64;
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_reply_that_overtook_another_in_its_chat_is_out_of_order() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut sent = Vec::new();
        let mut replies = HashMap::new();
        for chat in 1..=5 {
            sent.push((chat, "/help en".to_owned(), at(0)));
            sent.push((chat, "/list en".to_owned(), at(1)));
            let (help, list) = (
                ("Commands:".to_owned(), at(10)),
                ("Your list".to_owned(), at(20)),
            );
            // Chat 5's answers came the wrong way round.
            replies.insert(
                chat,
                if chat == 5 {
                    vec![list, help]
                } else {
                    vec![help, list]
                },
            );
        }
        // Chat 6 asked twice and was answered once.
        sent.push((6, "/help en".to_owned(), at(0)));
        sent.push((6, "/help en".to_owned(), at(1)));
        replies.insert(6, vec![("Commands:".to_owned(), at(30))]);
        let c = pair(&sent, &replies);
        assert_eq!(c.out_of_order, 2);
        assert_eq!(c.lost, 1);
        assert_eq!(c.latencies_us.len(), 11);
        assert_eq!(c.replies, 11);
        assert_eq!(c.latencies_us[0], 10_000);
    }
}
