//! Signing in: login codes (`auth.sendCode` / `auth.signIn`) and the 2FA
//! password checked server-side by SRP (`account.getPassword` /
//! `auth.checkPassword`), with Telegram's algorithm
//! `passwordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow` over
//! Telegram's own 2048-bit prime and g = 3 (grammers checks both).

use std::time::Instant;

use hmac::Hmac;
use num_bigint::BigUint;
use sha2::{Digest, Sha256, Sha512};

/// Telegram's 2048-bit safe prime for SRP (and DH), big endian hex.
const P_HEX: &str = "c71caeb9c6b1c9048e6c522f70f13f73980d40238e3e21c14934d037563d930f\
48198a0aa7c14058229493d22530f4dbfa336f6e0ac925139543aed44cce7c37\
20fd51f69458705ac68cd4fe6b6b13abdc9746512969328454f18faf8c595f64\
2477fe96bb2a941d5bcd1d4ac8cc49880708fa9b378e3c4f3a9060bee67cf9a4\
a4a695811051907e162753b56b0f6b410dba74d8a84b2a14b3144e0ef1284754\
fd17ed950d5965b4b9dd46582db1178d169c6bc465b0d6ff9ca3928fef5b9ae4\
e418fc15e83ebea0f87fa9ff5eed70050ded2849f47bf959d956850ce929851f\
0d8115f635b105ee2e4e15d04b2454bf6f4fadf034b10403119cd8e3b92fcc5b";

/// The generator.
pub(crate) const G: i32 = 3;

pub(crate) fn p_bytes() -> Vec<u8> {
    (0..P_HEX.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&P_HEX[i..i + 2], 16).expect("valid hex"))
        .collect()
}

/// A login code sent to a phone.
#[derive(Clone, Debug)]
pub(crate) struct PendingCode {
    pub(crate) phone_code_hash: String,
    pub(crate) code: String,
    pub(crate) sent_at: Instant,
}

/// What the server keeps of an account's password: the salts and the
/// verifier v = g^x mod p (never the password).
#[derive(Clone, Debug)]
pub(crate) struct SrpVerifier {
    pub(crate) salt1: Vec<u8>,
    pub(crate) salt2: Vec<u8>,
    pub(crate) v: BigUint,
    pub(crate) hint: Option<String>,
}

/// The server's half of one SRP exchange (from `account.getPassword`).
#[derive(Clone, Debug)]
pub(crate) struct PendingSrp {
    pub(crate) srp_id: i64,
    pub(crate) b: BigUint,
    /// g_b = (k·v + g^b) mod p, 256 bytes.
    pub(crate) g_b: Vec<u8>,
}

fn h(parts: &[&[u8]]) -> [u8; 32] {
    let mut d = Sha256::new();
    for p in parts {
        d.update(p);
    }
    d.finalize().into()
}

fn pad256(b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 256usize.saturating_sub(b.len())];
    out.extend_from_slice(b);
    out
}

fn sh(data: &[u8], salt: &[u8]) -> [u8; 32] {
    h(&[salt, data, salt])
}

/// PH2(password, salt1, salt2), as the client computes it.
fn ph2(password: &[u8], salt1: &[u8], salt2: &[u8]) -> [u8; 32] {
    let ph1 = sh(&sh(password, salt1), salt2);
    let mut dk = [0u8; 64];
    pbkdf2::pbkdf2::<Hmac<Sha512>>(&ph1, salt1, 100_000, &mut dk)
        .expect("64 bytes is a valid PBKDF2 output length");
    sh(&dk, salt2)
}

impl SrpVerifier {
    /// The verifier of `password` with fresh random salts.
    pub(crate) fn new(password: &str, hint: Option<String>) -> Self {
        let mut salt1 = vec![0u8; 40];
        rand::fill(&mut salt1[..]);
        let mut salt2 = vec![0u8; 16];
        rand::fill(&mut salt2[..]);
        let p = BigUint::from_bytes_be(&p_bytes());
        let x = BigUint::from_bytes_be(&ph2(password.as_bytes(), &salt1, &salt2));
        let v = BigUint::from(3u32).modpow(&x, &p);
        Self {
            salt1,
            salt2,
            v,
            hint,
        }
    }

    /// Starts an exchange: a random b and g_b = (k·v + g^b) mod p.
    pub(crate) fn start(&self) -> PendingSrp {
        let p_raw = p_bytes();
        let p = BigUint::from_bytes_be(&p_raw);
        let g = BigUint::from(3u32);
        let k = BigUint::from_bytes_be(&h(&[&p_raw, &pad256(&[3])]));
        let mut b_raw = [0u8; 256];
        rand::fill(&mut b_raw[..]);
        let b = BigUint::from_bytes_be(&b_raw);
        let g_b = (k * &self.v + g.modpow(&b, &p)) % &p;
        PendingSrp {
            srp_id: rand::random::<i64>(),
            b,
            g_b: pad256(&g_b.to_bytes_be()),
        }
    }

    /// Whether the client's `A` and `M1` prove it knows the password.
    pub(crate) fn verify(&self, pending: &PendingSrp, a: &[u8], m1: &[u8]) -> bool {
        let p_raw = p_bytes();
        let p = BigUint::from_bytes_be(&p_raw);
        let big_a = BigUint::from_bytes_be(a);
        if big_a == BigUint::from(0u32) || big_a >= p {
            return false;
        }
        let a_pad = pad256(a);
        let u = BigUint::from_bytes_be(&h(&[&a_pad, &pending.g_b]));
        // S = (A · v^u)^b mod p
        let s = (big_a * self.v.modpow(&u, &p) % &p).modpow(&pending.b, &p);
        let k_a = h(&[&pad256(&s.to_bytes_be())]);
        let h_p = h(&[&p_raw]);
        let h_g = h(&[&pad256(&[3])]);
        let xor: Vec<u8> = h_p.iter().zip(h_g.iter()).map(|(x, y)| x ^ y).collect();
        let expected = h(&[
            &xor,
            &h(&[&self.salt1]),
            &h(&[&self.salt2]),
            &a_pad,
            &pending.g_b,
            &k_a,
        ]);
        expected.as_slice() == m1
    }
}
