//! What a subscription's settings change in a send: its text
//! transforms applied to a copied text or single caption, and the forum
//! topic every request names; and what a deleted topic's error means.

use std::collections::HashMap;
use std::sync::Arc;

use teloxide::types::{MessageId, ThreadId};
use teloxide::{ApiError, RequestError};

use crate::model::{Delivery, DeliveryMode};
use crate::outcome::CallResult;
use crate::transform::{CAPTION_LIMIT, TEXT_LIMIT, Transform};

/// What a subscription's settings change in a send: the text or caption
/// after its transforms (`None`: the post's own).
#[derive(Debug, Clone, Default)]
pub(crate) struct Shaped {
    pub(crate) text: Option<(String, Vec<teloxide::types::MessageEntity>)>,
    /// The forum topic every request names (`message_thread_id`).
    pub(crate) thread: Option<ThreadId>,
}

impl Shaped {
    /// The text a plain-text fallback sends.
    pub(crate) fn plain(&self, d: &Delivery) -> String {
        match &self.text {
            Some((t, _)) => t.clone(),
            None => d.post.text.clone().unwrap_or_default(),
        }
    }
}

/// Compiled text transforms by subscription, with the JSON they were
/// compiled from (a changed setting compiles again).
#[derive(Default)]
pub(crate) struct Shaper {
    transforms: HashMap<i64, (Option<String>, Option<Arc<Transform>>)>,
}

impl Shaper {
    /// The subscription's transforms applied to the post, where they can
    /// be: a copied text (`sendMessage`) or the caption of one copied media
    /// message (`copyMessage`'s `caption`). Forwards keep the original, and
    /// `copyMessages` (albums) takes no caption.
    pub(crate) fn shape(&mut self, d: &Delivery) -> Shaped {
        let thread = d.sub.thread_id.map(|t| ThreadId(MessageId(t)));
        let mut shaped = self.shape_text(d);
        shaped.thread = thread;
        shaped
    }

    fn shape_text(&mut self, d: &Delivery) -> Shaped {
        let stored = d.sub.transform.as_deref();
        if stored.is_none() || d.sub.mode != DeliveryMode::Copy || !d.post.copyable {
            self.transforms.remove(&d.sub.subscription_id);
            return Shaped::default();
        }
        let entry = self
            .transforms
            .entry(d.sub.subscription_id)
            .or_insert((None, None));
        if entry.0.as_deref() != stored {
            *entry = (
                stored.map(str::to_owned),
                Transform::from_stored(stored).map(Arc::new),
            );
        }
        let Some(tr) = entry.1.clone() else {
            return Shaped::default();
        };
        let post = &d.post;
        let limit = match (post.media, post.copy_ids().len()) {
            (None, _) if post.text.is_some() => TEXT_LIMIT,
            (Some(_), 1) => CAPTION_LIMIT,
            _ => return Shaped::default(),
        };
        let text = post.text.as_deref().unwrap_or_default();
        Shaped {
            text: Some(tr.apply(text, &post.entities, limit)),
            thread: None,
        }
    }
}

/// A deleted forum topic: Telegram answers "message thread not found" to
/// any send naming it. The destination (that topic) is gone; the rest of
/// the chat is not.
pub(crate) fn topic_gone(e: &RequestError, shaped: &Shaped) -> Option<CallResult> {
    match e {
        RequestError::Api(ApiError::Unknown(text))
            if shaped.thread.is_some() && text.contains("message thread not found") =>
        {
            Some(CallResult::Gone(TOPIC_DELETED.into()))
        }
        _ => None,
    }
}

/// The reason a destination recorded when its forum topic was deleted.
pub const TOPIC_DELETED: &str = "topic deleted";
