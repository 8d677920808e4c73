//! The key exchange with a data centre whose RSA public key kuryer is
//! given (`reader.data_centre = "custom"`): grammers 0.11 makes auth keys
//! only with Telegram's two built-in keys (`grammers-mtproto`
//! `src/authentication.rs`, `key_for_fingerprint`), so for any other data
//! centre kuryer makes the key itself and hands grammers a session that
//! already holds it (grammers then connects with `connect_with_auth`).
//!
//! The steps are grammers' `step1`, `step2`, `step3` and `create_key`
//! line for line, with the configured key in place of Telegram's and the
//! same grammers-crypto functions (`rsa::encrypt_hashed` for RSA_PAD,
//! `factorize`, `generate_key_data_from_nonce`, AES-IGE,
//! `AuthKey::calc_new_nonce_hash`), carried by grammers' own sender over
//! the Full transport and plain messages. Protocol:
//! <https://core.telegram.org/mtproto/auth_key>.

use std::net::SocketAddr;
use std::time::Duration;

use grammers_client::sender::{Sender, ServerAddr};
use grammers_client::tl::{self, Cursor, Deserializable, Serializable};
use grammers_crypto::{AuthKey, factorize, rsa};
use grammers_mtproto::mtp::Plain;
use grammers_mtproto::transport::Full;

use crate::config::data_centre::PublicKey;
use num_bigint::BigUint;
use sha1::{Digest, Sha1};

/// Why no auth key was made; one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum KeyExchangeError {
    /// No connection, or no answer in time.
    #[error("cannot reach the data centre at {addr}: {message}")]
    Network {
        /// Where.
        addr: SocketAddr,
        /// What failed.
        message: String,
    },
    /// The data centre does not offer the configured key.
    #[error(
        "the data centre at {addr} does not use the configured public key (it offers fingerprints {offered:?}, the key has {ours}): check reader.custom_public_key"
    )]
    WrongKey {
        /// Where.
        addr: SocketAddr,
        /// The fingerprints it offered.
        offered: Vec<i64>,
        /// The configured key's.
        ours: i64,
    },
    /// The data centre broke the protocol.
    #[error("the data centre at {addr} broke the key exchange: {what}")]
    Protocol {
        /// Where.
        addr: SocketAddr,
        /// Which check failed.
        what: &'static str,
    },
}

/// `key` as grammers' RSA routine takes it.
fn rsa_key(key: &PublicKey) -> rsa::Key {
    rsa::Key::new(&key.n().to_str_radix(10), &key.e().to_str_radix(10)).expect("decimal digits")
}

/// The exchange may take this long in all.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Makes a new auth key with the data centre at `addr`, which must offer
/// `key`.
pub async fn make_auth_key(
    addr: SocketAddr,
    key: &PublicKey,
) -> Result<[u8; 256], KeyExchangeError> {
    let net = |message: String| KeyExchangeError::Network { addr, message };
    tokio::time::timeout(TIMEOUT, exchange(addr, key))
        .await
        .map_err(|_| net(format!("no key within {} s", TIMEOUT.as_secs())))?
}

async fn exchange(addr: SocketAddr, key: &PublicKey) -> Result<[u8; 256], KeyExchangeError> {
    let net = |e: &dyn std::fmt::Display| KeyExchangeError::Network {
        addr,
        message: e.to_string(),
    };
    let proto = |what| KeyExchangeError::Protocol { addr, what };
    let mut sender = Sender::connect(Full::new(), Plain::new(), ServerAddr::Tcp { address: addr })
        .await
        .map_err(|e| net(&e))?;
    // Step 1.
    let nonce: [u8; 16] = rand::random();
    let tl::enums::ResPq::Pq(res_pq) = sender
        .invoke(&tl::functions::ReqPqMulti { nonce })
        .await
        .map_err(|e| net(&e))?;
    // Step 2.
    let (req, new_nonce) = step2(nonce, &res_pq, key).map_err(|e| match e {
        Step2Error::WrongKey(offered) => KeyExchangeError::WrongKey {
            addr,
            offered,
            ours: key.fingerprint(),
        },
        Step2Error::Protocol(what) => proto(what),
    })?;
    let server_nonce = res_pq.server_nonce;
    let answer = sender.invoke(&req).await.map_err(|e| net(&e))?;
    // Step 3.
    let (req, gab) = step3(nonce, server_nonce, &new_nonce, answer).map_err(proto)?;
    let answer = sender.invoke(&req).await.map_err(|e| net(&e))?;
    let _ = sender.disconnect().await;
    create_key(nonce, server_nonce, &new_nonce, &gab, &answer).map_err(proto)
}

enum Step2Error {
    WrongKey(Vec<i64>),
    Protocol(&'static str),
}

/// grammers' `do_step2`: pq factorized, `p_q_inner_data` under RSA_PAD.
fn step2(
    nonce: [u8; 16],
    res: &tl::types::ResPq,
    key: &PublicKey,
) -> Result<(tl::functions::ReqDhParams, [u8; 32]), Step2Error> {
    if res.nonce != nonce {
        return Err(Step2Error::Protocol("resPQ nonce mismatch"));
    }
    let fingerprint = key.fingerprint();
    if !res.server_public_key_fingerprints.contains(&fingerprint) {
        return Err(Step2Error::WrongKey(
            res.server_public_key_fingerprints.clone(),
        ));
    }
    let pq: [u8; 8] = res
        .pq
        .as_slice()
        .try_into()
        .map_err(|_| Step2Error::Protocol("pq is not 8 bytes"))?;
    let (p, q) = factorize(u64::from_be_bytes(pq));
    let be_min = |n: u64| {
        let b = n.to_be_bytes();
        b[b.iter().position(|&x| x != 0).unwrap_or(7)..].to_vec()
    };
    let new_nonce: [u8; 32] = rand::random();
    let inner = tl::enums::PQInnerData::Data(tl::types::PQInnerData {
        pq: res.pq.clone(),
        p: be_min(p),
        q: be_min(q),
        nonce,
        server_nonce: res.server_nonce,
        new_nonce,
    })
    .to_bytes();
    let mut random = [0u8; 224];
    rand::fill(&mut random[..]);
    let encrypted_data = rsa::encrypt_hashed(&inner, &rsa_key(key), &random);
    Ok((
        tl::functions::ReqDhParams {
            nonce,
            server_nonce: res.server_nonce,
            p: be_min(p),
            q: be_min(q),
            public_key_fingerprint: fingerprint,
            encrypted_data,
        },
        new_nonce,
    ))
}

/// grammers' `do_step3`: the server's DH half decrypted and checked, ours
/// sent; returns the request and g^ab.
fn step3(
    nonce: [u8; 16],
    server_nonce: [u8; 16],
    new_nonce: &[u8; 32],
    answer: tl::enums::ServerDhParams,
) -> Result<(tl::functions::SetClientDhParams, BigUint), &'static str> {
    let tl::enums::ServerDhParams::Ok(mut ok) = answer else {
        return Err("server_DH_params_fail");
    };
    if ok.nonce != nonce || ok.server_nonce != server_nonce {
        return Err("server_DH_params nonce mismatch");
    }
    if ok.encrypted_answer.len() < 32 || !ok.encrypted_answer.len().is_multiple_of(16) {
        return Err("encrypted answer not padded");
    }
    let (key, iv) = grammers_crypto::generate_key_data_from_nonce(&server_nonce, new_nonce);
    grammers_crypto::aes::ige_decrypt(&mut ok.encrypted_answer, &key, &iv);
    let plain = ok.encrypted_answer;
    let mut cursor = Cursor::from_slice(&plain[20..]);
    let tl::enums::ServerDhInnerData::Data(inner) =
        tl::enums::ServerDhInnerData::deserialize(&mut cursor)
            .map_err(|_| "malformed server_DH_inner_data")?;
    let hash: [u8; 20] = Sha1::digest(&plain[20..20 + cursor.pos()]).into();
    if hash[..] != plain[..20] {
        return Err("answer hash mismatch");
    }
    if inner.nonce != nonce || inner.server_nonce != server_nonce {
        return Err("server_DH_inner_data nonce mismatch");
    }
    let dh_prime = BigUint::from_bytes_be(&inner.dh_prime);
    let g = BigUint::from(u32::try_from(inner.g).map_err(|_| "g out of range")?);
    let g_a = BigUint::from_bytes_be(&inner.g_a);
    let mut b = [0u8; 256];
    rand::fill(&mut b[..]);
    let b = BigUint::from_bytes_be(&b);
    let g_b = g.modpow(&b, &dh_prime);
    let gab = g_a.modpow(&b, &dh_prime);
    // "both sides are to check that g, g_a and g_b are greater than 1 and
    // less than dh_prime - 1 … between 2^{2048-64} and dh_prime -
    // 2^{2048-64} as well" (the page, "DH key exchange complete").
    let one = BigUint::from(1u8);
    let margin = BigUint::from(1u8) << (2048 - 64);
    if dh_prime.bits() != 2048 || g <= one || g >= &dh_prime - &one {
        return Err("dh_prime or g out of range");
    }
    for x in [&g_a, &g_b] {
        if *x <= margin || *x >= &dh_prime - &margin {
            return Err("g_a or g_b out of range");
        }
    }
    let client_inner = tl::enums::ClientDhInnerData::Data(tl::types::ClientDhInnerData {
        nonce,
        server_nonce,
        retry_id: 0,
        g_b: g_b.to_bytes_be(),
    })
    .to_bytes();
    let mut data = Sha1::digest(&client_inner).to_vec();
    data.extend(&client_inner);
    let pad = (16 - data.len() % 16) % 16;
    let mut padding = [0u8; 16];
    rand::fill(&mut padding[..]);
    data.extend(&padding[..pad]);
    grammers_crypto::aes::ige_encrypt(&mut data, &key, &iv);
    Ok((
        tl::functions::SetClientDhParams {
            nonce,
            server_nonce,
            encrypted_data: data,
        },
        gab,
    ))
}

/// grammers' `create_key`: only `dh_gen_ok` with the right
/// `new_nonce_hash1` gives the key (grammers treats a retry as a failure
/// too).
fn create_key(
    nonce: [u8; 16],
    server_nonce: [u8; 16],
    new_nonce: &[u8; 32],
    gab: &BigUint,
    answer: &tl::enums::SetClientDhParamsAnswer,
) -> Result<[u8; 256], &'static str> {
    let tl::enums::SetClientDhParamsAnswer::DhGenOk(ok) = answer else {
        return Err("the data centre did not accept the key (dh_gen_retry or dh_gen_fail)");
    };
    if ok.nonce != nonce || ok.server_nonce != server_nonce {
        return Err("dh_gen_ok nonce mismatch");
    }
    let bytes = gab.to_bytes_be();
    let mut data = [0u8; 256];
    data[256 - bytes.len()..].copy_from_slice(&bytes);
    if AuthKey::from_bytes(data).calc_new_nonce_hash(new_nonce, 1) != ok.new_nonce_hash1 {
        return Err("new_nonce_hash1 mismatch");
    }
    Ok(data)
}
