//! Which Telegram a new reader session is made on (`reader.data_centre`):
//! Telegram's production data centres (grammers' defaults), Telegram's
//! test data centres (run for developers; accounts there are separate from
//! real ones), or a custom set of data centres with their own RSA public
//! key — which is how the tests point `kuryer login` at `kuryer-sim`. The
//! choice applies when a session is made (`kuryer login` on an account
//! with no auth key); the session keeps its data centres afterwards.

use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::str::FromStr;

use grammers_client::session::Session;
use grammers_client::session::types::DcOption;

use super::key_exchange::{self, KeyExchangeError, PublicKey};
use super::session::{PgSession, SessionError};
use crate::config::ReaderConfig;

/// Telegram's test data centres (port 443), the addresses other MTProto
/// clients use: gotd/td `telegram/dcs/test.go`; Telethon's docs ("Test
/// Servers") and my.telegram.org name 149.154.167.40 (DC 2). Telegram's
/// test RSA key is built into grammers (`grammers-mtproto`
/// `src/authentication.rs`, fingerprint -5595554452916591101), so grammers
/// makes the keys itself.
const TEST_DCS: [(i32, [u8; 4]); 3] = [
    (1, [149, 154, 175, 10]),
    (2, [149, 154, 167, 40]),
    (3, [149, 154, 175, 117]),
];

/// Where a new test-DC session starts (the DC my.telegram.org names).
const TEST_HOME_DC: i32 = 2;

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

fn option(id: i32, addr: SocketAddr, auth_key: Option<[u8; 256]>) -> DcOption {
    let (ipv4, ipv6) = match addr {
        SocketAddr::V4(v4) => (
            v4,
            SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0),
        ),
        SocketAddr::V6(v6) => (
            SocketAddrV4::new(v6.ip().to_ipv4_mapped().unwrap_or([0; 4].into()), v6.port()),
            v6,
        ),
    };
    DcOption {
        id,
        ipv4,
        ipv6,
        auth_key,
    }
}

/// Why a session could not be set up on its data centres.
#[derive(Debug, thiserror::Error)]
pub enum DataCentreError {
    /// The key exchange failed.
    #[error(transparent)]
    KeyExchange(#[from] KeyExchangeError),
    /// The session could not be stored.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A migration named a DC the configuration does not list.
    #[error("Telegram moved the login to data centre {0}, which reader.custom_dcs does not list")]
    UnknownDc(i32),
}

/// Points a session with no auth key at the chosen data centres: their
/// addresses and the home DC (test: DC 2; custom: the first listed, with an
/// auth key made there by the key exchange). Production leaves grammers'
/// defaults.
pub async fn prepare(session: &PgSession, dcs: &DataCentres) -> Result<(), DataCentreError> {
    if session.has_auth_key() {
        return Ok(());
    }
    match dcs {
        DataCentres::Production => {}
        DataCentres::Test => {
            for (id, ip) in TEST_DCS {
                let addr = SocketAddr::new(IpAddr::from(ip), 443);
                session.set_dc_option(&option(id, addr, None)).await?;
            }
            session.set_home_dc_id(TEST_HOME_DC).await?;
        }
        DataCentres::Custom { dcs: list, .. } => {
            for (id, addr) in list {
                session.set_dc_option(&option(*id, *addr, None)).await?;
            }
            let home = list[0].0;
            session.set_home_dc_id(home).await?;
            ensure_key(session, dcs, home).await?;
        }
    }
    Ok(())
}

/// Before the session moves to DC `dc_id` (a `PHONE_MIGRATE_X`): on custom
/// data centres, an auth key made there, since grammers cannot make one
/// with a key it does not know. Nothing to do elsewhere or when the
/// session has a key on that DC already.
pub async fn ensure_key(
    session: &PgSession,
    dcs: &DataCentres,
    dc_id: i32,
) -> Result<(), DataCentreError> {
    let DataCentres::Custom { dcs: list, key } = dcs else {
        return Ok(());
    };
    let current = session.dc_option(dc_id)?;
    if current.as_ref().is_some_and(|o| o.auth_key.is_some()) {
        return Ok(());
    }
    let addr = list
        .iter()
        .find(|(id, _)| *id == dc_id)
        .map(|(_, a)| *a)
        .ok_or(DataCentreError::UnknownDc(dc_id))?;
    let auth_key = key_exchange::make_auth_key(addr, key).await?;
    tracing::info!(
        account = session.account(),
        dc = dc_id,
        "Made an auth key with the custom data centre."
    );
    session
        .set_dc_option(&option(dc_id, addr, Some(auth_key)))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dc_lists_parse_or_say_what_is_wrong() {
        let dcs = parse_dcs("2=127.0.0.1:4430, 1=[::1]:4431").unwrap();
        assert_eq!(dcs[0], (2, "127.0.0.1:4430".parse().unwrap()));
        assert_eq!(dcs[1].0, 1);
        for (bad, says) in [
            ("", "no data centre"),
            ("2=127.0.0.1", "not an address with a port"),
            ("x=127.0.0.1:1", "DC id"),
            ("0=127.0.0.1:1", "DC id"),
            ("2:127.0.0.1:1", "ID=ADDRESS:PORT"),
            ("2=127.0.0.1:1,2=127.0.0.1:2", "twice"),
        ] {
            let e = parse_dcs(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn the_choice_is_checked_key_by_key() {
        let mut r = ReaderConfig::default();
        assert!(matches!(
            DataCentres::from_config(&r),
            Ok(DataCentres::Production)
        ));
        r.data_centre = "test".to_owned();
        assert!(matches!(
            DataCentres::from_config(&r),
            Ok(DataCentres::Test)
        ));
        r.data_centre = "moon".to_owned();
        assert_eq!(
            DataCentres::from_config(&r).unwrap_err().0,
            "reader.data_centre"
        );
        r.data_centre = "custom".to_owned();
        assert_eq!(
            DataCentres::from_config(&r).unwrap_err().0,
            "reader.custom_dcs"
        );
        r.custom_dcs = Some("2=127.0.0.1:443".to_owned());
        assert_eq!(
            DataCentres::from_config(&r).unwrap_err().0,
            "reader.custom_public_key"
        );
        r.custom_public_key = Some("nonsense".to_owned());
        assert_eq!(
            DataCentres::from_config(&r).unwrap_err().0,
            "reader.custom_public_key"
        );
        r.data_centre = "production".to_owned();
        assert_eq!(
            DataCentres::from_config(&r).unwrap_err().0,
            "reader.data_centre"
        );
    }
}
