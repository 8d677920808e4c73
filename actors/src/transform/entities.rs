//! How a message's entities (bold, links, …) follow the edits the
//! replacement rules made to its text, and how text and entities are cut
//! to Telegram's length limit. Offsets are UTF-16 units, as in the Bot API.

use super::utf16_len;
use crate::model::MessageEntity;

/// One edit in a text: the UTF-16 range `[start, start + old)` became `new` units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Edit {
    pub(super) start: usize,
    pub(super) old: usize,
    pub(super) new: usize,
}

/// Where an entity's start moves: a start inside a replaced range moves past
/// the replacement (the entity loses the replaced part).
fn map_start(a: usize, edits: &[Edit]) -> usize {
    let mut delta: isize = 0;
    for e in edits {
        if e.start + e.old <= a && !(e.old == 0 && e.start == a) {
            delta += e.new as isize - e.old as isize;
        } else if e.start < a {
            // Strictly inside the edit.
            return (e.start as isize + delta) as usize + e.new;
        } else {
            break;
        }
    }
    (a as isize + delta) as usize
}

/// Where an entity's end moves: an end inside a replaced range moves before
/// it; an end exactly at a range's end keeps the whole replacement.
fn map_end(b: usize, edits: &[Edit]) -> usize {
    let mut delta: isize = 0;
    for e in edits {
        if e.start + e.old <= b && e.start < b {
            delta += e.new as isize - e.old as isize;
        } else if e.start < b {
            return (e.start as isize + delta) as usize;
        } else {
            break;
        }
    }
    (b as isize + delta) as usize
}

/// Entities mapped through `edits` (sorted, not overlapping, in the old
/// text's UTF-16 units); those left empty are dropped.
pub(super) fn map_entities(entities: &[MessageEntity], edits: &[Edit]) -> Vec<MessageEntity> {
    entities
        .iter()
        .filter_map(|e| {
            let a = map_start(e.offset, edits);
            let b = map_end(e.offset + e.length, edits);
            (b > a).then(|| MessageEntity {
                kind: e.kind.clone(),
                offset: a,
                length: b - a,
            })
        })
        .collect()
}

/// Cuts `text` to `limit` UTF-16 units ending in "…", never inside a
/// surrogate pair; entities are cut to the kept text.
pub(super) fn clip(
    text: &str,
    entities: Vec<MessageEntity>,
    limit: usize,
) -> (String, Vec<MessageEntity>) {
    if utf16_len(text) <= limit {
        return (text.to_owned(), entities);
    }
    let keep = limit.saturating_sub(1); // room for "…" (one unit)
    let mut units = 0;
    let mut end = 0;
    for (i, c) in text.char_indices() {
        if units + c.len_utf16() > keep {
            break;
        }
        units += c.len_utf16();
        end = i + c.len_utf8();
    }
    let mut out = text[..end].to_owned();
    out.push('…');
    let entities = entities
        .into_iter()
        .filter_map(|mut e| {
            if e.offset >= units {
                return None;
            }
            e.length = e.length.min(units - e.offset);
            Some(e)
        })
        .collect();
    (out, entities)
}
