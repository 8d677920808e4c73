//! The server side of the key exchange against grammers' client side.
//! grammers' `step2` only encrypts to Telegram's two public keys (its
//! `key_for_fingerprint`), so past step 1 the client here is grammers'
//! `step2`/`step3`/`create_key` line for line with the fake's key in place of
//! Telegram's, built from the same grammers-crypto functions
//! (`rsa::encrypt_hashed`, `factorize`, `generate_key_data_from_nonce`,
//! `aes`, `AuthKey::calc_new_nonce_hash`).

use grammers_crypto::{AuthKey, factorize, rsa};
use grammers_tl_types::{self as tl, Cursor, Deserializable, Serializable};
use num_bigint::BigUint;
use sha1::{Digest, Sha1};

use super::*;

fn key() -> rsa::Key {
    rsa::Key::new(&rsa_key::n().to_str_radix(10), "65537").expect("valid key")
}

fn reply(step: Result<Step, Refused>) -> Vec<u8> {
    match step.expect("accepted") {
        Step::Reply(r) => r,
        Step::Done { .. } => panic!("done too early"),
    }
}

struct Client {
    nonce: [u8; 16],
    server_nonce: [u8; 16],
    new_nonce: [u8; 32],
}

/// grammers' `do_step2` with the fake's key.
fn step2(res: &[u8], nonce: [u8; 16]) -> (tl::functions::ReqDhParams, Client) {
    let tl::enums::ResPq::Pq(res) = tl::enums::ResPq::from_bytes(res).expect("resPQ");
    assert_eq!(res.nonce, nonce);
    assert_eq!(res.pq.len(), 8, "grammers insists on 8 bytes");
    assert_eq!(
        res.server_public_key_fingerprints,
        vec![rsa_key::fingerprint()]
    );
    let pq = u64::from_be_bytes(res.pq.clone().try_into().expect("8"));
    let (p, q) = factorize(pq);
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
    let random: [u8; 224] = std::array::from_fn(|_| rand::random());
    let encrypted_data = rsa::encrypt_hashed(&inner, &key(), &random);
    (
        tl::functions::ReqDhParams {
            nonce,
            server_nonce: res.server_nonce,
            p: be_min(p),
            q: be_min(q),
            public_key_fingerprint: res.server_public_key_fingerprints[0],
            encrypted_data,
        },
        Client {
            nonce,
            server_nonce: res.server_nonce,
            new_nonce,
        },
    )
}

/// grammers' `do_step3` and `create_key`.
fn step3(c: &Client, res: &[u8]) -> (tl::functions::SetClientDhParams, [u8; 256]) {
    let tl::enums::ServerDhParams::Ok(mut ok) =
        tl::enums::ServerDhParams::from_bytes(res).expect("server_DH_params")
    else {
        panic!("server_DH_params_fail");
    };
    assert_eq!(ok.encrypted_answer.len() % 16, 0);
    let (key, iv) = grammers_crypto::generate_key_data_from_nonce(&c.server_nonce, &c.new_nonce);
    grammers_crypto::aes::ige_decrypt(&mut ok.encrypted_answer, &key, &iv);
    let plain = ok.encrypted_answer;
    let mut cursor = Cursor::from_slice(&plain[20..]);
    let tl::enums::ServerDhInnerData::Data(inner) =
        tl::enums::ServerDhInnerData::deserialize(&mut cursor).expect("inner data");
    let hash: [u8; 20] = Sha1::digest(&plain[20..20 + cursor.pos()]).into();
    assert_eq!(hash[..], plain[..20], "answer hash");
    assert_eq!((inner.nonce, inner.server_nonce), (c.nonce, c.server_nonce));
    let p = BigUint::from_bytes_be(&inner.dh_prime);
    let g = BigUint::from(u32::try_from(inner.g).expect("g"));
    let g_a = BigUint::from_bytes_be(&inner.g_a);
    assert!(in_safe_range(&g_a, &p));
    let b = BigUint::from_bytes_be(&rand::random::<[u8; 256]>());
    let g_b = g.modpow(&b, &p);
    let gab = g_a.modpow(&b, &p).to_bytes_be();
    let client_inner = tl::enums::ClientDhInnerData::Data(tl::types::ClientDhInnerData {
        nonce: c.nonce,
        server_nonce: c.server_nonce,
        retry_id: 0,
        g_b: g_b.to_bytes_be(),
    })
    .to_bytes();
    let mut data = Sha1::digest(&client_inner).to_vec();
    data.extend(&client_inner);
    let pad = (16 - data.len() % 16) % 16;
    data.extend(std::iter::repeat_n(0u8, pad));
    grammers_crypto::aes::ige_encrypt(&mut data, &key, &iv);
    let mut auth = [0u8; 256];
    auth[256 - gab.len()..].copy_from_slice(&gab);
    (
        tl::functions::SetClientDhParams {
            nonce: c.nonce,
            server_nonce: c.server_nonce,
            encrypted_data: data,
        },
        auth,
    )
}

#[test]
fn grammers_client_steps_and_the_server_agree_on_the_key() {
    let mut server = Exchange::new();
    // Step 1 exactly as grammers makes it.
    let (req1, _) = grammers_mtproto::authentication::step1().expect("step1");
    let res1 = reply(server.on_message(&req1.to_bytes(), |_| false));
    // grammers' own step 2 does not know the fake's key: it says so (this is
    // why kuryer carries its own step 2 for a custom data centre).
    let real = grammers_mtproto::authentication::step2(
        grammers_mtproto::authentication::step1().expect("step1").1,
        tl::enums::ResPq::from_bytes(&res1).expect("resPQ"),
    );
    assert!(real.is_err());
    let (req2, client) = step2(&res1, req1.nonce);
    let res2 = reply(server.on_message(&req2.to_bytes(), |_| false));
    let (req3, client_key) = step3(&client, &res2);
    let Step::Done {
        reply: res3,
        key,
        first_salt,
    } = server
        .on_message(&req3.to_bytes(), |_| false)
        .expect("accepted")
    else {
        panic!("no key");
    };
    assert_eq!(key.data, client_key, "both sides hold the same key");
    let tl::enums::SetClientDhParamsAnswer::DhGenOk(ok) =
        tl::enums::SetClientDhParamsAnswer::from_bytes(&res3).expect("answer")
    else {
        panic!("not dh_gen_ok");
    };
    let auth = AuthKey::from_bytes(client_key);
    assert_eq!(
        ok.new_nonce_hash1,
        auth.calc_new_nonce_hash(&client.new_nonce, 1)
    );
    let salt: [u8; 8] = std::array::from_fn(|i| client.new_nonce[i] ^ client.server_nonce[i]);
    assert_eq!(first_salt, i64::from_le_bytes(salt));
}

#[test]
fn a_taken_key_id_asks_for_a_retry() {
    let mut server = Exchange::new();
    let nonce: [u8; 16] = rand::random();
    let res1 = reply(server.on_message(&tl::functions::ReqPqMulti { nonce }.to_bytes(), |_| false));
    let (req2, client) = step2(&res1, nonce);
    let res2 = reply(server.on_message(&req2.to_bytes(), |_| false));
    let (req3, client_key) = step3(&client, &res2);
    let res3 = reply(server.on_message(&req3.to_bytes(), |_| true));
    let tl::enums::SetClientDhParamsAnswer::DhGenRetry(r) =
        tl::enums::SetClientDhParamsAnswer::from_bytes(&res3).expect("answer")
    else {
        panic!("not dh_gen_retry");
    };
    assert_eq!(
        r.new_nonce_hash2,
        AuthKey::from_bytes(client_key).calc_new_nonce_hash(&client.new_nonce, 2)
    );
}

#[test]
fn every_broken_step_is_refused() {
    let nonce: [u8; 16] = rand::random();
    let start = |s: &mut Exchange| {
        reply(s.on_message(&tl::functions::ReqPqMulti { nonce }.to_bytes(), |_| false))
    };
    // Out of order: step 3 first.
    let mut server = Exchange::new();
    let bogus = tl::functions::SetClientDhParams {
        nonce,
        server_nonce: [0; 16],
        encrypted_data: vec![0; 32],
    };
    assert!(server.on_message(&bogus.to_bytes(), |_| false).is_err());
    // A wrong nonce, a wrong p, a tampered RSA block.
    for tamper in 0..3 {
        let mut server = Exchange::new();
        let res1 = start(&mut server);
        let (mut req2, _) = step2(&res1, nonce);
        match tamper {
            0 => req2.nonce[0] ^= 1,
            1 => req2.p = vec![3],
            _ => req2.encrypted_data[100] ^= 1,
        }
        assert!(
            server.on_message(&req2.to_bytes(), |_| false).is_err(),
            "tamper {tamper}"
        );
    }
    // A g_b of 1 (out of range) in step 3.
    let mut server = Exchange::new();
    let res1 = start(&mut server);
    let (req2, client) = step2(&res1, nonce);
    let _ = reply(server.on_message(&req2.to_bytes(), |_| false));
    let inner = tl::enums::ClientDhInnerData::Data(tl::types::ClientDhInnerData {
        nonce,
        server_nonce: client.server_nonce,
        retry_id: 0,
        g_b: vec![1],
    })
    .to_bytes();
    let mut data = Sha1::digest(&inner).to_vec();
    data.extend(&inner);
    data.resize(data.len().div_ceil(16) * 16, 0);
    let (k, iv) =
        grammers_crypto::generate_key_data_from_nonce(&client.server_nonce, &client.new_nonce);
    grammers_crypto::aes::ige_encrypt(&mut data, &k, &iv);
    let req3 = tl::functions::SetClientDhParams {
        nonce,
        server_nonce: client.server_nonce,
        encrypted_data: data,
    };
    assert_eq!(
        server.on_message(&req3.to_bytes(), |_| false).err(),
        Some(Refused("g_b out of range"))
    );
}

#[test]
fn plain_messages_round_trip() {
    let mut last = 0;
    let m = plain_message(&mut last, &[1, 2, 3, 4]);
    assert_eq!(parse_plain(&m), Some(&[1u8, 2, 3, 4][..]));
    assert_eq!(last % 4, 1);
    let again = plain_message(&mut last, &[5, 6, 7, 8]);
    assert!(
        i64::from_le_bytes(again[8..16].try_into().unwrap())
            > i64::from_le_bytes(m[8..16].try_into().unwrap())
    );
    assert!(parse_plain(&[1u8; 24]).is_none());
}
