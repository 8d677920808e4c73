//! `users.getUsers` and `contacts.resolveUsername`: who is who.

use grammers_tl_types::{self as tl, Serializable};

use super::{Reply, account_of, err};
use crate::mtproto::objects;
use crate::mtproto::world::World;

pub(super) fn get_users(world: &World, me: i64, req: &tl::functions::users::GetUsers) -> Reply {
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

/// Telegram's username rule: 5–32 of `a-z0-9_`, starting with a letter, not
/// ending with `_`.
pub(crate) fn username_valid(name: &str) -> bool {
    let b = name.as_bytes();
    (5..=32).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 1] != b'_'
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

pub(super) fn resolve_username(
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
