//! The bot's standing in a chat and the order of checks, as Client.cpp
//! has them: the single copy/forward reads the source first, the batch
//! methods check the destination first; the words and codes of each.
use kuryer_sim::fake_bot_api::{BotStanding, ChatKind};

use super::*;

/// The description and code of a refused request, from the raw answer.
async fn refusal(tg: &FakeTelegram, method: &str, body: Value) -> (u16, String) {
    let url = format!("{}/bot{TOKEN}/{method}", tg.url());
    let r = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error_code"], code, "{v}");
    (
        code,
        v["description"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn the_single_copy_reads_the_source_first_the_batch_the_destination() {
    let (tg, _bot) = fake(FakeLimits::off());
    tg.post(CHANNEL, NewChannelMessage::text("one"));
    tg.post(CHANNEL, NewChannelMessage::text("two"));
    let dest = -1_002_002;
    tg.create_channel(dest, "", "Destination");
    tg.set_standing(CHANNEL, TOKEN, Some(BotStanding::Kicked));
    tg.set_standing(dest, TOKEN, Some(BotStanding::Left));
    let single = json!({"chat_id": dest, "from_chat_id": CHANNEL, "message_id": 1});
    let batch = json!({"chat_id": dest, "from_chat_id": CHANNEL, "message_ids": [1, 2]});
    for method in ["copyMessage", "forwardMessage"] {
        assert_eq!(
            refusal(&tg, method, single.clone()).await,
            (
                403,
                "Forbidden: bot was kicked from the channel chat".into()
            ),
            "{method}: the source, checked first"
        );
    }
    for method in ["copyMessages", "forwardMessages"] {
        assert_eq!(
            refusal(&tg, method, batch.clone()).await,
            (
                403,
                "Forbidden: bot is not a member of the channel chat".into()
            ),
            "{method}: the destination, checked first"
        );
    }
    // The destination healthy: the batch meets the source's refusal too.
    tg.set_standing(dest, TOKEN, None);
    assert_eq!(
        refusal(&tg, "copyMessages", batch).await,
        (
            403,
            "Forbidden: bot was kicked from the channel chat".into()
        )
    );
    // getChat reads the source as the copy does.
    assert_eq!(
        refusal(&tg, "getChat", json!({"chat_id": CHANNEL})).await,
        (
            403,
            "Forbidden: bot was kicked from the channel chat".into()
        )
    );
    // Back as a member: the copy goes through.
    tg.set_standing(CHANNEL, TOKEN, None);
    let url = format!("{}/bot{TOKEN}/copyMessage", tg.url());
    let ok: Value = reqwest::Client::new()
        .post(url)
        .json(&single)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(tg.received(dest).len(), 1, "refusals deliver nothing");
}

#[tokio::test]
async fn a_left_channel_is_refused_by_its_visibility_and_users_by_their_state() {
    let (tg, _bot) = fake(FakeLimits::off());
    tg.post(CHANNEL, NewChannelMessage::text("public"));
    let private = -1_003_003;
    tg.create_channel(private, "", "Private");
    tg.post(private, NewChannelMessage::text("private"));
    tg.set_standing(CHANNEL, TOKEN, Some(BotStanding::Left));
    tg.set_standing(private, TOKEN, Some(BotStanding::Left));
    // `check_chat_access`: a public chat needs no membership to be read,
    // but `have_message_access` then finds no message.
    assert_eq!(
        refusal(
            &tg,
            "copyMessage",
            json!({"chat_id": USER, "from_chat_id": CHANNEL, "message_id": 1})
        )
        .await,
        (400, "Bad Request: message to copy not found".into())
    );
    assert_eq!(
        refusal(
            &tg,
            "forwardMessage",
            json!({"chat_id": USER, "from_chat_id": private, "message_id": 1})
        )
        .await,
        (
            403,
            "Forbidden: bot is not a member of the channel chat".into()
        )
    );
    let cases = [
        (
            ChatKind::Private,
            BotStanding::Blocked,
            "Forbidden: bot was blocked by the user",
        ),
        (
            ChatKind::Private,
            BotStanding::Deactivated,
            "Forbidden: user is deactivated",
        ),
        (
            ChatKind::Private,
            BotStanding::NotStarted,
            "Forbidden: bot can't initiate conversation with a user",
        ),
        (
            ChatKind::Private,
            BotStanding::OtherBot,
            "Forbidden: bot can't send messages to bots",
        ),
        (
            ChatKind::Group,
            BotStanding::Kicked,
            "Forbidden: bot was kicked from the group chat",
        ),
        (
            ChatKind::Group,
            BotStanding::Left,
            "Forbidden: bot is not a member of the group chat",
        ),
        (
            ChatKind::Group,
            BotStanding::GroupDeleted,
            "Forbidden: the group chat was deleted",
        ),
        (
            ChatKind::Supergroup,
            BotStanding::Kicked,
            "Forbidden: bot was kicked from the supergroup chat",
        ),
        (
            ChatKind::Supergroup,
            BotStanding::Left,
            "Forbidden: bot is not a member of the supergroup chat",
        ),
    ];
    for (i, (kind, standing, text)) in cases.into_iter().enumerate() {
        let chat = if kind == ChatKind::Private {
            500 + i as i64
        } else {
            -500 - i as i64
        };
        tg.create_chat(chat, kind);
        tg.set_standing(chat, TOKEN, Some(standing));
        assert_eq!(
            refusal(&tg, "sendMessage", json!({"chat_id": chat, "text": "hi"})).await,
            (403, text.to_owned()),
            "{kind:?} {standing:?}"
        );
    }
}
