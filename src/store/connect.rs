//! Connections of their own, never pooled: the LISTEN session and
//! create-database's. Opened from the same [`DbConnect`] as the pool (same
//! TLS, same session options, so the same statement timeout), and the whole
//! opening — TCP, TLS and the start-up exchange — within the connect
//! timeout: tokio-postgres' own timeout covers the TCP connect alone, so a
//! server that accepts and never answers would hang the caller.

use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Connection, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::error::ConnectError;
use super::{StoreError, tls};
use crate::config::DbConnect;

/// The connection half a caller drives (or spawns).
pub(super) type OwnConnection =
    Connection<Socket, <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream>;

/// Opens a session named `application` on `target`. A TLS set-up that
/// cannot work (an unreadable CA file) is `Err(Err(StoreError))`; a failed
/// or timed-out connection `Err(Ok(ConnectError))`, so the caller can look
/// at the server's answer (create-database does) before it becomes a
/// [`StoreError`] through [`connect_error`].
pub(super) async fn open_own(
    target: &DbConnect,
    application: &str,
) -> Result<(Client, OwnConnection), Result<ConnectError, StoreError>> {
    let tls = tls::connector(target).map_err(Err)?;
    let pg = target.session(application);
    let limit = target.connect_timeout();
    match tokio::time::timeout(limit, pg.connect(tls)).await {
        Ok(Ok(pair)) => Ok(pair),
        Ok(Err(e)) => Err(Ok(ConnectError::Postgres(e))),
        Err(_) => Err(Ok(ConnectError::TimedOut(
            u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
        ))),
    }
}

/// [`open_own`] for a caller that wants a [`StoreError`] either way.
pub(super) async fn open_own_or_fail(
    op: &'static str,
    target: &DbConnect,
    application: &str,
) -> Result<(Client, OwnConnection), StoreError> {
    match open_own(target, application).await {
        Ok(pair) => Ok(pair),
        Err(Ok(failed)) => Err(connect_error(op, target, failed)),
        Err(Err(setup)) => Err(setup),
    }
}

/// A failed opening as a [`StoreError`] naming `host:port`.
pub(super) fn connect_error(
    op: &'static str,
    target: &DbConnect,
    source: ConnectError,
) -> StoreError {
    StoreError::Connect {
        op,
        endpoint: target.endpoint().to_owned(),
        source,
    }
}

/// Drives `conn` in the background until its client is dropped.
pub(super) fn drive(conn: OwnConnection) {
    tokio::spawn(async move {
        let _ = conn.await;
    });
}
