//! The RPC dispatcher: unwraps `invokeWithLayer` / `initConnection` /
//! `invokeWithoutUpdates`, decides who is calling (the account signed in on
//! the auth key, if any), applies the session rules (`SESSION_REVOKED`,
//! `AUTH_KEY_DUPLICATED`, `AUTH_KEY_UNREGISTERED`) and flood limits, runs
//! the call against the world, and counts the call and its error.
//!
//! The calls themselves live in the submodules, by concern: `peers.rs`
//! (`users.*`, `contacts.resolveUsername`), `difference.rs` (`updates.*`),
//! `channels.rs` (`channels.*`, `messages.getHistory`,
//! `messages.forwardMessages`), `auth.rs` (`auth.*`, `account.getPassword`).

mod auth;
mod channels;
mod difference;
mod peers;

pub(crate) use auth::normalize_phone;
use auth::{check_password, get_password, send_code, sign_in};
use channels::{forward, get_history, join, leave};
use difference::{get_channel_difference, get_difference};
pub(crate) use peers::username_valid;
use peers::{get_users, resolve_username};

use std::net::SocketAddr;
use std::time::Instant;

use grammers_tl_types::{self as tl, Deserializable, Identifiable, Serializable};
use tokio::sync::mpsc;

use super::flood::Verdict;
use super::objects;
use super::session::{constructor, rpc_error};
use super::updates::now_i32;
use super::world::{Account, Channel, Push, PushTarget, World};

/// Who is calling, on which connection.
pub(crate) struct CallCtx {
    pub(crate) key_id: i64,
    pub(crate) conn_id: u64,
    /// The data centre the call reached.
    pub(crate) dc_id: i32,
    /// Every data centre of the fake (for `help.getConfig`).
    pub(crate) dcs: Vec<(i32, SocketAddr)>,
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
    if let Some(a) = account {
        world.holders.call(a, ctx.conn_id);
    }
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
    // A call that decrypted under a key live on another connection burns
    // the key itself, not only this connection: "Concurrent usage of the
    // current session from multiple connections was detected, the current
    // session was invalidated by the server" (406 AUTH_KEY_DUPLICATED in
    // Telegram's error list, <https://core.telegram.org/api/errors>, as
    // mirrored by Pyrogram's `not_acceptable_406` errors page); Telethon's
    // `telethon_generator/data/errors.csv`: the key "was used under two
    // different IP addresses simultaneously, and can no longer be used".
    if ctx.duplicated
        && let Some(k) = world.keys.get_mut(&ctx.key_id)
    {
        k.burned = true;
    }
    let Some(key) = world.keys.get(&ctx.key_id) else {
        return (None, Err(err(401, "AUTH_KEY_UNREGISTERED")));
    };
    let account = key.account;
    if key.revoked {
        return (account, Err(err(401, "SESSION_REVOKED")));
    }
    // A burned key answers every later call, on any connection (the first
    // one included, and new ones), with 406 `AUTH_KEY_DUPLICATED` again:
    // the key "can no longer be used" (Telethon `errors.csv`) and the user
    // "must delete your session file and log in again" (Pyrogram's
    // `AuthKeyDuplicated`). Which error a burned key's later calls get is not
    // documented; 406 again was chosen over `AUTH_KEY_UNREGISTERED` because it
    // keeps the cause visible, and both end the session in every client.
    if ctx.duplicated || key.burned {
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
    let escalating = world.settings.escalating_limits.get(method).cloned();
    let Some(acc) = world.accounts.get_mut(&account) else {
        return (None, Err(err(401, "AUTH_KEY_UNREGISTERED")));
    };
    if !acc.pushes.iter().any(|t| t.conn_id == ctx.conn_id) {
        acc.pushes.push(PushTarget {
            conn_id: ctx.conn_id,
            tx: ctx.push_tx.clone(),
        });
    }
    if acc.frozen && !frozen_allows(id) {
        return (Some(account), Err(err(420, "FROZEN_METHOD_INVALID")));
    }
    let now = Instant::now();
    let state = acc.flood.entry(method.to_owned()).or_default();
    // The sliding window first; a call it lets through meets the
    // escalating limit too. A wait from either blocks both.
    let mut verdict = limit.map_or(Verdict::Allowed, |l| state.check(l, now));
    if verdict == Verdict::Allowed
        && let Some(e) = &escalating
    {
        verdict = state.check_escalating(e, now);
    }
    match verdict {
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
    (Some(account), dispatch(world, ctx, Some(account), id, body))
}

/// What a frozen account may still call. Telegram's frozen accounts are
/// read-only: the owner "can view chats but can't send messages, react, or
/// take other actions — except messaging @SpamBot"
/// (samirb.com.np, "How to appeal a frozen account on Telegram"; the same
/// in Unigram's source as reported by world-news.vip/?p=1389: "able to
/// access their account, but … not able to send messages or take any
/// actions"), and clients report the refusals as
/// `420 FROZEN_METHOD_INVALID` (telegramvault.org, "Telegram Flood Wait
/// Recovery Playbook 2026", which lists it with the account-level bans,
/// not the passing flood waits). No source lists the methods one by one:
/// modelled as reading (history, messages, channels, updates, users) and
/// signing out allowed, everything else — look-ups, joins, leaves,
/// forwards — refused.
fn frozen_allows(id: u32) -> bool {
    use tl::functions as f;
    [
        f::help::GetConfig::CONSTRUCTOR_ID,
        f::users::GetUsers::CONSTRUCTOR_ID,
        f::updates::GetState::CONSTRUCTOR_ID,
        f::updates::GetDifference::CONSTRUCTOR_ID,
        f::updates::GetChannelDifference::CONSTRUCTOR_ID,
        f::messages::GetHistory::CONSTRUCTOR_ID,
        f::channels::GetMessages::CONSTRUCTOR_ID,
        f::channels::GetChannels::CONSTRUCTOR_ID,
        f::channels::GetFullChannel::CONSTRUCTOR_ID,
        f::auth::LogOut::CONSTRUCTOR_ID,
    ]
    .contains(&id)
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
            Ok(objects::config(&ctx.dcs, ctx.dc_id, now_i32()).to_bytes())
        }
        f::users::GetUsers::CONSTRUCTOR_ID => get_users(world, me, &args(body)?),
        f::updates::GetState::CONSTRUCTOR_ID => Ok(state(world, me).to_bytes()),
        f::updates::GetDifference::CONSTRUCTOR_ID => get_difference(world, me, &args(body)?),
        f::updates::GetChannelDifference::CONSTRUCTOR_ID => {
            get_channel_difference(world, me, &args(body)?)
        }
        f::contacts::ResolveUsername::CONSTRUCTOR_ID => resolve_username(world, me, &args(body)?),
        f::channels::GetChannels::CONSTRUCTOR_ID => {
            let req: f::channels::GetChannels = args(body)?;
            let mut chats = Vec::new();
            for c in &req.id {
                let ch = channel_of(world, me, c)?;
                chats.push(objects::channel(ch, Some(me)));
            }
            Ok(tl::enums::messages::Chats::Chats(tl::types::messages::Chats { chats }).to_bytes())
        }
        f::channels::GetFullChannel::CONSTRUCTOR_ID => {
            let req: f::channels::GetFullChannel = args(body)?;
            let ch = visible(channel_of(world, me, &req.channel)?, me)?;
            Ok(
                tl::enums::messages::ChatFull::Full(tl::types::messages::ChatFull {
                    full_chat: objects::channel_full(ch),
                    chats: vec![objects::channel(ch, Some(me))],
                    users: Vec::new(),
                })
                .to_bytes(),
            )
        }
        f::messages::GetHistory::CONSTRUCTOR_ID => {
            let req: f::messages::GetHistory = args(body)?;
            let reply = get_history(world, me, &req);
            // Counted per channel for the benchmarks (which channels a
            // restart read, and how often): no Telegram behaviour, a tally.
            if reply.is_ok()
                && let tl::enums::InputPeer::Channel(c) = &req.peer
                && let Some(acc) = world.accounts.get_mut(&me)
            {
                *acc.history_pages.entry(c.channel_id).or_default() += 1;
            }
            reply
        }
        f::channels::GetMessages::CONSTRUCTOR_ID => {
            let req: f::channels::GetMessages = args(body)?;
            let ch = visible(channel_of(world, me, &req.channel)?, me)?;
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
        f::auth::SendCode::CONSTRUCTOR_ID => send_code(world, ctx, &args(body)?),
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

/// The account's common update state (`Account::seq`): pts 1 and qts 0
/// (no private chats or secret chats here), its seq and date.
fn state(world: &World, me: i64) -> tl::enums::updates::State {
    let (seq, date) = world
        .accounts
        .get(&me)
        .map_or((0, now_i32()), |a| (a.seq, a.date));
    tl::types::updates::State {
        pts: 1,
        qts: 0,
        date,
        seq,
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

/// The channel `id` if `access_hash` is the one `me` was given: an access
/// hash belongs to the account that received it (core.telegram.org/api/peers,
/// "Access hash"; see `Channel::access_hash`). Anything else — an unknown id,
/// another account's hash — is `CHANNEL_INVALID`, as the docs list it for
/// `channels.joinChannel`, `messages.getHistory` and the other calls taking
/// an `InputChannel` ("The provided channel is invalid").
fn channel_by_id(world: &World, me: i64, id: i64, access_hash: i64) -> Result<&Channel, RpcErr> {
    match world.channels.get(&id) {
        Some(ch) if ch.access_hash(Some(me)) == access_hash => Ok(ch),
        _ => Err(err(400, "CHANNEL_INVALID")),
    }
}

fn channel_of<'w>(
    world: &'w World,
    me: i64,
    c: &tl::enums::InputChannel,
) -> Result<&'w Channel, RpcErr> {
    match c {
        tl::enums::InputChannel::Channel(x) => {
            channel_by_id(world, me, x.channel_id, x.access_hash)
        }
        _ => Err(err(400, "CHANNEL_INVALID")),
    }
}

fn channel_of_peer<'w>(
    world: &'w World,
    me: i64,
    p: &tl::enums::InputPeer,
) -> Result<&'w Channel, RpcErr> {
    match p {
        tl::enums::InputPeer::Channel(x) => channel_by_id(world, me, x.channel_id, x.access_hash),
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
