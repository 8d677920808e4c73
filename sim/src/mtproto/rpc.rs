//! The RPC dispatcher: unwraps `invokeWithLayer` / `initConnection` /
//! `invokeWithoutUpdates`, decides who is calling (the account signed in on
//! the auth key, if any), applies the session rules (`SESSION_REVOKED`,
//! `AUTH_KEY_DUPLICATED`, `AUTH_KEY_UNREGISTERED`) and flood limits, runs
//! the call against the world, and counts the call and its error.

use std::net::SocketAddr;
use std::time::Instant;

use grammers_tl_types::{self as tl, Deserializable, Identifiable, Serializable};
use tokio::sync::mpsc;

use super::flood::Verdict;
use super::login;
use super::objects;
use super::session::{constructor, rpc_error};
use super::updates::{self, now_i32};
use super::world::{
    Account, Channel, EventKind, MAX_JOINED_CHANNELS, Msg, Push, PushTarget, World,
};
use crate::fake_bot_api::NewChannelMessage;

/// Who is calling, on which connection.
pub(crate) struct CallCtx {
    pub(crate) key_id: i64,
    pub(crate) conn_id: u64,
    pub(crate) server_addr: SocketAddr,
    /// Another live connection holds this auth key.
    pub(crate) duplicated: bool,
    pub(crate) push_tx: mpsc::UnboundedSender<Push>,
}

/// An RPC error: code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RpcErr {
    pub(crate) code: i32,
    pub(crate) message: String,
}

fn err(code: i32, message: &str) -> RpcErr {
    RpcErr {
        code,
        message: message.to_owned(),
    }
}

type Reply = Result<Vec<u8>, RpcErr>;

/// The rest of a buffer: the generic `query` of the wrapper functions.
struct Rest(Vec<u8>);

impl Deserializable for Rest {
    fn deserialize(buf: &mut tl::Cursor) -> tl::deserialize::Result<Self> {
        let mut v = Vec::new();
        buf.read_to_end(&mut v)?;
        Ok(Rest(v))
    }
}

/// A function's arguments (the body after its constructor id).
fn args<F: Deserializable>(body: &[u8]) -> Result<F, RpcErr> {
    F::from_bytes(body.get(4..).unwrap_or_default()).map_err(|_| err(400, "INPUT_REQUEST_INVALID"))
}

/// Strips the wrappers off a request body.
fn unwrap_query(mut body: Vec<u8>) -> Result<Vec<u8>, RpcErr> {
    for _ in 0..8 {
        let Some(id) = constructor(&body) else {
            return Err(err(400, "INPUT_REQUEST_TOO_SHORT"));
        };
        body = match id {
            tl::functions::InvokeWithLayer::<Rest>::CONSTRUCTOR_ID => {
                args::<tl::functions::InvokeWithLayer<Rest>>(&body)?.query.0
            }
            tl::functions::InitConnection::<Rest>::CONSTRUCTOR_ID => {
                args::<tl::functions::InitConnection<Rest>>(&body)?.query.0
            }
            tl::functions::InvokeWithoutUpdates::<Rest>::CONSTRUCTOR_ID => {
                args::<tl::functions::InvokeWithoutUpdates<Rest>>(&body)?
                    .query
                    .0
            }
            tl::functions::InvokeAfterMsg::<Rest>::CONSTRUCTOR_ID => {
                args::<tl::functions::InvokeAfterMsg<Rest>>(&body)?.query.0
            }
            _ => return Ok(body),
        };
    }
    Err(err(400, "INPUT_REQUEST_INVALID"))
}

/// Methods callable on an auth key with no account signed in.
fn allowed_anonymous(id: u32) -> bool {
    [
        tl::functions::help::GetConfig::CONSTRUCTOR_ID,
        tl::functions::auth::SendCode::CONSTRUCTOR_ID,
        tl::functions::auth::SignIn::CONSTRUCTOR_ID,
        tl::functions::account::GetPassword::CONSTRUCTOR_ID,
        tl::functions::auth::CheckPassword::CONSTRUCTOR_ID,
    ]
    .contains(&id)
}

/// Runs one RPC and returns the bytes for `rpc_result` (a result or an
/// `rpc_error`).
pub(crate) fn call(world: &mut World, ctx: &CallCtx, body: Vec<u8>) -> Vec<u8> {
    let (method, account, reply) = match unwrap_query(body) {
        Ok(inner) => {
            let id = constructor(&inner).unwrap_or(0);
            let method = tl::name_for_id(id);
            let (account, reply) = guarded(world, ctx, id, &inner);
            (method, account, reply)
        }
        Err(e) => ("?", None, Err(e)),
    };
    match reply {
        Ok(bytes) => {
            world.count(account, method, None);
            bytes
        }
        Err(e) => {
            world.count(account, method, Some(&e.message));
            rpc_error(e.code, &e.message)
        }
    }
}

fn guarded(world: &mut World, ctx: &CallCtx, id: u32, body: &[u8]) -> (Option<i64>, Reply) {
    let Some(key) = world.keys.get(&ctx.key_id) else {
        return (None, Err(err(401, "AUTH_KEY_UNREGISTERED")));
    };
    let account = key.account;
    if key.revoked {
        return (account, Err(err(401, "SESSION_REVOKED")));
    }
    if ctx.duplicated {
        return (account, Err(err(406, "AUTH_KEY_DUPLICATED")));
    }
    let Some(account) = account else {
        if allowed_anonymous(id) {
            return (None, dispatch(world, ctx, None, id, body));
        }
        return (None, Err(err(401, "AUTH_KEY_UNREGISTERED")));
    };
    let method = tl::name_for_id(id);
    let limit = world.settings.flood_limits.get(method).copied();
    let Some(acc) = world.accounts.get_mut(&account) else {
        return (None, Err(err(401, "AUTH_KEY_UNREGISTERED")));
    };
    if !acc.pushes.iter().any(|t| t.conn_id == ctx.conn_id) {
        acc.pushes.push(PushTarget {
            conn_id: ctx.conn_id,
            tx: ctx.push_tx.clone(),
        });
    }
    if let Some(limit) = limit {
        let state = acc.flood.entry(method.to_owned()).or_default();
        match state.check(limit, Instant::now()) {
            Verdict::Allowed => {}
            Verdict::Wait(s) => return (Some(account), Err(flood_wait(s))),
            Verdict::Premature(s) => {
                acc.stats
                    .entry(method.to_owned())
                    .or_default()
                    .calls_during_flood_wait += 1;
                return (Some(account), Err(flood_wait(s)));
            }
        }
    }
    (Some(account), dispatch(world, ctx, Some(account), id, body))
}

fn flood_wait(secs: u32) -> RpcErr {
    RpcErr {
        code: 420,
        message: format!("FLOOD_WAIT_{secs}"),
    }
}

fn dispatch(world: &mut World, ctx: &CallCtx, account: Option<i64>, id: u32, body: &[u8]) -> Reply {
    use tl::functions as f;
    let me = account.unwrap_or(0);
    match id {
        f::help::GetConfig::CONSTRUCTOR_ID => {
            Ok(objects::config(ctx.server_addr, now_i32()).to_bytes())
        }
        f::users::GetUsers::CONSTRUCTOR_ID => get_users(world, me, &args(body)?),
        f::updates::GetState::CONSTRUCTOR_ID => Ok(state().to_bytes()),
        f::updates::GetDifference::CONSTRUCTOR_ID => get_difference(world, me),
        f::updates::GetChannelDifference::CONSTRUCTOR_ID => {
            get_channel_difference(world, me, &args(body)?)
        }
        f::contacts::ResolveUsername::CONSTRUCTOR_ID => resolve_username(world, me, &args(body)?),
        f::channels::GetChannels::CONSTRUCTOR_ID => {
            let req: f::channels::GetChannels = args(body)?;
            let mut chats = Vec::new();
            for c in &req.id {
                let ch = channel_of(world, c)?;
                chats.push(objects::channel(ch, Some(me)));
            }
            Ok(tl::enums::messages::Chats::Chats(tl::types::messages::Chats { chats }).to_bytes())
        }
        f::channels::GetFullChannel::CONSTRUCTOR_ID => {
            let req: f::channels::GetFullChannel = args(body)?;
            let ch = visible(channel_of(world, &req.channel)?, me)?;
            Ok(
                tl::enums::messages::ChatFull::Full(tl::types::messages::ChatFull {
                    full_chat: objects::channel_full(ch),
                    chats: vec![objects::channel(ch, Some(me))],
                    users: Vec::new(),
                })
                .to_bytes(),
            )
        }
        f::messages::GetHistory::CONSTRUCTOR_ID => get_history(world, me, &args(body)?),
        f::channels::GetMessages::CONSTRUCTOR_ID => {
            let req: f::channels::GetMessages = args(body)?;
            let ch = visible(channel_of(world, &req.channel)?, me)?;
            let messages = req
                .id
                .iter()
                .map(|m| {
                    let id = match m {
                        tl::enums::InputMessage::Id(x) => x.id,
                        _ => 0,
                    };
                    ch.messages.get(&id).map_or_else(
                        || {
                            tl::types::MessageEmpty {
                                id,
                                peer_id: Some(objects::peer_channel(ch.id)),
                            }
                            .into()
                        },
                        |m| objects::message(ch.id, m),
                    )
                })
                .collect();
            Ok(channel_messages(ch, me, messages))
        }
        f::channels::JoinChannel::CONSTRUCTOR_ID => join(world, me, &args(body)?),
        f::channels::LeaveChannel::CONSTRUCTOR_ID => leave(world, me, &args(body)?),
        f::messages::ForwardMessages::CONSTRUCTOR_ID => forward(world, me, &args(body)?),
        f::auth::SendCode::CONSTRUCTOR_ID => send_code(world, &args(body)?),
        f::auth::SignIn::CONSTRUCTOR_ID => sign_in(world, ctx, &args(body)?),
        f::account::GetPassword::CONSTRUCTOR_ID => get_password(world, ctx, account),
        f::auth::CheckPassword::CONSTRUCTOR_ID => check_password(world, ctx, account, &args(body)?),
        f::auth::LogOut::CONSTRUCTOR_ID => {
            if let Some(k) = world.keys.get_mut(&ctx.key_id) {
                k.account = None;
            }
            if let Some(acc) = world.accounts.get_mut(&me) {
                acc.pushes.retain(|t| t.conn_id != ctx.conn_id);
            }
            Ok(tl::enums::auth::LoggedOut::Out(tl::types::auth::LoggedOut {
                future_auth_token: None,
            })
            .to_bytes())
        }
        _ => Err(err(400, "INPUT_METHOD_INVALID")),
    }
}

fn state() -> tl::enums::updates::State {
    tl::types::updates::State {
        pts: 1,
        qts: 0,
        date: now_i32(),
        seq: 0,
        unread_count: 0,
    }
    .into()
}

fn account_of(world: &World, me: i64) -> Result<&Account, RpcErr> {
    world
        .accounts
        .get(&me)
        .ok_or_else(|| err(401, "AUTH_KEY_UNREGISTERED"))
}

fn get_users(world: &World, me: i64, req: &tl::functions::users::GetUsers) -> Reply {
    let mut users = Vec::new();
    for u in &req.id {
        match u {
            tl::enums::InputUser::UserSelf => {
                users.push(objects::user(account_of(world, me)?, true))
            }
            tl::enums::InputUser::User(x) => {
                if let Some(acc) = world.accounts.get(&x.user_id)
                    && acc.access_hash == x.access_hash
                {
                    users.push(objects::user(acc, x.user_id == me));
                }
            }
            _ => {}
        }
    }
    Ok(users.to_bytes())
}

fn get_difference(world: &mut World, me: i64) -> Reply {
    let missed: Vec<i64> = match world.accounts.get_mut(&me) {
        Some(acc) => std::mem::take(&mut acc.missed_channels)
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    if missed.is_empty() {
        return Ok(tl::types::updates::DifferenceEmpty {
            date: now_i32(),
            seq: 0,
        }
        .into_enum_bytes());
    }
    let mut other_updates = Vec::new();
    let mut chats = Vec::new();
    for c in missed {
        if let Some(ch) = world.channels.get(&c) {
            other_updates.push(
                tl::types::UpdateChannelTooLong {
                    channel_id: c,
                    pts: None,
                }
                .into(),
            );
            chats.push(objects::channel(ch, Some(me)));
        }
    }
    Ok(
        tl::enums::updates::Difference::Difference(tl::types::updates::Difference {
            new_messages: Vec::new(),
            new_encrypted_messages: Vec::new(),
            other_updates,
            chats,
            users: Vec::new(),
            state: state(),
        })
        .to_bytes(),
    )
}

trait IntoEnumBytes {
    fn into_enum_bytes(self) -> Vec<u8>;
}

impl IntoEnumBytes for tl::types::updates::DifferenceEmpty {
    fn into_enum_bytes(self) -> Vec<u8> {
        tl::enums::updates::Difference::Empty(self).to_bytes()
    }
}

fn get_channel_difference(
    world: &World,
    me: i64,
    req: &tl::functions::updates::GetChannelDifference,
) -> Reply {
    let ch = channel_of(world, &req.channel)?;
    if !ch.members.contains(&me) && !ch.admins.contains(&me) {
        visible(ch, me)?;
    }
    let client_limit = usize::try_from(req.limit.max(1)).unwrap_or(1);
    let limit = client_limit.min(world.settings.channel_difference_limit);
    Ok(updates::channel_difference(ch, me, req.pts, limit).to_bytes())
}

/// Telegram's username rule: 5–32 of `a-z0-9_`, starting with a letter, not
/// ending with `_`.
fn username_valid(name: &str) -> bool {
    let b = name.as_bytes();
    (5..=32).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 1] != b'_'
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn resolve_username(
    world: &World,
    me: i64,
    req: &tl::functions::contacts::ResolveUsername,
) -> Reply {
    let name = req.username.trim_start_matches('@');
    if !username_valid(name) {
        return Err(err(400, "USERNAME_INVALID"));
    }
    let lower = name.to_ascii_lowercase();
    if let Some(ch) = world
        .usernames
        .get(&lower)
        .and_then(|c| world.channels.get(c))
    {
        return Ok(
            tl::enums::contacts::ResolvedPeer::Peer(tl::types::contacts::ResolvedPeer {
                peer: objects::peer_channel(ch.id),
                chats: vec![objects::channel(ch, Some(me))],
                users: Vec::new(),
            })
            .to_bytes(),
        );
    }
    if let Some(acc) = world.accounts.values().find(|a| {
        a.username
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case(name))
    }) {
        return Ok(
            tl::enums::contacts::ResolvedPeer::Peer(tl::types::contacts::ResolvedPeer {
                peer: tl::types::PeerUser { user_id: acc.id }.into(),
                chats: Vec::new(),
                users: vec![objects::user(acc, acc.id == me)],
            })
            .to_bytes(),
        );
    }
    Err(err(400, "USERNAME_NOT_OCCUPIED"))
}

fn channel_by_id(world: &World, id: i64, access_hash: i64) -> Result<&Channel, RpcErr> {
    match world.channels.get(&id) {
        Some(ch) if ch.access_hash == access_hash => Ok(ch),
        _ => Err(err(400, "CHANNEL_INVALID")),
    }
}

fn channel_of<'w>(world: &'w World, c: &tl::enums::InputChannel) -> Result<&'w Channel, RpcErr> {
    match c {
        tl::enums::InputChannel::Channel(x) => channel_by_id(world, x.channel_id, x.access_hash),
        _ => Err(err(400, "CHANNEL_INVALID")),
    }
}

fn channel_of_peer<'w>(world: &'w World, p: &tl::enums::InputPeer) -> Result<&'w Channel, RpcErr> {
    match p {
        tl::enums::InputPeer::Channel(x) => channel_by_id(world, x.channel_id, x.access_hash),
        _ => Err(err(400, "PEER_ID_INVALID")),
    }
}

/// A private channel is readable by its members only.
fn visible(ch: &Channel, me: i64) -> Result<&Channel, RpcErr> {
    if ch.visible_to(me) {
        Ok(ch)
    } else {
        Err(err(400, "CHANNEL_PRIVATE"))
    }
}

fn channel_messages(ch: &Channel, me: i64, messages: Vec<tl::enums::Message>) -> Vec<u8> {
    tl::enums::messages::Messages::ChannelMessages(tl::types::messages::ChannelMessages {
        inexact: false,
        pts: ch.pts,
        count: i32::try_from(ch.messages.len()).unwrap_or(i32::MAX),
        offset_id_offset: None,
        messages,
        topics: Vec::new(),
        chats: vec![objects::channel(ch, Some(me))],
        users: Vec::new(),
    })
    .to_bytes()
}

/// `messages.getHistory`, newest first: ids below `offset_id` (when set),
/// skipping `add_offset`, within (`min_id`, `max_id`), at most `limit` (≤ 100).
fn get_history(world: &World, me: i64, req: &tl::functions::messages::GetHistory) -> Reply {
    let ch = visible(channel_of_peer(world, &req.peer)?, me)?;
    let ids: Vec<i32> = ch
        .messages
        .keys()
        .rev()
        .copied()
        .filter(|&id| id > req.min_id && (req.max_id <= 0 || id < req.max_id))
        .collect();
    let start = if req.offset_id > 0 {
        ids.partition_point(|&id| id >= req.offset_id)
    } else {
        0
    };
    let start = usize::try_from(i64::try_from(start).unwrap_or(0) + i64::from(req.add_offset))
        .unwrap_or(0)
        .min(ids.len());
    let limit = usize::try_from(req.limit.clamp(0, 100)).unwrap_or(0);
    let limit = if limit == 0 { 20 } else { limit };
    let messages = ids[start..]
        .iter()
        .take(limit)
        .map(|id| objects::message(ch.id, &ch.messages[id]))
        .collect();
    Ok(channel_messages(ch, me, messages))
}

fn join(world: &mut World, me: i64, req: &tl::functions::channels::JoinChannel) -> Reply {
    let ch = channel_of(world, &req.channel)?;
    let id = ch.id;
    let member = ch.members.contains(&me);
    if !member {
        visible(ch, me)?;
        let acc = account_of(world, me)?;
        if acc.joined.len() >= MAX_JOINED_CHANNELS {
            return Err(err(400, "CHANNELS_TOO_MUCH"));
        }
        if let Some(acc) = world.accounts.get_mut(&me) {
            acc.joined.insert(id);
        }
        if let Some(ch) = world.channels.get_mut(&id) {
            ch.members.insert(me);
        }
    }
    let ch = &world.channels[&id];
    let updates = updates::updates_body(Vec::new(), vec![objects::channel(ch, Some(me))]);
    Ok(
        tl::enums::messages::ChatInviteJoinResult::Ok(
            tl::types::messages::ChatInviteJoinResultOk { updates },
        )
        .to_bytes(),
    )
}

fn leave(world: &mut World, me: i64, req: &tl::functions::channels::LeaveChannel) -> Reply {
    let id = channel_of(world, &req.channel)?.id;
    let ch = world.channels.get_mut(&id).expect("found above");
    if !ch.members.remove(&me) {
        return Err(err(400, "USER_NOT_PARTICIPANT"));
    }
    if let Some(acc) = world.accounts.get_mut(&me) {
        acc.joined.remove(&id);
    }
    let ch = &world.channels[&id];
    Ok(updates::updates_body(Vec::new(), vec![objects::channel(ch, Some(me))]).to_bytes())
}

/// `messages.forwardMessages` from a channel into a channel the account
/// administers. A `random_id` seen before forwards nothing again: the
/// answer names the message that first forward made.
fn forward(world: &mut World, me: i64, req: &tl::functions::messages::ForwardMessages) -> Reply {
    if req.id.len() != req.random_id.len() || req.id.is_empty() {
        return Err(err(400, "RANDOM_ID_INVALID"));
    }
    let src = visible(channel_of_peer(world, &req.from_peer)?, me)?;
    let src_id = src.id;
    let dst = channel_of_peer(world, &req.to_peer)?;
    let dst_id = dst.id;
    if !dst.admins.contains(&me) {
        return Err(err(403, "CHAT_WRITE_FORBIDDEN"));
    }
    let mut copies = Vec::new();
    for (&mid, &rid) in req.id.iter().zip(&req.random_id) {
        if let Some(&(c, existing)) = account_of(world, me)?.forwarded.get(&rid) {
            copies.push((rid, c, existing, false));
            continue;
        }
        let Some(m) = src.messages.get(&mid) else {
            continue;
        };
        if src.protected || m.noforwards {
            return Err(err(400, "CHAT_FORWARDS_RESTRICTED"));
        }
        copies.push((rid, dst_id, mid, true));
    }
    if copies.is_empty() {
        return Err(err(400, "MESSAGE_ID_INVALID"));
    }
    let mut updates_list = Vec::new();
    let mut albums = std::collections::HashMap::new();
    for (rid, channel, id, fresh) in copies {
        let new_id = if fresh {
            let src = &world.channels[&src_id];
            let m = &src.messages[&id];
            let fwd_from = m.fwd_from.or(Some((src_id, m.id, m.date)));
            let grouped_id = m
                .grouped_id
                .map(|g| *albums.entry(g).or_insert_with(|| g.wrapping_mul(31) ^ rid));
            let copy = Msg {
                id: 0,
                date: now_i32(),
                text: m.text.clone(),
                media: m.media,
                grouped_id,
                edit_date: None,
                fwd_from,
                noforwards: false,
            };
            let bot_api_copy = NewChannelMessage {
                text: Some(m.text.clone()).filter(|t| !t.is_empty()),
                entities: Vec::new(),
                media: m.media,
                media_group_id: grouped_id.map(|g| g.to_string()),
                protected: false,
            };
            let new_id = world
                .append_message(dst_id, copy)
                .ok_or_else(|| err(400, "CHANNEL_INVALID"))?;
            if let Some(bot_api) = &world.bot_api {
                updates::mirror_post(bot_api, dst_id, bot_api_copy);
            }
            if let Some(acc) = world.accounts.get_mut(&me) {
                acc.forwarded.insert(rid, (dst_id, new_id));
            }
            new_id
        } else {
            id
        };
        let ch = &world.channels[&channel];
        updates_list.push(
            tl::types::UpdateMessageId {
                id: new_id,
                random_id: rid,
            }
            .into(),
        );
        if let Some(e) = ch
            .events
            .iter()
            .rev()
            .find(|e| e.kind == EventKind::New(new_id))
            && let Some(u) = updates::event_update(ch, e)
        {
            updates_list.push(u);
        }
    }
    let chats = vec![
        objects::channel(&world.channels[&dst_id], Some(me)),
        objects::channel(&world.channels[&src_id], Some(me)),
    ];
    Ok(updates::updates_body(updates_list, chats).to_bytes())
}

fn send_code(world: &mut World, req: &tl::functions::auth::SendCode) -> Reply {
    let phone = normalize_phone(&req.phone_number);
    if !world.phones.contains_key(&phone) {
        return Err(err(400, "PHONE_NUMBER_INVALID"));
    }
    let code = format!("{:05}", rand::random::<u32>() % 100_000);
    let hash = format!("{:016x}", rand::random::<u64>());
    world.codes.insert(
        phone,
        login::PendingCode {
            phone_code_hash: hash.clone(),
            code,
            sent_at: Instant::now(),
        },
    );
    Ok(tl::enums::auth::SentCode::Code(tl::types::auth::SentCode {
        r#type: tl::types::auth::SentCodeTypeApp { length: 5 }.into(),
        phone_code_hash: hash,
        next_type: None,
        timeout: None,
    })
    .to_bytes())
}

pub(crate) fn normalize_phone(p: &str) -> String {
    p.chars().filter(char::is_ascii_digit).collect()
}

fn authorization(world: &World, account: i64) -> Reply {
    Ok(
        tl::enums::auth::Authorization::Authorization(tl::types::auth::Authorization {
            setup_password_required: false,
            otherwise_relogin_days: None,
            tmp_sessions: None,
            future_auth_token: None,
            user: objects::user(account_of(world, account)?, true),
        })
        .to_bytes(),
    )
}

fn sign_in(world: &mut World, ctx: &CallCtx, req: &tl::functions::auth::SignIn) -> Reply {
    let phone = normalize_phone(&req.phone_number);
    let ttl = world.settings.code_ttl;
    let Some(pending) = world.codes.get(&phone) else {
        return Err(err(400, "PHONE_CODE_EXPIRED"));
    };
    if pending.phone_code_hash != req.phone_code_hash {
        return Err(err(400, "PHONE_CODE_HASH_INVALID"));
    }
    if pending.sent_at.elapsed() > ttl {
        world.codes.remove(&phone);
        return Err(err(400, "PHONE_CODE_EXPIRED"));
    }
    if req.phone_code.as_deref() != Some(pending.code.as_str()) {
        return Err(err(400, "PHONE_CODE_INVALID"));
    }
    world.codes.remove(&phone);
    let account = world.phones[&phone];
    let has_password = world.accounts[&account].password.is_some();
    let key = world
        .keys
        .get_mut(&ctx.key_id)
        .ok_or_else(|| err(401, "AUTH_KEY_UNREGISTERED"))?;
    if has_password {
        key.password_pending = Some(account);
        return Err(err(401, "SESSION_PASSWORD_NEEDED"));
    }
    key.account = Some(account);
    authorization(world, account)
}

/// The account whose password this key may check: the signed-in one, or
/// the one a code sign-in left waiting for its password.
fn password_account(world: &World, ctx: &CallCtx, account: Option<i64>) -> Option<i64> {
    account.or_else(|| world.keys.get(&ctx.key_id)?.password_pending)
}

fn get_password(world: &mut World, ctx: &CallCtx, account: Option<i64>) -> Reply {
    let account =
        password_account(world, ctx, account).ok_or_else(|| err(401, "AUTH_KEY_UNREGISTERED"))?;
    let acc = world
        .accounts
        .get_mut(&account)
        .ok_or_else(|| err(401, "AUTH_KEY_UNREGISTERED"))?;
    let mut secure_random = vec![0u8; 256];
    rand::fill(&mut secure_random[..]);
    let new_algo = tl::enums::PasswordKdfAlgo::Unknown;
    let new_secure_algo = tl::enums::SecurePasswordKdfAlgo::Unknown;
    let password = match &acc.password {
        None => tl::types::account::Password {
            has_recovery: false,
            has_secure_values: false,
            has_password: false,
            current_algo: None,
            srp_b: None,
            srp_id: None,
            hint: None,
            email_unconfirmed_pattern: None,
            new_algo,
            new_secure_algo,
            secure_random,
            pending_reset_date: None,
            login_email_pattern: None,
        },
        Some(verifier) => {
            let srp = verifier.start();
            let out = tl::types::account::Password {
                has_recovery: false,
                has_secure_values: false,
                has_password: true,
                current_algo: Some(
                    tl::types::PasswordKdfAlgoSha256Sha256Pbkdf2Hmacsha512iter100000Sha256ModPow {
                        salt1: verifier.salt1.clone(),
                        salt2: verifier.salt2.clone(),
                        g: login::G,
                        p: login::p_bytes(),
                    }
                    .into(),
                ),
                srp_b: Some(srp.g_b.clone()),
                srp_id: Some(srp.srp_id),
                hint: verifier.hint.clone(),
                email_unconfirmed_pattern: None,
                new_algo,
                new_secure_algo,
                secure_random,
                pending_reset_date: None,
                login_email_pattern: None,
            };
            acc.pending_srp = Some(srp);
            out
        }
    };
    Ok(tl::enums::account::Password::Password(password).to_bytes())
}

fn check_password(
    world: &mut World,
    ctx: &CallCtx,
    account: Option<i64>,
    req: &tl::functions::auth::CheckPassword,
) -> Reply {
    let account =
        password_account(world, ctx, account).ok_or_else(|| err(401, "AUTH_KEY_UNREGISTERED"))?;
    let tl::enums::InputCheckPasswordSrp::Srp(srp) = &req.password else {
        return Err(err(400, "PASSWORD_HASH_INVALID"));
    };
    let acc = account_of(world, account)?;
    let (Some(verifier), Some(pending)) = (&acc.password, &acc.pending_srp) else {
        return Err(err(400, "SRP_ID_INVALID"));
    };
    if pending.srp_id != srp.srp_id {
        return Err(err(400, "SRP_ID_INVALID"));
    }
    if !verifier.verify(pending, &srp.a, &srp.m1) {
        return Err(err(400, "PASSWORD_HASH_INVALID"));
    }
    if let Some(acc) = world.accounts.get_mut(&account) {
        acc.pending_srp = None;
    }
    if let Some(k) = world.keys.get_mut(&ctx.key_id) {
        k.account = Some(account);
        k.password_pending = None;
    }
    authorization(world, account)
}
