//! A connection of its own (never a pooled one: a pooled connection is
//! handed to other callers, and LISTEN belongs to one session) that
//! LISTENs on a channel and hands the notifications' payloads on.

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::error::OpContext;
use super::{Store, StoreError};
use crate::config::DbConnect;

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

impl Store {
    /// A LISTEN session on `channel` on the primary the pool connects to.
    pub async fn listen(&self, channel: &str) -> Result<Listener, StoreError> {
        listen(self.primary(), channel).await
    }
}

/// Opens a session on `target` (`kuryer-listen` in `pg_stat_activity`) and
/// LISTENs on `channel`.
pub async fn listen(target: &DbConnect, channel: &str) -> Result<Listener, StoreError> {
    const OP: &str = "listen";
    let (client, mut conn) = super::connect::open_own_or_fail(OP, target, "kuryer-listen").await?;
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

#[cfg(any(test, feature = "test-hooks"))]
impl Listener {
    /// A setting of this session as the server has it (`SHOW name`).
    pub async fn show(&self, name: &str) -> Result<String, StoreError> {
        const OP: &str = "show a setting";
        let rows = self
            ._client
            .simple_query(&format!("SHOW {name}"))
            .await
            .op(OP)?;
        rows.iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .ok_or(StoreError::Data {
                op: OP,
                message: format!("SHOW {name} returned no row"),
            })
    }
}
