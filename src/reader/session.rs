//! grammers' `Session` kept in PostgreSQL: a reader account's data-centre
//! addresses and auth keys (encrypted), home DC, signed-in user and update
//! state. grammers calls `home_dc_id` and `dc_option` on every request and
//! synchronously, so the session lives in memory and writes go through to
//! the database; the update state, which moves with every pushed post, is
//! written by [`PgSession::flush`] (the reader calls it on a timer and at
//! shutdown), the rest at once.
//!
//! Unlike grammers' `MemorySession`, it answers `peer(PeerId::self_user())`
//! with the signed-in user, so the update stream fetches the account's
//! update state by itself when none is stored.

use std::collections::HashMap;
use std::net::{SocketAddrV4, SocketAddrV6};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use grammers_session::types::{
    ChannelState, DcOption, PeerAuth, PeerId, PeerInfo, UpdateState, UpdatesState,
};
use grammers_session::{BoxFuture, Session, SessionData};

use super::crypto::{CryptoError, SessionCipher};
use crate::store::{Store, StoreError, StoredDc};

/// Why the session could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The auth key's encryption.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A stored value does not parse.
    #[error("reader session {account}: {message}")]
    Corrupt {
        /// The account.
        account: String,
        /// What is wrong.
        message: String,
    },
}

struct State {
    data: SessionData,
    self_user: Option<(i64, i64)>,
}

/// A reader account's grammers session, stored in PostgreSQL.
pub struct PgSession {
    account: String,
    store: Store,
    cipher: Arc<SessionCipher>,
    state: Mutex<State>,
    dirty: AtomicBool,
}

impl PgSession {
    /// Loads the session of `account` (creating the account row when it
    /// does not exist). A new session knows Telegram's data centres and no key.
    pub async fn load(
        store: Store,
        cipher: Arc<SessionCipher>,
        account: &str,
    ) -> Result<Arc<Self>, SessionError> {
        store.ensure_reader_account(account, None).await?;
        let stored = store
            .load_session(account)
            .await?
            .ok_or_else(|| SessionError::Corrupt {
                account: account.to_owned(),
                message: "the account row vanished".to_owned(),
            })?;
        let corrupt = |message: String| SessionError::Corrupt {
            account: account.to_owned(),
            message,
        };
        let mut data = SessionData {
            home_dc: stored.home_dc,
            ..SessionData::default()
        };
        for dc in &stored.dcs {
            let auth_key = match &dc.auth_key_enc {
                Some(sealed) => Some(cipher.open(account, dc.dc_id, sealed)?),
                None => None,
            };
            data.dc_options.insert(
                dc.dc_id,
                DcOption {
                    id: dc.dc_id,
                    ipv4: dc
                        .ipv4
                        .parse::<SocketAddrV4>()
                        .map_err(|e| corrupt(format!("DC {} ipv4: {e}", dc.dc_id)))?,
                    ipv6: dc
                        .ipv6
                        .parse::<SocketAddrV6>()
                        .map_err(|e| corrupt(format!("DC {} ipv6: {e}", dc.dc_id)))?,
                    auth_key,
                },
            );
        }
        if let Some(json) = &stored.update_state {
            data.updates_state = state_from_json(json).map_err(corrupt)?;
        }
        if let Some((id, hash)) = stored.user {
            data.peer_infos
                .insert(PeerId::user_unchecked(id), self_info(id, hash));
        }
        Ok(Arc::new(Self {
            account: account.to_owned(),
            store,
            cipher,
            state: Mutex::new(State {
                data,
                self_user: stored.user,
            }),
            dirty: AtomicBool::new(false),
        }))
    }

    /// Replaces the whole session with `data` (importing a session made
    /// elsewhere; the tests' way to hand over a key the fake issued).
    pub async fn import(&self, data: SessionData) -> Result<(), SessionError> {
        data.import_to(self).await
    }

    /// The store it lives in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The account's name.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The signed-in user's id, once signed in.
    pub fn user_id(&self) -> Option<i64> {
        self.lock().self_user.map(|(id, _)| id)
    }

    /// True when the home DC holds an auth key.
    pub fn has_auth_key(&self) -> bool {
        let s = self.lock();
        s.data
            .dc_options
            .get(&s.data.home_dc)
            .is_some_and(|o| o.auth_key.is_some())
    }

    /// Makes a channel known (its access hash), so grammers can fill its
    /// update gaps with getChannelDifference.
    pub fn know_channel(&self, bare_id: i64, access_hash: i64) {
        let info = PeerInfo::Channel {
            id: bare_id,
            auth: Some(PeerAuth::from_hash(access_hash)),
            kind: Some(grammers_session::types::ChannelKind::Broadcast),
        };
        self.lock().data.peer_infos.insert(info.id(), info);
    }

    /// The access hash of a channel the session has seen, if any.
    pub fn channel_access_hash(&self, bare_id: i64) -> Option<i64> {
        let id = PeerId::channel(bare_id)?;
        match self.lock().data.peer_infos.get(&id)? {
            PeerInfo::Channel { auth, .. } => auth.map(PeerAuth::hash),
            _ => None,
        }
    }

    /// Writes the update state when it changed since the last flush.
    pub async fn flush(&self) -> Result<(), SessionError> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let json = state_to_json(&self.lock().data.updates_state);
        if let Err(e) = self
            .store
            .set_session_update_state(&self.account, &json)
            .await
        {
            self.dirty.store(true, Ordering::Release);
            return Err(e.into());
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn self_info(id: i64, hash: i64) -> PeerInfo {
    PeerInfo::User {
        id,
        auth: Some(PeerAuth::from_hash(hash)),
        bot: Some(false),
        is_self: Some(true),
    }
}

fn state_to_json(s: &UpdatesState) -> serde_json::Value {
    serde_json::json!({
        "pts": s.pts, "qts": s.qts, "date": s.date, "seq": s.seq,
        "channels": s.channels.iter().map(|c| [c.id, i64::from(c.pts)]).collect::<Vec<_>>(),
    })
}

fn state_from_json(v: &serde_json::Value) -> Result<UpdatesState, String> {
    let int = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_i64)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| format!("update state: no {k}"))
    };
    let channels = v
        .get("channels")
        .and_then(serde_json::Value::as_array)
        .ok_or("update state: no channels")?
        .iter()
        .map(|c| {
            let id = c.get(0).and_then(serde_json::Value::as_i64);
            let pts = c.get(1).and_then(serde_json::Value::as_i64);
            match (id, pts.and_then(|p| i32::try_from(p).ok())) {
                (Some(id), Some(pts)) => Ok(ChannelState { id, pts }),
                _ => Err("update state: bad channel entry".to_owned()),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(UpdatesState {
        pts: int("pts")?,
        qts: int("qts")?,
        date: int("date")?,
        seq: int("seq")?,
        channels,
    })
}

impl Session for PgSession {
    type Error = SessionError;

    fn home_dc_id(&self) -> Result<i32, SessionError> {
        Ok(self.lock().data.home_dc)
    }

    fn set_home_dc_id(&self, dc_id: i32) -> BoxFuture<'_, Result<(), SessionError>> {
        Box::pin(async move {
            self.lock().data.home_dc = dc_id;
            self.store.set_session_home_dc(&self.account, dc_id).await?;
            Ok(())
        })
    }

    fn dc_option(&self, dc_id: i32) -> Result<Option<DcOption>, SessionError> {
        Ok(self.lock().data.dc_options.get(&dc_id).cloned())
    }

    fn set_dc_option(&self, dc_option: &DcOption) -> BoxFuture<'_, Result<(), SessionError>> {
        let dc_option = dc_option.clone();
        Box::pin(async move {
            let unchanged = self.lock().data.dc_options.get(&dc_option.id) == Some(&dc_option);
            if unchanged {
                // grammers stores the option on every new connection.
                return Ok(());
            }
            let auth_key_enc = match &dc_option.auth_key {
                Some(k) => Some(self.cipher.seal(&self.account, dc_option.id, k)?),
                None => None,
            };
            self.store
                .save_session_dc(
                    &self.account,
                    &StoredDc {
                        dc_id: dc_option.id,
                        ipv4: dc_option.ipv4.to_string(),
                        ipv6: dc_option.ipv6.to_string(),
                        auth_key_enc,
                    },
                )
                .await?;
            self.lock().data.dc_options.insert(dc_option.id, dc_option);
            Ok(())
        })
    }

    fn peer(&self, peer: PeerId) -> BoxFuture<'_, Result<Option<PeerInfo>, SessionError>> {
        Box::pin(async move {
            let s = self.lock();
            if peer == PeerId::self_user() {
                return Ok(s.self_user.map(|(id, hash)| self_info(id, hash)));
            }
            Ok(s.data.peer_infos.get(&peer).cloned())
        })
    }

    fn cache_peer(&self, peer: PeerInfo) -> BoxFuture<'_, Result<(), SessionError>> {
        Box::pin(async move {
            let newly_self = match &peer {
                PeerInfo::User {
                    id,
                    auth: Some(auth),
                    is_self: Some(true),
                    ..
                } => {
                    let mine = (*id, auth.hash());
                    let mut s = self.lock();
                    let changed = s.self_user != Some(mine);
                    s.self_user = Some(mine);
                    changed.then_some(mine)
                }
                _ => None,
            };
            {
                let mut s = self.lock();
                let id = peer.id();
                match s.data.peer_infos.get_mut(&id) {
                    Some(known) => {
                        known.extend_info(&peer);
                    }
                    None => {
                        s.data.peer_infos.insert(id, peer);
                    }
                }
            }
            if let Some((id, hash)) = newly_self {
                self.store.set_session_user(&self.account, id, hash).await?;
            }
            Ok(())
        })
    }

    fn updates_state(&self) -> BoxFuture<'_, Result<UpdatesState, SessionError>> {
        Box::pin(async move { Ok(self.lock().data.updates_state.clone()) })
    }

    fn set_update_state(&self, update: UpdateState) -> BoxFuture<'_, Result<(), SessionError>> {
        Box::pin(async move {
            let whole = matches!(update, UpdateState::All(_));
            {
                let mut s = self.lock();
                let st = &mut s.data.updates_state;
                match update {
                    UpdateState::All(all) => *st = all,
                    UpdateState::Primary { pts, date, seq } => {
                        st.pts = pts;
                        st.date = date;
                        st.seq = seq;
                    }
                    UpdateState::Secondary { qts } => st.qts = qts,
                    UpdateState::Channel { id, pts } => {
                        st.channels.retain(|c| c.id != id);
                        st.channels.push(ChannelState { id, pts });
                    }
                }
            }
            self.dirty.store(true, Ordering::Release);
            // The whole state is set at login and when the stream starts:
            // kept at once, so a crash right after still has it.
            if whole {
                self.flush().await?;
            }
            Ok(())
        })
    }
}

/// The peers a session knows, for tests.
pub fn known_peers(session: &PgSession) -> HashMap<PeerId, PeerInfo> {
    session.lock().data.peer_infos.clone()
}
