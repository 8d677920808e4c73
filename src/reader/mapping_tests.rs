use super::*;

fn message(id: i32, text: &str) -> tl::types::Message {
    tl::types::Message {
        out: false,
        mentioned: false,
        media_unread: false,
        silent: false,
        post: true,
        from_scheduled: false,
        legacy: false,
        edit_hide: false,
        pinned: false,
        noforwards: false,
        invert_media: false,
        offline: false,
        video_processing_pending: false,
        paid_suggested_post_stars: false,
        paid_suggested_post_ton: false,
        id,
        from_id: None,
        from_boosts_applied: None,
        from_rank: None,
        peer_id: tl::types::PeerChannel { channel_id: 77 }.into(),
        saved_peer_id: None,
        fwd_from: None,
        via_bot_id: None,
        via_business_bot_id: None,
        guestchat_via_from: None,
        reply_to: None,
        date: 1_700_000_000,
        message: text.to_owned(),
        media: None,
        reply_markup: None,
        entities: None,
        views: None,
        forwards: None,
        replies: None,
        edit_date: None,
        post_author: None,
        grouped_id: None,
        reactions: None,
        restriction_reason: None,
        ttl_period: None,
        quick_reply_shortcut_id: None,
        effect: None,
        factcheck: None,
        report_delivery_until_date: None,
        paid_message_stars: None,
        suggested_post: None,
        schedule_repeat_period: None,
        summary_from_language: None,
        rich_message: None,
    }
}

fn map(m: tl::types::Message) -> SourceMessage {
    source_message(&tl::enums::Message::Message(m), false).expect("a post")
}

fn photo() -> tl::enums::MessageMedia {
    tl::types::MessageMediaPhoto {
        spoiler: false,
        live_photo: false,
        photo: None,
        ttl_seconds: None,
        video: None,
    }
    .into()
}

fn document(attributes: Vec<tl::enums::DocumentAttribute>) -> tl::enums::MessageMedia {
    tl::types::MessageMediaDocument {
        nopremium: false,
        spoiler: false,
        video: false,
        round: false,
        voice: false,
        document: Some(
            tl::types::Document {
                id: 1,
                access_hash: 2,
                file_reference: vec![],
                date: 0,
                mime_type: "application/octet-stream".to_owned(),
                size: 1,
                thumbs: None,
                video_thumbs: None,
                dc_id: 2,
                attributes,
            }
            .into(),
        ),
        alt_documents: None,
        video_cover: None,
        video_timestamp: None,
        ttl_seconds: None,
    }
    .into()
}

#[test]
fn text_and_entities_are_kept_exactly_in_utf16_units() {
    // "Салом 👋 *dunyo*": the emoji is two UTF-16 units, so "dunyo"
    // starts at unit 9 although it is the 8th character.
    let mut m = message(5, "Салом 👋 dunyo https://t.me/x");
    m.entities = Some(vec![
        tl::types::MessageEntityBold {
            offset: 9,
            length: 5,
        }
        .into(),
        tl::types::MessageEntityTextUrl {
            offset: 0,
            length: 5,
            url: "https://example.com/a".to_owned(),
        }
        .into(),
        tl::types::MessageEntityPre {
            offset: 15,
            length: 4,
            language: "rust".to_owned(),
        }
        .into(),
        tl::types::MessageEntityBlockquote {
            collapsed: true,
            offset: 0,
            length: 2,
        }
        .into(),
        tl::types::MessageEntityCustomEmoji {
            offset: 6,
            length: 2,
            document_id: 99,
        }
        .into(),
        tl::types::MessageEntityMentionName {
            offset: 0,
            length: 1,
            user_id: 5,
        }
        .into(),
    ]);
    let s = map(m);
    assert_eq!(s.id, 5);
    assert_eq!(s.text.as_deref(), Some("Салом 👋 dunyo https://t.me/x"));
    let kinds: Vec<_> = s
        .entities
        .iter()
        .map(|e| (e.kind.clone(), e.offset, e.length))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (MessageEntityKind::Bold, 9, 5),
            (
                MessageEntityKind::TextLink {
                    url: "https://example.com/a".parse().unwrap()
                },
                0,
                5
            ),
            (
                MessageEntityKind::Pre {
                    language: Some("rust".to_owned())
                },
                15,
                4
            ),
            (MessageEntityKind::ExpandableBlockquote, 0, 2),
            (
                MessageEntityKind::CustomEmoji {
                    custom_emoji_id: CustomEmojiId("99".to_owned())
                },
                6,
                2
            ),
        ],
        "a mention by user id cannot be sent by a bot and is dropped"
    );
    let text = s.text.unwrap();
    let units: Vec<u16> = text.encode_utf16().collect();
    assert_eq!(String::from_utf16(&units[9..14]).unwrap(), "dunyo");
    assert!(s.copyable);
    assert_eq!(s.media, None);
}

#[test]
fn media_kinds_albums_and_what_cannot_be_copied() {
    use tl::enums::DocumentAttribute as A;
    let with = |media: tl::enums::MessageMedia| {
        let mut m = message(1, "");
        m.media = Some(media);
        map(m).media
    };
    assert_eq!(with(photo()), Some(MediaKind::Photo));
    assert_eq!(with(document(vec![])), Some(MediaKind::Document));
    let video = tl::types::DocumentAttributeVideo {
        round_message: false,
        supports_streaming: true,
        nosound: false,
        duration: 1.0,
        w: 1,
        h: 1,
        preload_prefix_size: None,
        video_start_ts: None,
        video_codec: None,
    };
    assert_eq!(
        with(document(vec![A::Video(video.clone())])),
        Some(MediaKind::Video)
    );
    assert_eq!(
        with(document(vec![A::Animated, A::Video(video)])),
        Some(MediaKind::Animation)
    );
    let audio = |voice| {
        A::Audio(tl::types::DocumentAttributeAudio {
            voice,
            duration: 1,
            title: None,
            performer: None,
            waveform: None,
        })
    };
    assert_eq!(with(document(vec![audio(false)])), Some(MediaKind::Audio));
    assert_eq!(with(document(vec![audio(true)])), Some(MediaKind::Voice));
    let web = tl::types::MessageMediaWebPage {
        force_large_media: false,
        force_small_media: false,
        manual: false,
        safe: false,
        webpage: tl::types::WebPageEmpty { id: 1, url: None }.into(),
    };
    assert_eq!(with(web.into()), None, "a link preview is a text post");

    // Album parts keep their group id (Post::group makes them one post);
    // a caption is the text.
    let mut part = message(7, "caption");
    part.media = Some(photo());
    part.grouped_id = Some(123_456_789_012);
    let s = map(part);
    assert_eq!(s.media_group_id.as_deref(), Some("123456789012"));
    assert_eq!(s.text.as_deref(), Some("caption"));

    // Protected: the post's own flag or the channel's.
    let mut protected = message(8, "secret");
    protected.noforwards = true;
    assert!(!map(protected).copyable);
    let plain = tl::enums::Message::Message(message(9, "open"));
    assert!(!source_message(&plain, true).unwrap().copyable);
    assert!(source_message(&plain, false).unwrap().copyable);

    // Service messages and empty ids are not posts.
    let empty = tl::enums::Message::Empty(tl::types::MessageEmpty {
        id: 3,
        peer_id: None,
    });
    assert_eq!(source_message(&empty, false), None);
}

#[test]
fn without_a_relay_media_go_out_as_text_with_a_link() {
    let mut m = map(message(42, "look"));
    m.media = Some(MediaKind::Photo);
    let sent = without_relay(m.clone(), Some("news_uz"));
    assert_eq!(sent.media, None);
    assert_eq!(
        sent.text.as_deref(),
        Some("look\n\nhttps://t.me/news_uz/42")
    );
    assert!(sent.copyable);
    let private = without_relay(m, None);
    assert!(
        !private.copyable,
        "no link can show a private channel's media"
    );
    let text = map(message(43, "just text"));
    assert_eq!(without_relay(text.clone(), Some("n")), text);
}
