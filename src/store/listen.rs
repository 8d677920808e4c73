//! A connection of its own (never a pooled one: a pooled connection is
//! handed to other callers, and LISTEN belongs to one session) that
//! LISTENs on a channel and hands the notifications' payloads on.

use std::str::FromStr;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::StoreError;
use super::error::OpContext;
use crate::config::DatabaseConfig;

/// A LISTENing session: payloads arrive on `rx`; when the connection is
/// lost, one `Err` with the reason, then the end. Dropping it closes the
/// session.
pub struct Listener {
    /// Kept so the session stays open.
    _client: tokio_postgres::Client,
    /// The payloads, in commit order.
    pub rx: mpsc::UnboundedReceiver<Result<String, String>>,
    /// The server process of this session (for tests that end it).
    pub backend_pid: i32,
}

/// Opens a session on the primary (`cfg.url`) and LISTENs on `channel`.
pub async fn listen(cfg: &DatabaseConfig, channel: &str) -> Result<Listener, StoreError> {
    const OP: &str = "listen";
    let url = cfg.url.expose();
    let mut pg = tokio_postgres::Config::from_str(url)
        .map_err(|e| StoreError::Config(format!("unparsable database URL: {e}")))?;
    pg.connect_timeout(Duration::from_millis(cfg.connect_timeout_ms));
    pg.application_name("kuryer-listen");
    pg.ssl_mode(super::tls::effective_ssl_mode(url)?);
    let (client, mut conn) = pg.connect(super::tls::connector(cfg)?).await.op(OP)?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        loop {
            match messages.next().await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if tx.send(Ok(n.payload().to_owned())).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
                None => {
                    let _ = tx.send(Err("the server closed the connection".to_owned()));
                    return;
                }
            }
        }
    });
    // The channel name is ours (a constant), never user input.
    client
        .batch_execute(&format!("LISTEN {channel}"))
        .await
        .op(OP)?;
    let backend_pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .op(OP)?
        .get(0);
    Ok(Listener {
        _client: client,
        rx,
        backend_pid,
    })
}
