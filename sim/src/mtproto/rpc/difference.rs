//! `updates.getDifference` and `updates.getChannelDifference`: what a client
//! missed, from the accounts' dropped pushes and the channels' event logs.

use grammers_tl_types::{self as tl, Serializable};

use super::{Reply, channel_of, state, visible};
use crate::mtproto::objects;
use crate::mtproto::updates::{self, now_i32};
use crate::mtproto::world::World;

/// `updates.getDifference` from the client's state: the member channels
/// whose pushes were dropped, and those with an event after the client's
/// `date`, each as `updateChannelTooLong` (the client then asks
/// getChannelDifference from its own pts for it; core.telegram.org/api/updates,
/// "Recovering gaps"). A client at its current seq and date gets
/// `differenceEmpty`; one that restarted from an old state (its login-time
/// one) is named every channel changed since. Channels named are counted
/// per account (`AccountStats::difference_channels`).
pub(super) fn get_difference(
    world: &mut World,
    me: i64,
    req: &tl::functions::updates::GetDifference,
) -> Reply {
    let Some(acc) = world.accounts.get_mut(&me) else {
        return Ok(tl::types::updates::DifferenceEmpty {
            date: now_i32(),
            seq: 0,
        }
        .into_enum_bytes());
    };
    let mut named: std::collections::BTreeSet<i64> = std::mem::take(&mut acc.missed_channels);
    let joined: Vec<i64> = acc.joined.iter().copied().collect();
    let (seq, date) = (acc.seq, acc.date);
    for c in joined {
        if world
            .channels
            .get(&c)
            .is_some_and(|ch| ch.last_event > req.date && ch.members.contains(&me))
        {
            named.insert(c);
        }
    }
    if named.is_empty() {
        return Ok(tl::types::updates::DifferenceEmpty { date, seq }.into_enum_bytes());
    }
    if let Some(acc) = world.accounts.get_mut(&me) {
        acc.difference_channels += named.len() as u64;
    }
    let mut other_updates = Vec::new();
    let mut chats = Vec::new();
    for c in named {
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
            state: state(world, me),
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

pub(super) fn get_channel_difference(
    world: &World,
    me: i64,
    req: &tl::functions::updates::GetChannelDifference,
) -> Reply {
    let ch = channel_of(world, me, &req.channel)?;
    if !ch.members.contains(&me) && !ch.admins.contains(&me) {
        visible(ch, me)?;
    }
    let client_limit = usize::try_from(req.limit.max(1)).unwrap_or(1);
    let limit = client_limit.min(world.settings.channel_difference_limit);
    Ok(updates::channel_difference(ch, me, req.pts, limit).to_bytes())
}
