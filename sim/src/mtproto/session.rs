//! The encrypted envelope of MTProto 2.0, server side: the plaintext
//! layout (`salt | session_id | msg_id | seq_no | length | body | padding`),
//! containers, `gzip_packed`, server message ids (time-based, ≡ 1 mod 4 for
//! responses and 3 otherwise, strictly increasing), sequence numbers
//! (2·n+1 for content-related messages, 2·n otherwise), server salts, and
//! the checks that answer `bad_msg_notification`.

use std::io::{Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use grammers_tl_types::{self as tl, Serializable};
use sha2::{Digest, Sha256};

use super::world::RecentIds;

pub(crate) const MSG_CONTAINER: u32 = 0x73f1_f8dc;
pub(crate) const GZIP_PACKED: u32 = 0x3072_cfa1;
pub(crate) const RPC_RESULT: u32 = 0xf35c_6d01;

/// Responses larger than this are sent `gzip_packed` inside `rpc_result`.
const GZIP_THRESHOLD: usize = 512;
/// A salt is valid for this long; the previous and next ones are accepted.
const SALT_PERIOD_SECS: i64 = 1800;

/// One message of the envelope.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct InMessage {
    pub(crate) msg_id: i64,
    pub(crate) seq_no: i32,
    pub(crate) body: Vec<u8>,
}

/// A decrypted client packet.
#[derive(Debug)]
pub(crate) struct Envelope {
    pub(crate) salt: i64,
    pub(crate) session_id: i64,
    pub(crate) message: InMessage,
}

/// The plaintext is not a valid envelope: the connection is closed.
#[derive(Debug)]
pub(crate) struct Malformed(pub(crate) &'static str);

fn read_i64(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn read_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub(crate) fn constructor(body: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(body.get(..4)?.try_into().ok()?))
}

pub(crate) fn parse_envelope(pt: &[u8]) -> Result<Envelope, Malformed> {
    let salt = read_i64(pt, 0).ok_or(Malformed("short plaintext"))?;
    let session_id = read_i64(pt, 8).ok_or(Malformed("short plaintext"))?;
    let msg_id = read_i64(pt, 16).ok_or(Malformed("short plaintext"))?;
    let seq_no = read_i32(pt, 24).ok_or(Malformed("short plaintext"))?;
    let len = read_i32(pt, 28).ok_or(Malformed("short plaintext"))?;
    let len = usize::try_from(len).map_err(|_| Malformed("negative message length"))?;
    if len % 4 != 0 || 32 + len > pt.len() {
        return Err(Malformed("message length out of range"));
    }
    let padding = pt.len() - 32 - len;
    if !(12..=1024).contains(&padding) {
        return Err(Malformed("padding not within 12..1024 bytes"));
    }
    Ok(Envelope {
        salt,
        session_id,
        message: InMessage {
            msg_id,
            seq_no,
            body: pt[32..32 + len].to_vec(),
        },
    })
}

/// The messages of a `msg_container` body.
pub(crate) fn parse_container(body: &[u8]) -> Result<Vec<InMessage>, Malformed> {
    let count = read_i32(body, 4).ok_or(Malformed("short container"))?;
    let count = usize::try_from(count).map_err(|_| Malformed("negative container count"))?;
    if count > 1024 {
        return Err(Malformed("container too long"));
    }
    let mut at = 8;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let msg_id = read_i64(body, at).ok_or(Malformed("short container"))?;
        let seq_no = read_i32(body, at + 8).ok_or(Malformed("short container"))?;
        let len = read_i32(body, at + 12).ok_or(Malformed("short container"))?;
        let len = usize::try_from(len).map_err(|_| Malformed("negative inner length"))?;
        let inner = body
            .get(at + 16..at + 16 + len)
            .ok_or(Malformed("inner message past the container"))?;
        out.push(InMessage {
            msg_id,
            seq_no,
            body: inner.to_vec(),
        });
        at += 16 + len;
    }
    Ok(out)
}

/// Inflates a `gzip_packed` body (at most 16 MiB).
pub(crate) fn gunzip(body: &[u8]) -> Result<Vec<u8>, Malformed> {
    let mut cursor = tl::Cursor::from_slice(body.get(4..).ok_or(Malformed("short gzip"))?);
    let packed = <Vec<u8> as tl::Deserializable>::deserialize(&mut cursor)
        .map_err(|_| Malformed("bad gzip_packed bytes"))?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&packed[..])
        .take(16 << 20)
        .read_to_end(&mut out)
        .map_err(|_| Malformed("bad gzip data"))?;
    Ok(out)
}

fn gzip_packed(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("writing to a Vec");
    let packed = enc.finish().expect("writing to a Vec");
    let mut out = GZIP_PACKED.to_le_bytes().to_vec();
    packed.serialize(&mut out);
    out
}

/// `rpc_result req_msg_id result`, the result gzip-packed when large.
pub(crate) fn rpc_result(req_msg_id: i64, result: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + result.len());
    out.extend_from_slice(&RPC_RESULT.to_le_bytes());
    out.extend_from_slice(&req_msg_id.to_le_bytes());
    if result.len() > GZIP_THRESHOLD {
        let packed = gzip_packed(result);
        if packed.len() < result.len() {
            out.extend_from_slice(&packed);
            return out;
        }
    }
    out.extend_from_slice(result);
    out
}

/// `rpc_error` as the result of an RPC.
pub(crate) fn rpc_error(code: i32, message: &str) -> Vec<u8> {
    tl::enums::RpcError::Error(tl::types::RpcError {
        error_code: code,
        error_message: message.to_owned(),
    })
    .to_bytes()
}

pub(crate) fn unix_now() -> (i64, u32) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    (
        i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
        now.subsec_nanos(),
    )
}

/// The server salt of `key_id` for the salt period `slot`.
pub(crate) fn salt_for(key_id: i64, slot: i64) -> i64 {
    let d: [u8; 32] = Sha256::new()
        .chain_update(b"kuryer-sim salt")
        .chain_update(key_id.to_le_bytes())
        .chain_update(slot.to_le_bytes())
        .finalize()
        .into();
    i64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

pub(crate) fn current_slot() -> i64 {
    unix_now().0 / SALT_PERIOD_SECS
}

/// Whether `salt` is the current salt of the key, or the previous or next.
pub(crate) fn salt_ok(key_id: i64, salt: i64) -> bool {
    let slot = current_slot();
    (slot - 1..=slot + 1).any(|s| salt_for(key_id, s) == salt)
}

/// `future_salts` for `get_future_salts num`: consecutive periods from now.
pub(crate) fn future_salts(key_id: i64, req_msg_id: i64, num: i32) -> Vec<u8> {
    let slot = current_slot();
    let n = i64::from(num.clamp(1, 64));
    let now = i32::try_from(unix_now().0).unwrap_or(i32::MAX);
    let salts: Vec<tl::types::FutureSalt> = (slot..slot + n)
        .map(|s| tl::types::FutureSalt {
            valid_since: i32::try_from(s * SALT_PERIOD_SECS).unwrap_or(i32::MAX),
            valid_until: i32::try_from((s + 1) * SALT_PERIOD_SECS + 60).unwrap_or(i32::MAX),
            salt: salt_for(key_id, s),
        })
        .collect();
    tl::enums::FutureSalts::Salts(tl::types::FutureSalts {
        req_msg_id,
        now,
        salts: tl::RawVec(salts),
    })
    .to_bytes()
}

/// Why a client message is refused with `bad_msg_notification`.
pub(crate) fn check_msg_id(msg_id: i64) -> Option<i32> {
    if msg_id % 4 != 0 {
        return Some(18);
    }
    let now = unix_now().0;
    let t = msg_id >> 32;
    if t < now - 300 {
        return Some(16);
    }
    if t > now + 30 {
        return Some(17);
    }
    None
}

/// A message the server sends.
pub(crate) struct OutMessage {
    pub(crate) body: Vec<u8>,
    /// A response to a client message (msg_id ≡ 1 mod 4) or not (≡ 3).
    pub(crate) response: bool,
    /// Content-related (odd seq_no, the client acknowledges it).
    pub(crate) content: bool,
}

/// One client session (one `session_id`) as the server sees it.
pub(crate) struct ServerSession {
    pub(crate) session_id: i64,
    last_msg_id: i64,
    content_sent: i32,
    /// `new_session_created` was sent.
    pub(crate) announced: bool,
    pub(crate) seen: RecentIds,
    pub(crate) unique_id: i64,
}

impl ServerSession {
    pub(crate) fn new(session_id: i64) -> Self {
        Self {
            session_id,
            last_msg_id: 0,
            content_sent: 0,
            announced: false,
            seen: RecentIds::default(),
            unique_id: rand::random(),
        }
    }

    fn next_msg_id(&mut self, response: bool) -> i64 {
        let (secs, nanos) = unix_now();
        let residue = if response { 1 } else { 3 };
        let mut id = ((secs << 32) | (i64::from(nanos) << 2)) & !3 | residue;
        if id <= self.last_msg_id {
            id = (self.last_msg_id & !3) | residue;
            if id <= self.last_msg_id {
                id += 4;
            }
        }
        self.last_msg_id = id;
        id
    }

    fn next_seq(&mut self, content: bool) -> i32 {
        if content {
            self.content_sent += 1;
            self.content_sent * 2 - 1
        } else {
            self.content_sent * 2
        }
    }

    /// The plaintext of one packet carrying `messages` (a container when
    /// more than one), before padding and encryption.
    pub(crate) fn packet(&mut self, salt: i64, messages: Vec<OutMessage>) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&salt.to_le_bytes());
        out.extend_from_slice(&self.session_id.to_le_bytes());
        let count = messages.len();
        let mut inner = Vec::new();
        let mut any_response = false;
        for m in messages {
            any_response |= m.response;
            let id = self.next_msg_id(m.response);
            let seq = self.next_seq(m.content);
            write_message(&mut inner, id, seq, &m.body);
        }
        if count == 1 {
            out.extend_from_slice(&inner);
            return out;
        }
        let id = self.next_msg_id(any_response);
        let seq = self.next_seq(false);
        let mut body = MSG_CONTAINER.to_le_bytes().to_vec();
        body.extend_from_slice(
            &i32::try_from(count)
                .expect("few messages a packet")
                .to_le_bytes(),
        );
        body.extend_from_slice(&inner);
        write_message(&mut out, id, seq, &body);
        out
    }
}

fn write_message(out: &mut Vec<u8>, msg_id: i64, seq_no: i32, body: &[u8]) {
    out.extend_from_slice(&msg_id.to_le_bytes());
    out.extend_from_slice(&seq_no.to_le_bytes());
    out.extend_from_slice(
        &i32::try_from(body.len())
            .expect("messages below 2 GiB")
            .to_le_bytes(),
    );
    out.extend_from_slice(body);
}
