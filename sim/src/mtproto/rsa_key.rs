//! The fake's own RSA key pair: the server half of RSA_PAD in the key
//! exchange (<https://core.telegram.org/mtproto/auth_key>, "4.1) RSA_PAD").
//! Telegram keeps its private keys secret, so no client library can be
//! pointed at Telegram's public key and reach this fake: a client is given
//! [`PUBLIC_KEY_PEM`] (what my.telegram.org shows a developer for Telegram's
//! own data centres, in the same PKCS#1 form) and the fake decrypts with the
//! private exponent below. A made-up 2048-bit key generated once with
//! `openssl genrsa 2048`, for tests only: it protects nothing.

use grammers_tl_types::Serializable;
use num_bigint::BigUint;
use sha1::{Digest, Sha1};

/// The public key, PKCS#1 PEM (`-----BEGIN RSA PUBLIC KEY-----`).
pub const PUBLIC_KEY_PEM: &str = "-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEApr2u5C+qvRNgX+Fq7lU7xMd9fuEBmbB/uGvMJ/fYquwjrnHtEKEQ
bJbBaAThCOpcqaLDW2BWzkbNurR8qsFHsvfJ0UZYDyaI5HOSfNYNp6ixvmuVLiM3
jXbCljEhYGtSr0XUtdiR7vmKnBZ0EPksnQblVx2TZPuy4iP7MM9RhWVpLsgV8D9z
082OvAd4m3NB2WSGbgntxJDfnDrbmcTrA66KMdmEqGoaaKK+6vzTic7mYhK/6gJS
A12ba82UgOA6ngMP/7X0mnFucwuHA56MXZgQSe8x7D68amMaoP4IrNfJEX+JDBNd
Gw/9cvmh8MXs5XCwuOvIKBS6HMBWyIYAqwIDAQAB
-----END RSA PUBLIC KEY-----\n";

/// The modulus n, big endian hex.
const N_HEX: &str = "a6bdaee42faabd13605fe16aee553bc4c77d7ee10199b07fb86bcc27f7d8aaec\
23ae71ed10a1106c96c16804e108ea5ca9a2c35b6056ce46cdbab47caac147b2\
f7c9d146580f2688e473927cd60da7a8b1be6b952e23378d76c2963121606b52\
af45d4b5d891eef98a9c167410f92c9d06e5571d9364fbb2e223fb30cf518565\
692ec815f03f73d3cd8ebc07789b7341d964866e09edc490df9c3adb99c4eb03\
ae8a31d984a86a1a68a2beeafcd389cee66212bfea0252035d9b6bcd9480e03a\
9e030fffb5f49a716e730b87039e8c5d981049ef31ec3ebc6a631aa0fe08acd7\
c9117f890c135d1b0ffd72f9a1f0c5ece570b0b8ebc82814ba1cc056c88600ab";

/// The private exponent d, big endian hex.
const D_HEX: &str = "43c59647d61e0a32cd79bb2818ce18f87ef301b697cd6d814426c078c052d70a\
1ae8a512abaf237b577d2df7c9b5b3784d54c41da857300974463e64eb8c9ac5\
61d4ac5470a75bccc93a3660ba2a1baac3eff74f4fcced9ff894d7b2097464ba\
db55c142d64f5e781c001c5a39a9e599bf7b4900d2ef792478a9124881038bf9\
87781b93be259772f0aae093817cb2db7476f6f0f546b7a03468c4c924457f54\
733ea9f681424d34feb61e786ebe09594f389a7e5b47e1f1ee41ede4eb5c54ed\
b89184e83c2efe28095fa3dd744e0edfdc07b6583ec90eae0a63570a74e11ade\
6cdd6e153e715fff573a244a13f8b3848e9bd777458a5e486bfd7c6a938b34c1";

/// The public exponent.
const E: u32 = 65_537;

fn big(hex: &str) -> BigUint {
    BigUint::parse_bytes(hex.as_bytes(), 16).expect("valid hex")
}

/// The modulus.
pub(crate) fn n() -> BigUint {
    big(N_HEX)
}

/// `m = c^d mod n`, 256 bytes big endian; None when `c` is not below n.
pub(crate) fn decrypt(c: &[u8]) -> Option<[u8; 256]> {
    let n = n();
    let c = BigUint::from_bytes_be(c);
    if c >= n {
        return None;
    }
    let m = c.modpow(&big(D_HEX), &n).to_bytes_be();
    let mut out = [0u8; 256];
    out[256 - m.len()..].copy_from_slice(&m);
    Some(out)
}

/// The fingerprint of a public key `(n, e)`: the low 64 bits of SHA-1 over
/// `n` and `e` serialized as TL `bytes` (source:
/// <https://core.telegram.org/mtproto/auth_key>, "server_public_key_fingerprints
/// is a list of public RSA key fingerprints (64 lower-order bits of SHA1
/// (server_public_key))"; the serialization as in Telethon's
/// `telethon/crypto/rsa.py`, `_compute_fingerprint`), read little endian as
/// grammers does.
pub(crate) fn fingerprint_of(n: &BigUint, e: &BigUint) -> i64 {
    let mut buf = n.to_bytes_be().to_bytes();
    buf.extend(e.to_bytes_be().to_bytes());
    let sha: [u8; 20] = Sha1::digest(&buf).into();
    i64::from_le_bytes(sha[12..20].try_into().expect("8 bytes"))
}

/// This key's fingerprint.
pub(crate) fn fingerprint() -> i64 {
    fingerprint_of(&n(), &BigUint::from(E))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The formula gives the fingerprints grammers knows Telegram's keys by
    /// (`grammers-mtproto` `src/authentication.rs`, `key_for_fingerprint`).
    #[test]
    fn fingerprint_formula_matches_telegrams_production_key() {
        let n = BigUint::parse_bytes(b"29379598170669337022986177149456128565388431120058863768162556424047512191330847455146576344487764408661701890505066208632169112269581063774293102577308490531282748465986139880977280302242772832972539403531316010870401287642763009136156734339538042419388722777357134487746169093539093850251243897188928735903389451772730245253062963384108812842079887538976360465290946139638691491496062099570836476454855996319192747663615955633778034897140982517446405334423701359108810182097749467210509584293428076654573384828809574217079944388301239431309115013843331317877374435868468779972014486325557807783825502498215169806323", 10).expect("decimal");
        assert_eq!(
            fingerprint_of(&n, &BigUint::from(E)),
            -3_414_540_481_677_951_611
        );
    }

    #[test]
    fn the_private_exponent_inverts_the_public_one() {
        let m = BigUint::from_bytes_be(b"kuryer-sim RSA round trip");
        let c = m.modpow(&BigUint::from(E), &n()).to_bytes_be();
        let back = decrypt(&c).expect("below n");
        assert_eq!(BigUint::from_bytes_be(&back), m);
        assert!(decrypt(&[0xff; 256]).is_none());
    }
}
