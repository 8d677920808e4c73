//! Values that must never reach a log line, an error message or `check-config`
//! output in clear: bot tokens, API hashes, the HTTP API token, and the
//! passwords inside connection URLs.
//!
//! The types here print themselves redacted through `Debug`, `Display` *and*
//! `Serialize`, so a secret cannot leak by accident through any of them; the
//! clear value is reached only by calling `expose()`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// What every secret prints as.
pub const REDACTED: &str = "***";

/// An opaque secret string (bot token, API hash, HTTP API token).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a clear value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The clear value; call it only where the secret is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientString).map(Secret)
    }
}

/// A connection URL (PostgreSQL or Redis) whose password is redacted when it
/// is printed, logged or serialised.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a clear URL.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The clear URL, password included; call it only to connect.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password (if any) replaced by `***`.
    ///
    /// Handles both URL form (`postgres://user:pw@host/db`) and libpq's
    /// key-value form (`host=… password=pw`); anything it cannot parse is
    /// redacted whole rather than risked.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

fn redact_url(raw: &str) -> String {
    if raw.contains("://") {
        match url::Url::parse(raw) {
            Ok(mut url) => {
                if url.password().is_some() {
                    // Cannot fail for URLs that already carry a password.
                    let _ = url.set_password(Some(REDACTED));
                }
                // Query parameters can carry a password too (libpq accepts `?password=`).
                if url
                    .query_pairs()
                    .any(|(k, _)| k.eq_ignore_ascii_case("password"))
                {
                    let pairs: Vec<(String, String)> = url
                        .query_pairs()
                        .map(|(k, v)| {
                            let v = if k.eq_ignore_ascii_case("password") {
                                REDACTED.to_owned()
                            } else {
                                v.into_owned()
                            };
                            (k.into_owned(), v)
                        })
                        .collect();
                    url.query_pairs_mut().clear().extend_pairs(pairs);
                }
                url.to_string().replace("%2A%2A%2A", REDACTED)
            }
            Err(_) => REDACTED.to_owned(),
        }
    } else {
        // libpq key-value form. Values may be quoted and contain spaces, and
        // `password = x` may have spaces around `=`: rather than parse it,
        // cut everything from the word `password` on.
        match raw.to_ascii_lowercase().find("password") {
            Some(at) => format!("{}password={REDACTED}", &raw[..at]),
            None => raw.to_owned(),
        }
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientString).map(SecretUrl)
    }
}

/// Accepts a string, and also a number or boolean as its text: an environment
/// variable such as `KURYER_HTTP_API_TOKEN=123456` arrives already parsed as a
/// number, yet it is a string secret.
struct LenientString;

impl de::Visitor<'_> for LenientString {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_in_clear() {
        let s = Secret::new("123456:AAAA-secret");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose(), "123456:AAAA-secret");
    }

    #[test]
    fn url_passwords_are_redacted_in_every_form() {
        let cases = [
            (
                "postgres://kuryer:hunter2@db.local:5432/kuryer",
                "postgres://kuryer:***@db.local:5432/kuryer",
            ),
            (
                "postgres://postgres@127.0.0.1/test",
                "postgres://postgres@127.0.0.1/test",
            ),
            (
                "postgresql://u@h/db?password=hunter2&sslmode=disable",
                "postgresql://u@h/db?password=***&sslmode=disable",
            ),
            (
                "redis://:hunter2@127.0.0.1:6379/0",
                "redis://:***@127.0.0.1:6379/0",
            ),
            (
                "host=db user=kuryer password=hunter2 dbname=k",
                "host=db user=kuryer password=***",
            ),
            ("host=db password = hunter2", "host=db password=***"),
            (
                "host=db password='hunter2 x' user=k",
                "host=db password=***",
            ),
            ("postgres://broken:hunter2@[::1", "***"),
        ];
        for (raw, want) in cases {
            let u = SecretUrl::new(raw);
            assert_eq!(u.redacted(), want, "{raw}");
            assert!(!format!("{u} {u:?}").contains("hunter2"));
            assert!(!serde_json::to_string(&u).unwrap().contains("hunter2"));
        }
    }
}
