//! How the world's accounts, channels and messages look as TL objects.
//! Constructors with dozens of optional fields are spelled out once here.

use std::net::SocketAddr;

use grammers_tl_types as tl;

use super::world::{Account, Channel, Msg};
use crate::fake_bot_api::MediaKind;

/// The DC id the fake calls itself (grammers' default home DC).
pub(crate) const THIS_DC: i32 = 2;

pub(crate) fn peer_channel(id: i64) -> tl::enums::Peer {
    tl::types::PeerChannel { channel_id: id }.into()
}

pub(crate) fn user(acc: &Account, is_self: bool) -> tl::enums::User {
    tl::types::User {
        is_self,
        contact: false,
        mutual_contact: false,
        deleted: false,
        bot: false,
        bot_chat_history: false,
        bot_nochats: false,
        verified: false,
        restricted: false,
        min: false,
        bot_inline_geo: false,
        support: false,
        scam: false,
        apply_min_photo: false,
        fake: false,
        bot_attach_menu: false,
        premium: false,
        attach_menu_enabled: false,
        bot_can_edit: false,
        close_friend: false,
        stories_hidden: false,
        stories_unavailable: false,
        contact_require_premium: false,
        bot_business: false,
        bot_has_main_app: false,
        bot_forum_view: false,
        bot_forum_can_manage_topics: false,
        bot_can_manage_bots: false,
        bot_guestchat: false,
        bot_guard: false,
        id: acc.id,
        access_hash: Some(acc.access_hash),
        first_name: Some(acc.first_name.clone()),
        last_name: None,
        username: acc.username.clone(),
        phone: is_self.then(|| acc.phone.trim_start_matches('+').to_owned()),
        photo: None,
        status: None,
        bot_info_version: None,
        restriction_reason: None,
        bot_inline_placeholder: None,
        lang_code: None,
        emoji_status: None,
        usernames: None,
        stories_max_id: None,
        color: None,
        profile_color: None,
        bot_active_users: None,
        bot_verification_icon: None,
        send_paid_messages_stars: None,
        linked_community_id: None,
    }
    .into()
}

/// The channel as `account` sees it (`left` unless a member, `creator` for
/// an admin). A private channel an account cannot see is `channelForbidden`.
pub(crate) fn channel(ch: &Channel, account: Option<i64>) -> tl::enums::Chat {
    let member = account.is_some_and(|a| ch.members.contains(&a));
    let admin = account.is_some_and(|a| ch.admins.contains(&a));
    if !ch.is_public() && !member && !admin {
        return tl::types::ChannelForbidden {
            broadcast: true,
            megagroup: false,
            monoforum: false,
            id: ch.id,
            access_hash: ch.access_hash(account),
            title: ch.title.clone(),
            until_date: None,
        }
        .into();
    }
    tl::types::Channel {
        creator: admin,
        left: !member && !admin,
        broadcast: true,
        verified: false,
        megagroup: false,
        restricted: false,
        signatures: false,
        min: false,
        scam: false,
        has_link: false,
        has_geo: false,
        slowmode_enabled: false,
        call_active: false,
        call_not_empty: false,
        fake: false,
        gigagroup: false,
        noforwards: ch.protected,
        join_to_send: false,
        join_request: false,
        forum: false,
        stories_hidden: false,
        stories_hidden_min: false,
        stories_unavailable: false,
        signature_profiles: false,
        autotranslation: false,
        broadcast_messages_allowed: false,
        monoforum: false,
        forum_tabs: false,
        id: ch.id,
        access_hash: Some(ch.access_hash(account)),
        title: ch.title.clone(),
        username: ch.username.clone(),
        photo: tl::enums::ChatPhoto::Empty,
        date: ch.date,
        restriction_reason: None,
        admin_rights: None,
        banned_rights: None,
        default_banned_rights: None,
        participants_count: i32::try_from(ch.members.len()).ok(),
        usernames: None,
        stories_max_id: None,
        color: None,
        profile_color: None,
        emoji_status: None,
        level: None,
        subscription_until_date: None,
        bot_verification_icon: None,
        send_paid_messages_stars: None,
        linked_monoforum_id: None,
        linked_community_id: None,
    }
    .into()
}

pub(crate) fn notify_settings() -> tl::enums::PeerNotifySettings {
    tl::types::PeerNotifySettings {
        show_previews: None,
        silent: None,
        mute_until: None,
        ios_sound: None,
        android_sound: None,
        other_sound: None,
        stories_muted: None,
        stories_hide_sender: None,
        stories_ios_sound: None,
        stories_android_sound: None,
        stories_other_sound: None,
    }
    .into()
}

pub(crate) fn channel_full(ch: &Channel) -> tl::enums::ChatFull {
    tl::types::ChannelFull {
        can_view_participants: false,
        can_set_username: false,
        can_set_stickers: false,
        hidden_prehistory: false,
        can_set_location: false,
        has_scheduled: false,
        can_view_stats: false,
        blocked: false,
        can_delete_channel: false,
        antispam: false,
        participants_hidden: false,
        translations_disabled: false,
        stories_pinned_available: false,
        view_forum_as_messages: false,
        restricted_sponsored: false,
        can_view_revenue: false,
        paid_media_allowed: false,
        can_view_stars_revenue: false,
        paid_reactions_available: false,
        stargifts_available: false,
        paid_messages_available: false,
        has_welcome_messages: false,
        id: ch.id,
        about: String::new(),
        participants_count: i32::try_from(ch.members.len()).ok(),
        admins_count: i32::try_from(ch.admins.len()).ok(),
        kicked_count: None,
        banned_count: None,
        online_count: None,
        read_inbox_max_id: 0,
        read_outbox_max_id: 0,
        unread_count: 0,
        chat_photo: tl::types::PhotoEmpty { id: 0 }.into(),
        notify_settings: notify_settings(),
        exported_invite: None,
        bot_info: Vec::new(),
        migrated_from_chat_id: None,
        migrated_from_max_id: None,
        pinned_msg_id: None,
        stickerset: None,
        available_min_id: None,
        folder_id: None,
        linked_chat_id: None,
        location: None,
        slowmode_seconds: None,
        slowmode_next_send_date: None,
        stats_dc: None,
        pts: ch.pts,
        call: None,
        ttl_period: None,
        pending_suggestions: None,
        groupcall_default_join_as: None,
        theme_emoticon: None,
        requests_pending: None,
        recent_requesters: None,
        default_send_as: None,
        available_reactions: None,
        reactions_limit: None,
        stories: None,
        wallpaper: None,
        boosts_applied: None,
        boosts_unrestrict: None,
        emojiset: None,
        bot_verification: None,
        stargifts_count: None,
        send_paid_messages_stars: None,
        main_tab: None,
        guard_bot_id: None,
    }
    .into()
}

fn media(kind: MediaKind, id: i64) -> tl::enums::MessageMedia {
    match kind {
        MediaKind::Photo => tl::types::MessageMediaPhoto {
            spoiler: false,
            live_photo: false,
            photo: Some(tl::types::PhotoEmpty { id }.into()),
            ttl_seconds: None,
            video: None,
        }
        .into(),
        MediaKind::Video | MediaKind::Document => tl::types::MessageMediaDocument {
            nopremium: false,
            spoiler: false,
            video: kind == MediaKind::Video,
            round: false,
            voice: false,
            document: Some(tl::types::DocumentEmpty { id }.into()),
            alt_documents: None,
            video_cover: None,
            video_timestamp: None,
            ttl_seconds: None,
        }
        .into(),
    }
}

pub(crate) fn message(channel_id: i64, m: &Msg) -> tl::enums::Message {
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
        noforwards: m.noforwards,
        invert_media: false,
        offline: false,
        video_processing_pending: false,
        paid_suggested_post_stars: false,
        paid_suggested_post_ton: false,
        id: m.id,
        from_id: None,
        from_boosts_applied: None,
        from_rank: None,
        peer_id: peer_channel(channel_id),
        saved_peer_id: None,
        fwd_from: m.fwd_from.map(|(from, post, date)| {
            tl::types::MessageFwdHeader {
                imported: false,
                saved_out: false,
                from_id: Some(peer_channel(from)),
                from_name: None,
                date,
                channel_post: Some(post),
                post_author: None,
                saved_from_peer: None,
                saved_from_msg_id: None,
                saved_from_id: None,
                saved_from_name: None,
                saved_date: None,
                psa_type: None,
            }
            .into()
        }),
        via_bot_id: None,
        via_business_bot_id: None,
        guestchat_via_from: None,
        reply_to: None,
        date: m.date,
        message: m.text.clone(),
        media: m
            .media
            .map(|k| media(k, channel_id.wrapping_mul(1_000_003) + i64::from(m.id))),
        reply_markup: None,
        entities: None,
        views: Some(0),
        forwards: Some(0),
        replies: None,
        edit_date: m.edit_date,
        post_author: None,
        grouped_id: m.grouped_id,
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
    .into()
}

/// `help.getConfig` asked on DC `this_dc`: the fake's own data centres at
/// their addresses, `static` (grammers' `sender_pool.rs`, `update_config`,
/// keeps only static, non-media, non-TCPO options, and takes each one's
/// address into the session).
pub(crate) fn config(dcs: &[(i32, SocketAddr)], this_dc: i32, now: i32) -> tl::enums::Config {
    let dc_options = dcs
        .iter()
        .filter_map(|(id, addr)| match addr {
            SocketAddr::V4(v4) => Some(
                tl::types::DcOption {
                    ipv6: false,
                    media_only: false,
                    tcpo_only: false,
                    cdn: false,
                    r#static: true,
                    this_port_only: false,
                    id: *id,
                    ip_address: v4.ip().to_string(),
                    port: i32::from(v4.port()),
                    secret: None,
                }
                .into(),
            ),
            SocketAddr::V6(_) => None,
        })
        .collect();
    tl::types::Config {
        default_p2p_contacts: false,
        preload_featured_stickers: false,
        revoke_pm_inbox: false,
        blocked_mode: false,
        force_try_ipv6: false,
        date: now,
        expires: now + 3600,
        test_mode: false,
        this_dc,
        dc_options,
        dc_txt_domain_name: String::new(),
        chat_size_max: 200,
        megagroup_size_max: 200_000,
        forwarded_count_max: 100,
        online_update_period_ms: 210_000,
        offline_blur_timeout_ms: 5000,
        offline_idle_timeout_ms: 30_000,
        online_cloud_timeout_ms: 300_000,
        notify_cloud_delay_ms: 30_000,
        notify_default_delay_ms: 1500,
        push_chat_period_ms: 60_000,
        push_chat_limit: 2,
        edit_time_limit: 172_800,
        revoke_time_limit: i32::MAX,
        revoke_pm_time_limit: i32::MAX,
        rating_e_decay: 2_419_200,
        stickers_recent_limit: 200,
        channels_read_media_period: 604_800,
        tmp_sessions: None,
        call_receive_timeout_ms: 20_000,
        call_ring_timeout_ms: 90_000,
        call_connect_timeout_ms: 30_000,
        call_packet_timeout_ms: 10_000,
        me_url_prefix: "https://t.me/".to_owned(),
        autoupdate_url_prefix: None,
        gif_search_username: None,
        venue_search_username: None,
        img_search_username: None,
        static_maps_provider: None,
        caption_length_max: 1024,
        message_length_max: 4096,
        webfile_dc_id: THIS_DC,
        suggested_lang_code: None,
        lang_pack_version: None,
        base_lang_pack_version: None,
        reactions_default: None,
        autologin_token: None,
    }
    .into()
}
