//! Limits and flows: flood waits, the 500-channel join limit, forwards into
//! the relay, and logging in with a code and 2FA.
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_wait_is_obeyed_by_grammers_and_measured_by_the_fake() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    fake.set_flood_limit(
        "contacts.resolveUsername",
        Some(FloodLimit {
            max_calls: 1,
            per: Duration::from_secs(2),
        }),
    );
    public_channel(&fake, "limited");
    let (id, key) = account(&fake, "+998900000010");
    let reader = Reader::signed_in(&fake, key).await;
    reader
        .client
        .resolve_username("limited")
        .await
        .expect("first");
    let started = std::time::Instant::now();
    // grammers' default policy sleeps through a FLOOD_WAIT of up to 60 s once.
    reader
        .client
        .resolve_username("limited")
        .await
        .expect("after the wait");
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    let stats = fake.stats(id);
    let m = &stats.methods["contacts.resolveUsername"];
    assert_eq!(m.calls, 3, "{m:?}");
    assert_eq!(m.errors.get("FLOOD_WAIT_2"), Some(&1), "{m:?}");
    assert_eq!(m.calls_during_flood_wait, 0, "{m:?}");
    reader.close().await;

    // A client that does not wait is caught calling early.
    let (id, key) = account(&fake, "+998900000011");
    let rude = Reader::connect_without_retries(&fake, key).await;
    rude.client
        .resolve_username("limited")
        .await
        .expect("first");
    let e = rude
        .client
        .resolve_username("limited")
        .await
        .expect_err("flood");
    assert!(
        matches!(&e, InvocationError::Rpc(r) if r.code == 420 && r.name == "FLOOD_WAIT" && r.value == Some(2)),
        "{e}"
    );
    let e = rude
        .client
        .resolve_username("limited")
        .await
        .expect_err("still waiting");
    assert_eq!(rpc_name(&e), Some("FLOOD_WAIT"));
    assert_eq!(
        fake.stats(id).methods["contacts.resolveUsername"].calls_during_flood_wait,
        1
    );
    rude.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_joins_at_most_500_channels() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let (id, key) = account(&fake, "+998900000012");
    for i in 0..499 {
        let c = public_channel(&fake, &format!("filler{i:03}"));
        fake.add_member(c, id);
    }
    let c500 = public_channel(&fake, "number500");
    let c501 = public_channel(&fake, "number501");
    let reader = Reader::signed_in(&fake, key).await;
    let join = |c| tl::functions::channels::JoinChannel {
        channel: input_channel(&fake, c, id),
    };
    reader.client.invoke(&join(c500)).await.expect("the 500th");
    let e = reader
        .client
        .invoke(&join(c501))
        .await
        .expect_err("the 501st");
    assert_eq!(rpc_name(&e), Some("CHANNELS_TOO_MUCH"));
    reader
        .client
        .invoke(&tl::functions::channels::LeaveChannel {
            channel: input_channel(&fake, c500, id),
        })
        .await
        .expect("leave one");
    reader.client.invoke(&join(c501)).await.expect("room again");
    reader.close().await;
}

fn forward(
    from: tl::enums::InputPeer,
    ids: &[i32],
    random_ids: &[i64],
    to: tl::enums::InputPeer,
) -> tl::functions::messages::ForwardMessages {
    tl::functions::messages::ForwardMessages {
        silent: false,
        background: false,
        with_my_score: false,
        drop_author: false,
        drop_media_captions: false,
        noforwards: false,
        allow_paid_floodskip: false,
        from_ephemeral: false,
        from_peer: from,
        id: ids.to_vec(),
        random_id: random_ids.to_vec(),
        to_peer: to,
        top_msg_id: None,
        reply_to: None,
        schedule_date: None,
        schedule_repeat_period: None,
        send_as: None,
        quick_reply_shortcut: None,
        effect: None,
        video_timestamp: None,
        allow_paid_stars: None,
        suggested_post: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_into_a_relay_once_per_random_id_and_bots_see_them() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let bot_api = FakeTelegram::start(FakeLimits::off()).expect("bot api");
    fake.attach_bot_api(bot_api.clone());
    let (id, key) = account(&fake, "+998900000016");
    let source = public_channel(&fake, "source_ch");
    let locked = fake.create_channel(ChannelSpec {
        title: "Locked".to_owned(),
        username: Some("locked_ch".to_owned()),
        protected: true,
    });
    let relay = fake.create_channel(ChannelSpec {
        title: "Relay".to_owned(),
        username: None,
        protected: false,
    });
    let elsewhere = public_channel(&fake, "not_mine");
    fake.set_admin(relay, id);
    for i in 1..=3 {
        fake.publish_text(source, &format!("src {i}"));
    }
    fake.publish_text(locked, "do not forward");
    // Posts published here are on the Bot API face too.
    assert_eq!(
        bot_api
            .channel_messages_after(source.bot_api_chat_id(), 0, 10)
            .len(),
        3
    );

    let reader = Reader::signed_in(&fake, key).await;
    let c = &reader.client;
    c.invoke(&forward(
        input_peer(&fake, source, id),
        &[1, 2],
        &[11, 12],
        input_peer(&fake, relay, id),
    ))
    .await
    .expect("forward");
    let again = c
        .invoke(&forward(
            input_peer(&fake, source, id),
            &[1, 2],
            &[11, 12],
            input_peer(&fake, relay, id),
        ))
        .await
        .expect("same random ids");
    let tl::enums::Updates::Updates(again) = again else {
        panic!("updates")
    };
    let ids: Vec<i32> = again
        .updates
        .iter()
        .filter_map(|u| match u {
            tl::enums::Update::MessageId(m) => Some(m.id),
            _ => None,
        })
        .collect();
    assert_eq!(
        ids,
        vec![1, 2],
        "the repeat names the first forward's messages"
    );
    assert_eq!(
        message_ids(
            c.invoke(&history(0, 0, 10, input_peer(&fake, relay, id)))
                .await
                .expect("relay")
        ),
        vec![2, 1]
    );

    // grammers' own forward (fresh random ids) makes a new copy with its header.
    let src_ref = c
        .resolve_username("source_ch")
        .await
        .unwrap()
        .unwrap()
        .to_ref()
        .await
        .unwrap()
        .unwrap();
    let relay_ref = grammers_client::session::types::PeerRef {
        id: grammers_client::session::types::PeerId::channel_unchecked(relay.id),
        auth: grammers_client::session::types::PeerAuth::from_hash(fake.access_hash(relay, id)),
    };
    let copies = c
        .forward_messages(relay_ref, &[3], src_ref)
        .await
        .expect("forward 3");
    let copy = copies[0].as_ref().expect("forwarded");
    assert_eq!(copy.text(), "src 3");
    assert!(copy.forward_header().is_some());

    let e = c
        .invoke(&forward(
            input_peer(&fake, locked, id),
            &[1],
            &[21],
            input_peer(&fake, relay, id),
        ))
        .await
        .expect_err("protected");
    assert_eq!(rpc_name(&e), Some("CHAT_FORWARDS_RESTRICTED"));
    let e = c
        .invoke(&forward(
            input_peer(&fake, source, id),
            &[1],
            &[22],
            input_peer(&fake, elsewhere, id),
        ))
        .await
        .expect_err("not an admin");
    assert_eq!(rpc_name(&e), Some("CHAT_WRITE_FORBIDDEN"));

    // Every forward into the relay is a channel post on the Bot API face.
    let relayed = bot_api.channel_messages_after(relay.bot_api_chat_id(), 0, 10);
    let texts: Vec<_> = relayed
        .iter()
        .map(|m| m.text.clone().unwrap_or_default())
        .collect();
    assert_eq!(texts, ["src 1", "src 2", "src 3"]);
    assert_eq!(fake.stats(id).calls("messages.forwardMessages"), 5);
    reader.close().await;
    bot_api.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_a_code_and_with_2fa_and_clear_failures() {
    let fake = MtprotoFake::start(MtprotoConfig {
        code_ttl: Duration::from_secs(2),
        ..MtprotoConfig::default()
    })
    .expect("start");
    let plain = fake.create_account(AccountSpec {
        phone: "+998900000020".to_owned(),
        first_name: "Plain".to_owned(),
        ..AccountSpec::default()
    });
    let guarded = fake.create_account(AccountSpec {
        phone: "+998900000021".to_owned(),
        first_name: "Guarded".to_owned(),
        password: Some("correct horse".to_owned()),
        ..AccountSpec::default()
    });

    // A code: wrong, then right; then log out.
    let key = fake.issue_auth_key(None);
    let r = Reader::connect(&fake, key).await;
    assert!(!r.client.is_authorized().await.unwrap());
    let token = r
        .client
        .request_login_code("+998900000020", "hash")
        .await
        .expect("sendCode");
    let code = fake.login_code("+998900000020").expect("a code was sent");
    let wrong = format!("{:05}", (code.parse::<u32>().unwrap() + 1) % 100_000);
    assert!(matches!(
        r.client.sign_in(&token, &wrong).await,
        Err(SignInError::InvalidCode)
    ));
    let user = r.client.sign_in(&token, &code).await.expect("right code");
    assert_eq!(user.id().bare_id_unchecked(), plain);
    assert_eq!(fake.key_account(&key), Some(plain));
    assert_eq!(
        r.client.get_me().await.unwrap().id().bare_id_unchecked(),
        plain
    );
    r.client.sign_out().await.expect("logOut");
    let e = r.client.get_me().await.expect_err("logged out");
    assert_eq!(rpc_name(&e), Some("AUTH_KEY_UNREGISTERED"));

    // An expired code.
    let token = r
        .client
        .request_login_code("+998900000020", "hash")
        .await
        .expect("sendCode");
    let code = fake.login_code("+998900000020").unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(matches!(
        r.client.sign_in(&token, &code).await,
        Err(SignInError::InvalidCode)
    ));
    r.close().await;
    let anon = fake.anonymous_stats();
    assert_eq!(
        anon["auth.signIn"].errors.get("PHONE_CODE_INVALID"),
        Some(&1),
        "{anon:?}"
    );
    assert_eq!(
        anon["auth.signIn"].errors.get("PHONE_CODE_EXPIRED"),
        Some(&1),
        "{anon:?}"
    );

    // 2FA: the code, then SRP; a wrong password first.
    let key = fake.issue_auth_key(None);
    let r = Reader::connect(&fake, key).await;
    let token = r
        .client
        .request_login_code("+998900000021", "hash")
        .await
        .expect("sendCode");
    let code = fake.login_code("+998900000021").unwrap();
    let Err(SignInError::PasswordRequired(password)) = r.client.sign_in(&token, &code).await else {
        panic!("2FA account needs its password")
    };
    let Err(SignInError::InvalidPassword(password)) =
        r.client.check_password(password, "wrong horse").await
    else {
        panic!("a wrong password fails clearly")
    };
    assert_eq!(fake.key_account(&key), None);
    let user = r
        .client
        .check_password(password, "correct horse")
        .await
        .expect("SRP verified");
    assert_eq!(user.id().bare_id_unchecked(), guarded);
    assert_eq!(fake.key_account(&key), Some(guarded));
    let stats = fake.stats(guarded);
    assert_eq!(stats.calls("users.getUsers"), 0);
    let anon = fake.anonymous_stats();
    assert_eq!(
        anon["auth.checkPassword"]
            .errors
            .get("PASSWORD_HASH_INVALID"),
        Some(&1),
        "{anon:?}"
    );
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_up_waits_escalate_frozen_accounts_read_only_and_peer_flood_refuses_joins() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    fake.set_escalating_limit(
        "contacts.resolveUsername",
        Some(EscalatingLimit {
            free: 2,
            per: Duration::from_secs(86_400),
            waits: vec![Duration::from_secs(1), Duration::from_secs(66_230)],
        }),
    );
    let news = public_channel(&fake, "escalate");
    let (id, key) = account(&fake, "+998900000040");
    let rude = Reader::connect_without_retries(&fake, key).await;
    let resolve = async || rude.client.resolve_username("escalate").await;
    resolve().await.expect("first");
    resolve().await.expect("second");
    let wait = |e: &InvocationError| match e {
        InvocationError::Rpc(r) if r.code == 420 && r.name == "FLOOD_WAIT" => r.value,
        _ => None,
    };
    assert_eq!(wait(&resolve().await.expect_err("third")), Some(1));
    // Early: counted, and told what is left.
    assert_eq!(wait(&resolve().await.expect_err("early")), Some(1));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // The next step of the ladder: hours.
    assert_eq!(wait(&resolve().await.expect_err("fourth")), Some(66_230));
    let m = &fake.stats(id).methods["contacts.resolveUsername"];
    assert_eq!((m.calls, m.calls_during_flood_wait), (5, 1), "{m:?}");

    // Frozen: reading still works, anything else is FROZEN_METHOD_INVALID.
    fake.publish_text(news, "read while frozen");
    assert!(fake.set_frozen(id, true));
    let read = rude
        .client
        .invoke(&history(0, 0, 10, input_peer(&fake, news, id)))
        .await
        .expect("reading is allowed");
    assert_eq!(message_ids(read).len(), 1);
    let join = tl::functions::channels::JoinChannel {
        channel: input_channel(&fake, news, id),
    };
    let e = rude.client.invoke(&join).await.expect_err("frozen");
    assert!(
        matches!(&e, InvocationError::Rpc(r) if r.code == 420 && r.name == "FROZEN_METHOD_INVALID"),
        "{e}"
    );
    assert!(fake.set_frozen(id, false));
    // Limited for spam: joins refused with PEER_FLOOD, nothing else.
    assert!(fake.set_peer_flood(id, true));
    let e = rude.client.invoke(&join).await.expect_err("limited");
    assert!(
        matches!(&e, InvocationError::Rpc(r) if r.code == 400 && r.name == "PEER_FLOOD"),
        "{e}"
    );
    assert!(fake.set_peer_flood(id, false));
    rude.client.invoke(&join).await.expect("joins again");
    rude.close().await;
}
