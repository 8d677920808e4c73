//! A channel source that reads the fake Telegram process's history route
//! over HTTP (`GET /history?chat=C&after=N&limit=L`), the way the Python
//! baseline reads it. The seed scenario's own runs read an in-process copy
//! of the channels instead ([`kuryer_sim::source::SimSource`]), which makes
//! no network call at all; a kuryer run compared with the baseline reads
//! through this source, so that both sides pay the same for reading.

use futures_util::future::LocalBoxFuture;
use kuryer_actors::model::{MediaKind, MessageEntity, SourceMessage};
use kuryer_actors::ports::{ChannelSource, SourceError};
use serde::Deserialize;

/// One message as the history route writes it.
#[derive(Deserialize)]
struct HistoryMessage {
    id: i32,
    date: i64,
    text: Option<String>,
    #[serde(default)]
    entities: Vec<serde_json::Value>,
    media: Option<String>,
    media_group_id: Option<String>,
    #[serde(default)]
    protected: bool,
}

impl From<HistoryMessage> for SourceMessage {
    fn from(m: HistoryMessage) -> Self {
        SourceMessage {
            id: m.id,
            date: chrono::DateTime::from_timestamp(m.date, 0).unwrap_or_default(),
            entities: m
                .entities
                .into_iter()
                .filter_map(|e| serde_json::from_value::<MessageEntity>(e).ok())
                .collect(),
            text: m.text,
            media: m.media.as_deref().and_then(|k| match k {
                "photo" => Some(MediaKind::Photo),
                "video" => Some(MediaKind::Video),
                "document" => Some(MediaKind::Document),
                _ => None,
            }),
            media_group_id: m.media_group_id,
            copyable: !m.protected,
            relay: None,
        }
    }
}

/// Reads channel `chat_id` from the fake's control API at `control`.
pub(crate) struct HttpHistorySource {
    http: reqwest::Client,
    url: String,
    chat_id: i64,
}

impl HttpHistorySource {
    /// `http` is shared by every channel's source (one connection pool).
    pub(crate) fn new(http: reqwest::Client, control: &str, chat_id: i64) -> Self {
        Self {
            http,
            url: format!("{control}/history"),
            chat_id,
        }
    }
}

impl ChannelSource for HttpHistorySource {
    fn fetch(
        &mut self,
        after: i32,
        limit: usize,
    ) -> LocalBoxFuture<'_, Result<Vec<SourceMessage>, SourceError>> {
        Box::pin(async move {
            let transient = |e: reqwest::Error| SourceError::Transient {
                message: e.to_string(),
                retry_after: None,
            };
            let page: Vec<HistoryMessage> = self
                .http
                .get(&self.url)
                .query(&[
                    ("chat", self.chat_id.to_string()),
                    ("after", after.to_string()),
                    ("limit", limit.clamp(1, 100).to_string()),
                ])
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(transient)?
                .json()
                .await
                .map_err(transient)?;
            Ok(page.into_iter().map(SourceMessage::from).collect())
        })
    }
}
