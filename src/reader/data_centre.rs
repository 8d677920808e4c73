//! Which Telegram a new reader session is made on (`reader.data_centre`):
//! Telegram's production data centres (grammers' defaults), Telegram's
//! test data centres (run for developers; accounts there are separate from
//! real ones), or a custom set of data centres with their own RSA public
//! key — which is how the tests point `kuryer login` at `kuryer-sim`. The
//! choice applies when a session is made (`kuryer login` on an account
//! with no auth key); the session keeps its data centres afterwards.

use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};

use grammers_client::session::Session;
use grammers_client::session::types::DcOption;

pub use crate::config::data_centre::{DataCentres, PublicKey, parse_dcs};

use super::key_exchange::{self, KeyExchangeError};
use super::session::{PgSession, SessionError};

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
    use crate::config::ReaderConfig;

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
