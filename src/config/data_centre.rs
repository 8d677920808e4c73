//! Which Telegram a new reader session is made on, as configured
//! (`reader.data_centre`, `reader.custom_dcs`, `reader.custom_public_key`):
//! parsed and checked here with the rest of the configuration, so a bad
//! address or key is named at load time; the reader
//! (`crate::reader::data_centre`) makes sessions on the result.

use std::net::SocketAddr;
use std::str::FromStr;

use grammers_client::tl::Serializable;
use num_bigint::BigUint;
use sha1::{Digest, Sha1};

use super::ReaderConfig;

/// The data centres a new session is made on.
#[derive(Clone, Debug)]
pub enum DataCentres {
    /// Telegram's own (grammers' built-in addresses and key).
    Production,
    /// Telegram's test data centres.
    Test,
    /// Given addresses (a login starts at the first) and their public key.
    Custom {
        /// `(DC id, address)`.
        dcs: Vec<(i32, SocketAddr)>,
        /// Their RSA public key.
        key: PublicKey,
    },
}

impl DataCentres {
    /// From `reader.data_centre`, `reader.custom_dcs` and
    /// `reader.custom_public_key`; the error names the key at fault.
    pub fn from_config(r: &ReaderConfig) -> Result<Self, (&'static str, String)> {
        let custom = r.custom_dcs.is_some() || r.custom_public_key.is_some();
        match r.data_centre.as_str() {
            "production" | "test" if custom => Err((
                "reader.data_centre",
                "reader.custom_dcs and reader.custom_public_key need data_centre = \"custom\""
                    .to_owned(),
            )),
            "production" => Ok(Self::Production),
            "test" => Ok(Self::Test),
            "custom" => {
                let dcs = r.custom_dcs.as_deref().ok_or((
                    "reader.custom_dcs",
                    "needed with data_centre = \"custom\" (e.g. \"2=127.0.0.1:4430,1=127.0.0.1:4431\")"
                        .to_owned(),
                ))?;
                let dcs = parse_dcs(dcs).map_err(|e| ("reader.custom_dcs", e))?;
                let pem = r.custom_public_key.as_deref().ok_or((
                    "reader.custom_public_key",
                    "needed with data_centre = \"custom\" (the data centres' RSA public key, PEM)"
                        .to_owned(),
                ))?;
                let key = PublicKey::from_pem(pem)
                    .map_err(|e| ("reader.custom_public_key", e.to_string()))?;
                Ok(Self::Custom { dcs, key })
            }
            other => Err((
                "reader.data_centre",
                format!("{other:?} is not one of \"production\", \"test\", \"custom\""),
            )),
        }
    }
}

/// `"2=127.0.0.1:4430,1=127.0.0.1:4431"`: DC ids 1–1000, IPv4 or IPv6
/// socket addresses, each DC once, at most 16.
pub fn parse_dcs(s: &str) -> Result<Vec<(i32, SocketAddr)>, String> {
    let mut out: Vec<(i32, SocketAddr)> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not ID=ADDRESS:PORT"))?;
        let id: i32 = id
            .trim()
            .parse()
            .ok()
            .filter(|i| (1..=1000).contains(i))
            .ok_or_else(|| format!("{part:?}: the DC id must be a number from 1 to 1000"))?;
        let addr = SocketAddr::from_str(addr.trim())
            .map_err(|_| format!("{part:?}: not an address with a port (127.0.0.1:443)"))?;
        if out.iter().any(|(i, _)| *i == id) {
            return Err(format!("DC {id} is listed twice"));
        }
        out.push((id, addr));
    }
    if out.is_empty() {
        return Err("no data centre listed".to_owned());
    }
    if out.len() > 16 {
        return Err("more than 16 data centres".to_owned());
    }
    Ok(out)
}

/// A data centre's RSA public key, `(n, e)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    n: BigUint,
    e: BigUint,
}

/// Why a configured key is not a PKCS#1 RSA public key in PEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an RSA public key in PEM (-----BEGIN RSA PUBLIC KEY-----): {0}")]
pub struct PemError(&'static str);

impl PublicKey {
    /// Parses a PKCS#1 PEM public key (`-----BEGIN RSA PUBLIC KEY-----`,
    /// the form my.telegram.org shows Telegram's keys in): base64 of the
    /// DER `SEQUENCE { INTEGER n, INTEGER e }`.
    pub fn from_pem(pem: &str) -> Result<Self, PemError> {
        use base64::Engine;
        let body = pem
            .trim()
            .strip_prefix("-----BEGIN RSA PUBLIC KEY-----")
            .and_then(|b| b.strip_suffix("-----END RSA PUBLIC KEY-----"))
            .ok_or(PemError("missing the BEGIN/END lines"))?;
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| PemError("the body is not base64"))?;
        let mut outer = Der(&der);
        let mut seq = Der(outer.take(0x30)?);
        if !outer.0.is_empty() {
            return Err(PemError("bytes after the key"));
        }
        let n = BigUint::from_bytes_be(seq.take(0x02)?);
        let e = BigUint::from_bytes_be(seq.take(0x02)?);
        if !seq.0.is_empty() {
            return Err(PemError("more than n and e"));
        }
        if n.bits() != 2048 {
            return Err(PemError("the modulus is not 2048 bits"));
        }
        if e < BigUint::from(3u8) || e >= n {
            return Err(PemError("the exponent is out of range"));
        }
        Ok(Self { n, e })
    }

    /// The key's fingerprint: the low 64 bits of SHA-1 over `n` and `e` as
    /// TL `bytes` (<https://core.telegram.org/mtproto/auth_key>,
    /// `server_public_key_fingerprints`; Telethon's `crypto/rsa.py`).
    pub fn fingerprint(&self) -> i64 {
        let mut buf = self.n.to_bytes_be().to_bytes();
        buf.extend(self.e.to_bytes_be().to_bytes());
        let sha: [u8; 20] = Sha1::digest(&buf).into();
        i64::from_le_bytes(sha[12..20].try_into().expect("8 bytes"))
    }

    /// The modulus.
    pub fn n(&self) -> &BigUint {
        &self.n
    }

    /// The public exponent.
    pub fn e(&self) -> &BigUint {
        &self.e
    }
}

/// A minimal DER reader: tag, length, value.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn take(&mut self, tag: u8) -> Result<&'a [u8], PemError> {
        let bad = PemError("malformed DER");
        let (&t, rest) = self.0.split_first().ok_or(bad)?;
        if t != tag {
            return Err(PemError("unexpected DER tag"));
        }
        let (&l, mut rest) = rest.split_first().ok_or(PemError("malformed DER"))?;
        let len = if l < 0x80 {
            usize::from(l)
        } else {
            let n = usize::from(l & 0x7f);
            if n == 0 || n > 2 || rest.len() < n {
                return Err(PemError("malformed DER length"));
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |a, &b| (a << 8) | usize::from(b));
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return Err(PemError("truncated DER"));
        }
        let (value, after) = rest.split_at(len);
        self.0 = after;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Telegram's production key as my.telegram.org shows it; its
    /// fingerprint is the one grammers knows it by.
    const TELEGRAM_PEM: &str = "-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEA6LszBcC1LGzyr992NzE0ieY+BSaOW622Aa9Bd4ZHLl+TuFQ4lo4g
5nKaMBwK/BIb9xUfg0Q29/2mgIR6Zr9krM7HjuIcCzFvDtr+L0GQjae9H0pRB2OO
62cECs5HKhT5DZ98K33vmWiLowc621dQuwKWSQKjWf50XYFw42h21P2KXUGyp2y/
+aEyZ+uVgLLQbRA1dEjSDZ2iGRy12Mk5gpYc397aYp438fsJoHIgJ2lgMv5h7WY9
t6N/byY9Nw9p21Og3AoXSL2q/2IJ1WRUhebgAdGVMlV1fkuOQoEzR7EdpqtQD9Cs
5+bfo3Nhmcyvk5ftB0WkJ9z6bNZ7yxrP8wIDAQAB
-----END RSA PUBLIC KEY-----";

    #[test]
    fn a_pem_key_parses_to_the_fingerprint_telegram_uses() {
        let key = PublicKey::from_pem(TELEGRAM_PEM).expect("parses");
        assert_eq!(key.fingerprint(), -3_414_540_481_677_951_611);
    }

    #[test]
    fn a_bad_pem_gets_a_clear_error() {
        for bad in [
            "",
            "hello",
            "-----BEGIN RSA PUBLIC KEY-----\n!!!\n-----END RSA PUBLIC KEY-----",
            "-----BEGIN RSA PUBLIC KEY-----\nMAA=\n-----END RSA PUBLIC KEY-----",
        ] {
            let e = PublicKey::from_pem(bad).unwrap_err();
            assert!(e.to_string().starts_with("not an RSA public key"), "{e}");
        }
    }
}
