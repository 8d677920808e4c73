//! The key exchange, server side: how a client with no auth key gets one
//! (source: <https://core.telegram.org/mtproto/auth_key>, steps 1–9, and
//! <https://core.telegram.org/mtproto/description#unencrypted-message> for
//! the plain messages that carry it). The client this is written against is
//! grammers' own, `grammers-mtproto` 0.11 `src/authentication.rs` (`step1`,
//! `step2`, `step3`, `create_key`) over `src/mtp/plain.rs`:
//!
//! 1. `req_pq_multi nonce` → `resPQ nonce server_nonce pq fingerprints`: pq
//!    a product of two distinct primes below 2³², sent as 8 bytes big endian
//!    (grammers refuses any other length), the fingerprint of the fake's own
//!    RSA key (`rsa_key.rs`);
//! 2. `req_DH_params` with `p < q` and `encrypted_data` =
//!    RSA(RSA_PAD(p_q_inner_data)) → decrypted with the private key, the pad
//!    undone and its SHA-256 checked ("4.1) RSA_PAD"), every field checked
//!    against step 1 → `server_DH_params_ok` carrying `server_DH_inner_data`
//!    (g = 3, Telegram's 2048-bit safe prime, g_a, server time) with its
//!    SHA-1 in front, AES-256-IGE under the key and iv made from
//!    `new_nonce` and `server_nonce` (grammers-crypto's
//!    `generate_key_data_from_nonce`, the same derivation on both sides);
//! 3. `set_client_DH_params` → `client_DH_inner_data` decrypted, its SHA-1
//!    checked, g_b checked to lie in (2^{2048-64}, dh_prime − 2^{2048-64})
//!    ("IMPORTANT: … both sides are to check"), auth_key = g_b^a mod
//!    dh_prime → `dh_gen_ok` with `new_nonce_hash1`, or `dh_gen_retry`
//!    (`new_nonce_hash2`) when the new key's id is already taken, as the
//!    page says the server may.
//!
//! Anything else — a step out of order, a nonce that does not match, a pad
//! whose hash fails, a g_b out of range — ends the exchange: the caller
//! closes the connection. Telegram's page does not say what the server
//! sends then; closing is what a client sees from it in practice (no
//! public source for the exact behaviour).
//!
//! The first server salt is `new_nonce[0..8] XOR server_nonce[0..8]`
//! (step 9 of the page), accepted on the key's first connection.

use grammers_crypto::AuthKey;
use grammers_tl_types::{self as tl, Cursor, Deserializable, Identifiable, Serializable};
use num_bigint::BigUint;
use sha1::{Digest, Sha1};
use sha2::Sha256;

use super::crypto::ServerKey;
use super::login;
use super::rsa_key;
use super::session::constructor;

/// Why an exchange ended without a key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refused(pub(crate) &'static str);

/// What one plain message produced.
pub(crate) enum Step {
    /// Send this plain message body back.
    Reply(Vec<u8>),
    /// `dh_gen_ok`: send it, and the key now exists.
    Done {
        reply: Vec<u8>,
        key: Box<ServerKey>,
        first_salt: i64,
    },
}

enum Stage {
    Start,
    /// `resPQ` sent.
    SentPq {
        nonce: [u8; 16],
        server_nonce: [u8; 16],
        p: u64,
        q: u64,
    },
    /// `server_DH_params_ok` sent.
    SentDh {
        nonce: [u8; 16],
        server_nonce: [u8; 16],
        new_nonce: [u8; 32],
        a: BigUint,
    },
}

/// One client's exchange (on one connection).
pub(crate) struct Exchange {
    stage: Stage,
}

impl Exchange {
    pub(crate) fn new() -> Self {
        Self {
            stage: Stage::Start,
        }
    }

    /// One plain message body from the client. `taken` says whether an
    /// auth key id is already in use.
    pub(crate) fn on_message(
        &mut self,
        body: &[u8],
        taken: impl Fn(i64) -> bool,
    ) -> Result<Step, Refused> {
        let id = constructor(body).ok_or(Refused("empty message"))?;
        let stage = std::mem::replace(&mut self.stage, Stage::Start);
        match (id, stage) {
            (tl::functions::ReqPqMulti::CONSTRUCTOR_ID, _) => {
                let req = tl::functions::ReqPqMulti::from_bytes(&body[4..])
                    .map_err(|_| Refused("malformed req_pq_multi"))?;
                Ok(Step::Reply(self.res_pq(req.nonce)))
            }
            (
                tl::functions::ReqDhParams::CONSTRUCTOR_ID,
                Stage::SentPq {
                    nonce,
                    server_nonce,
                    p,
                    q,
                },
            ) => {
                let req = tl::functions::ReqDhParams::from_bytes(&body[4..])
                    .map_err(|_| Refused("malformed req_DH_params"))?;
                let new_nonce = check_req_dh(&req, nonce, server_nonce, p, q)?;
                let (reply, a) = server_dh_params(nonce, server_nonce, &new_nonce);
                self.stage = Stage::SentDh {
                    nonce,
                    server_nonce,
                    new_nonce,
                    a,
                };
                Ok(Step::Reply(reply))
            }
            (
                tl::functions::SetClientDhParams::CONSTRUCTOR_ID,
                Stage::SentDh {
                    nonce,
                    server_nonce,
                    new_nonce,
                    a,
                },
            ) => {
                let req = tl::functions::SetClientDhParams::from_bytes(&body[4..])
                    .map_err(|_| Refused("malformed set_client_DH_params"))?;
                finish(&req, nonce, server_nonce, &new_nonce, &a, taken)
            }
            _ => Err(Refused("key exchange message out of order")),
        }
    }

    fn res_pq(&mut self, nonce: [u8; 16]) -> Vec<u8> {
        let server_nonce: [u8; 16] = rand::random();
        let (p, q) = two_primes();
        self.stage = Stage::SentPq {
            nonce,
            server_nonce,
            p,
            q,
        };
        tl::enums::ResPq::Pq(tl::types::ResPq {
            nonce,
            server_nonce,
            pq: (p * q).to_be_bytes().to_vec(),
            server_public_key_fingerprints: vec![rsa_key::fingerprint()],
        })
        .to_bytes()
    }
}

/// Two distinct primes p < q in [2³⁰, 2³¹], so that pq fits the 8 bytes
/// grammers insists on and factorizing it is quick (Telegram's pq is of
/// this size too: the samples on
/// <https://core.telegram.org/mtproto/samples-auth_key> use 0x17ED48941A08F981).
fn two_primes() -> (u64, u64) {
    let pick = || loop {
        let c = (rand::random::<u64>() % (1 << 30)) | (1 << 30) | 1;
        if is_prime(c) {
            return c;
        }
    };
    let a = pick();
    let mut b = pick();
    while b == a {
        b = pick();
    }
    (a.min(b), a.max(b))
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u64;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1 + u64::from(d > 2);
    }
    true
}

/// Minimal big-endian bytes of a number, as `p` and `q` travel.
fn be_min(n: u64) -> Vec<u8> {
    let b = n.to_be_bytes();
    let first = b.iter().position(|&x| x != 0).unwrap_or(7);
    b[first..].to_vec()
}

/// Undoes RSA_PAD: `encrypted_data` → `data_with_padding` (192 bytes), or
/// None when its hash does not match.
fn rsa_unpad(encrypted: &[u8]) -> Option<Vec<u8>> {
    if encrypted.len() != 256 {
        return None;
    }
    let key_aes_encrypted = rsa_key::decrypt(encrypted)?;
    let (temp_key_xor, aes_encrypted) = key_aes_encrypted.split_at(32);
    let h: [u8; 32] = Sha256::digest(aes_encrypted).into();
    let mut temp_key = [0u8; 32];
    for (i, b) in temp_key.iter_mut().enumerate() {
        *b = temp_key_xor[i] ^ h[i];
    }
    let mut data_with_hash = aes_encrypted.to_vec();
    grammers_crypto::aes::ige_decrypt(&mut data_with_hash, &temp_key, &[0u8; 32]);
    let (reversed, hash) = data_with_hash.split_at(192);
    let data_with_padding: Vec<u8> = reversed.iter().rev().copied().collect();
    let expect: [u8; 32] = Sha256::new()
        .chain_update(temp_key)
        .chain_update(&data_with_padding)
        .finalize()
        .into();
    (expect[..] == hash[..]).then_some(data_with_padding)
}

/// The checks of step 2; the client's `new_nonce`.
fn check_req_dh(
    req: &tl::functions::ReqDhParams,
    nonce: [u8; 16],
    server_nonce: [u8; 16],
    p: u64,
    q: u64,
) -> Result<[u8; 32], Refused> {
    if req.nonce != nonce || req.server_nonce != server_nonce {
        return Err(Refused("req_DH_params nonce mismatch"));
    }
    if req.public_key_fingerprint != rsa_key::fingerprint() {
        return Err(Refused("req_DH_params for an unknown key"));
    }
    if req.p != be_min(p) || req.q != be_min(q) {
        return Err(Refused("req_DH_params p or q wrong"));
    }
    let plain = rsa_unpad(&req.encrypted_data).ok_or(Refused("RSA_PAD hash mismatch"))?;
    let inner = tl::enums::PQInnerData::from_bytes(&plain)
        .map_err(|_| Refused("malformed p_q_inner_data"))?;
    let (pq, ip, iq, inonce, iserver, new_nonce) = match inner {
        tl::enums::PQInnerData::Data(d) => (d.pq, d.p, d.q, d.nonce, d.server_nonce, d.new_nonce),
        tl::enums::PQInnerData::Dc(d) => (d.pq, d.p, d.q, d.nonce, d.server_nonce, d.new_nonce),
        // Temporary keys (PFS) are not served.
        _ => return Err(Refused("temporary keys are not served")),
    };
    if inonce != nonce || iserver != server_nonce {
        return Err(Refused("p_q_inner_data nonce mismatch"));
    }
    if pq != (p * q).to_be_bytes() || ip != be_min(p) || iq != be_min(q) {
        return Err(Refused("p_q_inner_data pq, p or q wrong"));
    }
    Ok(new_nonce)
}

fn dh_prime() -> BigUint {
    BigUint::from_bytes_be(&login::p_bytes())
}

/// Whether `x` lies strictly between 2^{2048-64} and `p` − 2^{2048-64}.
fn in_safe_range(x: &BigUint, p: &BigUint) -> bool {
    let margin = BigUint::from(1u8) << (2048 - 64);
    *x > margin && *x < p - &margin
}

fn unix_secs() -> i32 {
    i32::try_from(super::session::unix_now().0).unwrap_or(i32::MAX)
}

/// `server_DH_params_ok` and the server's secret a.
fn server_dh_params(
    nonce: [u8; 16],
    server_nonce: [u8; 16],
    new_nonce: &[u8; 32],
) -> (Vec<u8>, BigUint) {
    let p = dh_prime();
    let g = BigUint::from(u32::try_from(login::G).expect("small"));
    let (a, g_a) = loop {
        let a = BigUint::from_bytes_be(&rand::random::<[u8; 256]>());
        let g_a = g.modpow(&a, &p);
        if in_safe_range(&g_a, &p) {
            break (a, g_a);
        }
    };
    let answer = tl::enums::ServerDhInnerData::Data(tl::types::ServerDhInnerData {
        nonce,
        server_nonce,
        g: login::G,
        dh_prime: login::p_bytes(),
        g_a: g_a.to_bytes_be(),
        server_time: unix_secs(),
    })
    .to_bytes();
    let mut with_hash = Sha1::digest(&answer).to_vec();
    with_hash.extend_from_slice(&answer);
    let pad = (16 - with_hash.len() % 16) % 16;
    with_hash.extend((0..pad).map(|_| rand::random::<u8>()));
    let (key, iv) = grammers_crypto::generate_key_data_from_nonce(&server_nonce, new_nonce);
    grammers_crypto::aes::ige_encrypt(&mut with_hash, &key, &iv);
    let reply = tl::enums::ServerDhParams::Ok(tl::types::ServerDhParamsOk {
        nonce,
        server_nonce,
        encrypted_answer: with_hash,
    })
    .to_bytes();
    (reply, a)
}

/// Step 3: the client's g_b, the key, `dh_gen_ok` (or `dh_gen_retry`).
fn finish(
    req: &tl::functions::SetClientDhParams,
    nonce: [u8; 16],
    server_nonce: [u8; 16],
    new_nonce: &[u8; 32],
    a: &BigUint,
    taken: impl Fn(i64) -> bool,
) -> Result<Step, Refused> {
    if req.nonce != nonce || req.server_nonce != server_nonce {
        return Err(Refused("set_client_DH_params nonce mismatch"));
    }
    if req.encrypted_data.len() < 20 + 4 || !req.encrypted_data.len().is_multiple_of(16) {
        return Err(Refused("set_client_DH_params data not padded"));
    }
    let (key, iv) = grammers_crypto::generate_key_data_from_nonce(&server_nonce, new_nonce);
    let mut plain = req.encrypted_data.clone();
    grammers_crypto::aes::ige_decrypt(&mut plain, &key, &iv);
    let mut cursor = Cursor::from_slice(&plain[20..]);
    let tl::enums::ClientDhInnerData::Data(inner) =
        tl::enums::ClientDhInnerData::deserialize(&mut cursor)
            .map_err(|_| Refused("malformed client_DH_inner_data"))?;
    let hash: [u8; 20] = Sha1::digest(&plain[20..20 + cursor.pos()]).into();
    if hash[..] != plain[..20] {
        return Err(Refused("client_DH_inner_data hash mismatch"));
    }
    if inner.nonce != nonce || inner.server_nonce != server_nonce {
        return Err(Refused("client_DH_inner_data nonce mismatch"));
    }
    let p = dh_prime();
    let g_b = BigUint::from_bytes_be(&inner.g_b);
    if !in_safe_range(&g_b, &p) {
        return Err(Refused("g_b out of range"));
    }
    let gab = g_b.modpow(a, &p).to_bytes_be();
    let mut data = [0u8; 256];
    data[256 - gab.len()..].copy_from_slice(&gab);
    let auth = AuthKey::from_bytes(data);
    let key = ServerKey::new(data);
    if taken(key.id) {
        return Ok(Step::Reply(
            tl::enums::SetClientDhParamsAnswer::DhGenRetry(tl::types::DhGenRetry {
                nonce,
                server_nonce,
                new_nonce_hash2: auth.calc_new_nonce_hash(new_nonce, 2),
            })
            .to_bytes(),
        ));
    }
    let reply = tl::enums::SetClientDhParamsAnswer::DhGenOk(tl::types::DhGenOk {
        nonce,
        server_nonce,
        new_nonce_hash1: auth.calc_new_nonce_hash(new_nonce, 1),
    })
    .to_bytes();
    let mut salt = [0u8; 8];
    for (i, b) in salt.iter_mut().enumerate() {
        *b = new_nonce[i] ^ server_nonce[i];
    }
    Ok(Step::Done {
        reply,
        key: Box::new(key),
        first_salt: i64::from_le_bytes(salt),
    })
}

/// A plain (unencrypted) message: `auth_key_id = 0 | msg_id | length |
/// body`; the body, or None when it is not one.
pub(crate) fn parse_plain(payload: &[u8]) -> Option<&[u8]> {
    if payload.len() < 20 || payload[..8] != [0u8; 8] {
        return None;
    }
    let len = usize::try_from(i32::from_le_bytes(payload[16..20].try_into().ok()?)).ok()?;
    payload.get(20..20 + len).filter(|b| b.len() >= 4)
}

/// A plain message from the server, its msg_id time-based and ≡ 1 mod 4
/// (a response; grammers' `mtp/plain.rs` checks exactly this).
pub(crate) fn plain_message(last_msg_id: &mut i64, body: &[u8]) -> Vec<u8> {
    let (secs, nanos) = super::session::unix_now();
    let mut id = (secs << 32) | (i64::from(nanos) & !3) | 1;
    if id <= *last_msg_id {
        id = *last_msg_id + 4;
    }
    *last_msg_id = id;
    let mut out = Vec::with_capacity(20 + body.len());
    out.extend_from_slice(&0i64.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&i32::try_from(body.len()).unwrap_or(i32::MAX).to_le_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
#[path = "key_exchange_tests.rs"]
mod tests;
