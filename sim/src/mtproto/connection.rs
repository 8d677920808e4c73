//! One TCP connection of the MTProto face: frames in (a reader task), the
//! envelope and service messages handled here, RPCs handed to the
//! dispatcher, responses and pushed updates encrypted and framed out.
//! Anything malformed — a bad frame, an unknown auth key (answered with the
//! transport error -404), a packet that does not decrypt, a plaintext that is
//! not an envelope — closes this connection only.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use grammers_tl_types::{self as tl, Deserializable, Identifiable, Serializable};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::crypto::{self, ServerKey};
use super::key_exchange::{self, Exchange};
use super::rpc::{self, CallCtx};
use super::session::{
    self, GZIP_PACKED, InMessage, MSG_CONTAINER, OutMessage, ServerSession, check_msg_id,
    constructor, current_slot, salt_for, salt_ok,
};
use super::transport::{self, FrameReader};
use super::world::{KeyState, Push, World};

/// State every connection shares.
pub(crate) struct Shared {
    pub(crate) world: Mutex<World>,
    /// The main data centre's address (DC [`THIS_DC`](super::objects::THIS_DC)).
    pub(crate) addr: SocketAddr,
    /// Every data centre of the fake, by DC id (what `help.getConfig` lists).
    pub(crate) dcs: Vec<(i32, SocketAddr)>,
}

impl Shared {
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Accepts connections to data centre `dc_id` until `stop` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    dc_id: i32,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(stream, dc_id, Arc::clone(&shared), stop.clone()));
                }
            }
            _ = stop.changed() => break,
        }
    }
}

/// What the frame reader passes on: a frame, the end of the stream, or why
/// the framing failed.
type FrameResult = Result<Option<Vec<u8>>, transport::FrameError>;

/// Why a connection ends.
enum Close {
    /// Send this transport error first (e.g. 404 for an unknown key).
    TransportError(i32),
    Silently,
}

struct Conn {
    id: u64,
    /// The data centre this connection reached.
    dc_id: i32,
    shared: Arc<Shared>,
    key: Option<ServerKey>,
    /// The key exchange under way on this connection, if any.
    exchange: Option<Exchange>,
    /// The salt the key exchange made, accepted besides the current ones.
    first_salt: Option<i64>,
    /// The last plain msg id sent (key exchange answers).
    plain_msg_id: i64,
    duplicated: bool,
    session: Option<ServerSession>,
    send_seq: i32,
    disconnect_at: Option<tokio::time::Instant>,
    push_tx: mpsc::UnboundedSender<Push>,
}

async fn connection(
    stream: TcpStream,
    dc_id: i32,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let id = {
        let mut w = shared.world();
        w.next_conn_id += 1;
        w.next_conn_id
    };
    let (rd, mut wr) = stream.into_split();
    let (reader, mut frame_rx) = spawn_frame_reader(rd);
    let (push_tx, mut push_rx) = mpsc::unbounded_channel::<Push>();
    let mut conn = Conn {
        id,
        dc_id,
        shared,
        key: None,
        exchange: None,
        first_salt: None,
        plain_msg_id: 0,
        duplicated: false,
        session: None,
        send_seq: 0,
        disconnect_at: None,
        push_tx,
    };
    let mut delayed: VecDeque<Push> = VecDeque::new();
    let far = || tokio::time::Instant::now() + Duration::from_secs(86_400);
    loop {
        let disconnect_at = conn.disconnect_at.unwrap_or_else(far);
        let delayed_due = delayed
            .front()
            .and_then(|p| p.due)
            .map_or_else(far, tokio::time::Instant::from_std);
        let out: Result<Vec<u8>, Close> = tokio::select! {
            frame = frame_rx.recv() => conn.on_frame(frame),
            push = push_rx.recv() => Ok(conn.on_push(push, &mut delayed)),
            () = tokio::time::sleep_until(delayed_due), if !delayed.is_empty() => {
                Ok(conn.push_due(&mut delayed))
            },
            () = tokio::time::sleep_until(disconnect_at), if conn.disconnect_at.is_some() => {
                Err(Close::Silently)
            },
            _ = stop.changed() => Err(Close::Silently),
        };
        if !write_out(&mut wr, out).await {
            break;
        }
    }
    reader.abort();
    let _ = wr.shutdown().await;
    conn.release();
}

/// Reads frames off the socket on a task of its own, so a half-read frame
/// is never lost to the select in [`connection`]; the channel ends after the
/// first end of stream or error.
fn spawn_frame_reader(rd: OwnedReadHalf) -> (JoinHandle<()>, mpsc::Receiver<FrameResult>) {
    let (frame_tx, frame_rx) = mpsc::channel(64);
    let reader = tokio::spawn(async move {
        let mut frames = FrameReader::new(rd);
        loop {
            let next = frames.next_frame().await;
            let end = !matches!(next, Ok(Some(_)));
            if frame_tx.send(next).await.is_err() || end {
                break;
            }
        }
    });
    (reader, frame_rx)
}

/// Writes what a step produced; false when the connection must end (a
/// close, with its transport error first, or a failed write).
async fn write_out(wr: &mut OwnedWriteHalf, out: Result<Vec<u8>, Close>) -> bool {
    match out {
        Ok(bytes) => bytes.is_empty() || wr.write_all(&bytes).await.is_ok(),
        Err(Close::TransportError(code)) => {
            let _ = wr.write_all(&transport::transport_error(code)).await;
            let _ = wr.flush().await;
            false
        }
        Err(Close::Silently) => false,
    }
}

impl Conn {
    /// One encrypted, framed packet carrying `messages`.
    fn seal(&mut self, messages: Vec<OutMessage>) -> Vec<u8> {
        let (Some(key), Some(session)) = (&self.key, &mut self.session) else {
            return Vec::new();
        };
        if messages.is_empty() {
            return Vec::new();
        }
        let salt = salt_for(key.id, current_slot());
        let plain = session.packet(salt, messages);
        let packet = crypto::encrypt_for_client(key, &plain);
        transport::encode_frame(&mut self.send_seq, &packet)
    }

    fn push(&mut self, body: &[u8]) -> Vec<u8> {
        if self.session.is_none() {
            return Vec::new();
        }
        self.seal(vec![OutMessage {
            body: body.to_vec(),
            response: false,
            content: true,
        }])
    }

    fn reject(&self) -> Close {
        self.shared.world().rejected_connections += 1;
        Close::Silently
    }

    /// A frame the reader task passed on: a packet to answer, or the end.
    fn on_frame(&mut self, frame: Option<FrameResult>) -> Result<Vec<u8>, Close> {
        match frame {
            Some(Ok(Some(payload))) => self.handle(payload),
            Some(Ok(None)) | None => Err(Close::Silently),
            Some(Err(e)) => {
                tracing::debug!(conn = self.id, error = %e, "MTProto fake: bad frame, closing");
                if !matches!(e, transport::FrameError::Io(_)) {
                    self.shared.world().rejected_connections += 1;
                }
                Err(Close::Silently)
            }
        }
    }

    /// An update pushed to this connection: sent now, or queued behind the
    /// delayed ones (in order) until it is due.
    fn on_push(&mut self, push: Option<Push>, delayed: &mut VecDeque<Push>) -> Vec<u8> {
        match push {
            Some(p) if p.due.is_some_and(|d| d > Instant::now()) || !delayed.is_empty() => {
                delayed.push_back(p);
                Vec::new()
            }
            Some(p) => self.push(&p.body),
            None => Vec::new(),
        }
    }

    /// The delayed pushes that are due now, in order.
    fn push_due(&mut self, delayed: &mut VecDeque<Push>) -> Vec<u8> {
        let mut bytes = Vec::new();
        while delayed
            .front()
            .is_some_and(|p| p.due.is_none_or(|d| d <= Instant::now()))
        {
            let p = delayed.pop_front().expect("checked");
            bytes.extend(self.push(&p.body));
        }
        bytes
    }

    /// The connection ended: its key is free for another connection, and
    /// nothing is pushed to it any more.
    fn release(&self) {
        let mut w = self.shared.world();
        if let Some(key) = &self.key
            && let Some(k) = w.keys.get_mut(&key.id)
            && k.active_conn == Some(self.id)
        {
            k.active_conn = None;
        }
        for acc in w.accounts.values_mut() {
            acc.pushes.retain(|t| t.conn_id != self.id);
        }
        w.holders.closed(self.id);
    }

    /// One packet from the client: the auth key it names, the envelope
    /// decrypted, the session rules (salt, msg id, first message, repeats),
    /// then its message or a container's messages, answered in one packet.
    fn handle(&mut self, mut payload: Vec<u8>) -> Result<Vec<u8>, Close> {
        if self.key.is_none() && payload.get(..8) == Some(&[0u8; 8][..]) {
            return self.key_exchange(&payload);
        }
        let key = self.bind_key(&payload)?;
        let Ok(plain) = crypto::decrypt_from_client(&key, &mut payload) else {
            return Err(self.reject());
        };
        let env = match session::parse_envelope(plain) {
            Ok(env) => env,
            Err(e) => {
                tracing::debug!(
                    conn = self.id,
                    reason = e.0,
                    "MTProto fake: bad plaintext, closing"
                );
                return Err(self.reject());
            }
        };
        if self
            .session
            .as_ref()
            .is_none_or(|s| s.session_id != env.session_id)
        {
            self.session = Some(ServerSession::new(env.session_id));
        }
        let msg = env.message;
        let mut outs = Vec::new();
        if !salt_ok(key.id, env.salt) && self.first_salt != Some(env.salt) {
            outs.push(bad_server_salt(&msg, key.id));
            return Ok(self.seal(outs));
        }
        if let Some(code) = check_msg_id(msg.msg_id) {
            outs.push(bad_msg(&msg, code));
            return Ok(self.seal(outs));
        }
        let session = self.session.as_mut().expect("set above");
        if !session.announced {
            session.announced = true;
            outs.push(new_session_created(session, &msg, key.id));
        }
        if !session.seen.insert(msg.msg_id) {
            return Ok(self.seal(outs));
        }
        if constructor(&msg.body) == Some(MSG_CONTAINER) {
            self.process_container(&msg, &mut outs)?;
        } else {
            self.process(msg, &mut outs)?;
        }
        Ok(self.seal(outs))
    }

    /// A plain message of the key exchange (`key_exchange.rs`), answered
    /// with a plain message; the new key is known to the fake once
    /// `dh_gen_ok` is sent, on this data centre only. A broken step closes
    /// the connection.
    fn key_exchange(&mut self, payload: &[u8]) -> Result<Vec<u8>, Close> {
        let Some(body) = key_exchange::parse_plain(payload) else {
            return Err(self.reject());
        };
        let shared = Arc::clone(&self.shared);
        let exchange = self.exchange.get_or_insert_with(Exchange::new);
        let step = exchange.on_message(body, |id| shared.world().keys.contains_key(&id));
        let reply = match step {
            Ok(key_exchange::Step::Reply(reply)) => reply,
            Ok(key_exchange::Step::Done {
                reply,
                key,
                first_salt,
            }) => {
                self.exchange = None;
                self.first_salt = Some(first_salt);
                tracing::debug!(
                    conn = self.id,
                    dc = self.dc_id,
                    "MTProto fake: auth key made"
                );
                let mut w = self.shared.world();
                w.keys_made += 1;
                w.keys.insert(
                    key.id,
                    KeyState {
                        key: *key,
                        dc: self.dc_id,
                        account: None,
                        revoked: false,
                        active_conn: None,
                        burned: false,
                        password_pending: None,
                    },
                );
                reply
            }
            Err(e) => {
                tracing::debug!(
                    conn = self.id,
                    reason = e.0,
                    "MTProto fake: key exchange refused"
                );
                return Err(self.reject());
            }
        };
        let plain = key_exchange::plain_message(&mut self.plain_msg_id, &reply);
        Ok(transport::encode_frame(&mut self.send_seq, &plain))
    }

    /// The auth key a packet names: the one this connection already uses,
    /// or one the fake knows on this data centre, bound to this connection
    /// now (a key already live on another connection marks this one
    /// duplicated). An unknown key — or one made on another data centre
    /// (keys are per DC: grammers keeps one per DC option, grammers-session
    /// `types::DcOption::auth_key`, and <https://core.telegram.org/api/datacenter>
    /// moves an authorization between DCs with `auth.exportAuthorization` /
    /// `auth.importAuthorization` on the other DC's own key) — closes with
    /// transport error −404 (source:
    /// <https://core.telegram.org/mtproto/mtproto-transports#transport-errors>);
    /// another key than the connection's closes silently (no public source;
    /// modelled as closing).
    fn bind_key(&mut self, payload: &[u8]) -> Result<ServerKey, Close> {
        if payload.len() < 8 {
            return Err(self.reject());
        }
        let key_id = i64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
        match &self.key {
            Some(k) if k.id != key_id => return Err(self.reject()),
            Some(_) => {}
            None => {
                let mut w = self.shared.world();
                let Some(state) = w.keys.get_mut(&key_id).filter(|k| k.dc == self.dc_id) else {
                    w.rejected_connections += 1;
                    return Err(Close::TransportError(404));
                };
                match state.active_conn {
                    None => state.active_conn = Some(self.id),
                    // Burned once a message of this connection decrypts
                    // under the key (`rpc::guarded`): the key id travels in
                    // clear, so a mere id must not burn anyone's key.
                    Some(other) if other != self.id => self.duplicated = true,
                    Some(_) => {}
                }
                self.key = Some(state.key.clone());
            }
        }
        Ok(self.key.clone().expect("set above"))
    }

    /// A container's messages, each under the msg id and repeat rules; a
    /// container with an odd seq_no is refused whole (34). Source:
    /// <https://core.telegram.org/mtproto/service_messages_about_messages>
    /// (error codes 16–64) and <https://core.telegram.org/mtproto/service_messages>
    /// (containers).
    fn process_container(
        &mut self,
        msg: &InMessage,
        outs: &mut Vec<OutMessage>,
    ) -> Result<(), Close> {
        if msg.seq_no % 2 != 0 {
            outs.push(bad_msg(msg, 34));
            return Ok(());
        }
        let Ok(inner) = session::parse_container(&msg.body) else {
            return Err(self.reject());
        };
        for m in inner {
            if let Some(code) = check_msg_id(m.msg_id) {
                outs.push(bad_msg(&m, code));
                continue;
            }
            let session = self.session.as_mut().expect("set above");
            if !session.seen.insert(m.msg_id) {
                continue;
            }
            self.process(m, outs)?;
        }
        Ok(())
    }

    /// One message (not a container): a service message or an RPC.
    fn process(&mut self, msg: InMessage, outs: &mut Vec<OutMessage>) -> Result<(), Close> {
        let Some(id) = constructor(&msg.body) else {
            return Err(self.reject());
        };
        let args = &msg.body[4..];
        match id {
            tl::types::MsgsAck::CONSTRUCTOR_ID => {
                if msg.seq_no % 2 != 0 {
                    outs.push(bad_msg(&msg, 34));
                }
            }
            tl::functions::Ping::CONSTRUCTOR_ID
            | tl::functions::PingDelayDisconnect::CONSTRUCTOR_ID => {
                let ping_id = i64::from_bytes(args).map_err(|_| self.reject())?;
                if id == tl::functions::PingDelayDisconnect::CONSTRUCTOR_ID {
                    let f = tl::functions::PingDelayDisconnect::from_bytes(args)
                        .map_err(|_| self.reject())?;
                    let secs = u64::try_from(f.disconnect_delay.max(0)).unwrap_or(0);
                    self.disconnect_at =
                        Some(tokio::time::Instant::now() + Duration::from_secs(secs));
                }
                outs.push(OutMessage {
                    body: tl::enums::Pong::Pong(tl::types::Pong {
                        msg_id: msg.msg_id,
                        ping_id,
                    })
                    .to_bytes(),
                    response: true,
                    content: false,
                });
            }
            tl::functions::GetFutureSalts::CONSTRUCTOR_ID => {
                let f =
                    tl::functions::GetFutureSalts::from_bytes(args).map_err(|_| self.reject())?;
                let key_id = self.key.as_ref().map_or(0, |k| k.id);
                outs.push(OutMessage {
                    body: session::future_salts(key_id, msg.msg_id, f.num),
                    response: true,
                    content: false,
                });
            }
            tl::functions::DestroySession::CONSTRUCTOR_ID => {
                let f =
                    tl::functions::DestroySession::from_bytes(args).map_err(|_| self.reject())?;
                outs.push(OutMessage {
                    body: session::rpc_result(
                        msg.msg_id,
                        &tl::enums::DestroySessionRes::DestroySessionNone(
                            tl::types::DestroySessionNone {
                                session_id: f.session_id,
                            },
                        )
                        .to_bytes(),
                    ),
                    response: true,
                    content: true,
                });
            }
            GZIP_PACKED => {
                let inner = session::gunzip(&msg.body).map_err(|_| self.reject())?;
                return self.process(InMessage { body: inner, ..msg }, outs);
            }
            MSG_CONTAINER => outs.push(bad_msg(&msg, 64)),
            tl::types::MsgsStateReq::CONSTRUCTOR_ID
            | tl::types::MsgResendReq::CONSTRUCTOR_ID
            | tl::types::HttpWait::CONSTRUCTOR_ID => {}
            _ => {
                if msg.seq_no % 2 == 0 {
                    outs.push(bad_msg(&msg, 35));
                    return Ok(());
                }
                let ctx = CallCtx {
                    key_id: self.key.as_ref().map_or(0, |k| k.id),
                    conn_id: self.id,
                    dc_id: self.dc_id,
                    dcs: self.shared.dcs.clone(),
                    duplicated: self.duplicated,
                    push_tx: self.push_tx.clone(),
                };
                let result = {
                    let mut w = self.shared.world();
                    rpc::call(&mut w, &ctx, msg.body)
                };
                outs.push(OutMessage {
                    body: session::rpc_result(msg.msg_id, &result),
                    response: true,
                    content: true,
                });
            }
        }
        Ok(())
    }
}

fn service(body: Vec<u8>) -> OutMessage {
    OutMessage {
        body,
        response: true,
        content: false,
    }
}

/// `bad_server_salt` (48) with the salt to use instead (source:
/// <https://core.telegram.org/mtproto/service_messages_about_messages>,
/// "Notice of Ignored Error Message").
fn bad_server_salt(msg: &InMessage, key_id: i64) -> OutMessage {
    service(
        tl::enums::BadMsgNotification::BadServerSalt(tl::types::BadServerSalt {
            bad_msg_id: msg.msg_id,
            bad_msg_seqno: msg.seq_no,
            error_code: 48,
            new_server_salt: salt_for(key_id, current_slot()),
        })
        .to_bytes(),
    )
}

/// `new_session_created`, sent once before the first answer of a session
/// (source: <https://core.telegram.org/mtproto/service_messages>,
/// "New Session Creation Notification").
fn new_session_created(session: &ServerSession, msg: &InMessage, key_id: i64) -> OutMessage {
    OutMessage {
        body: tl::enums::NewSession::Created(tl::types::NewSessionCreated {
            first_msg_id: msg.msg_id,
            unique_id: session.unique_id,
            server_salt: salt_for(key_id, current_slot()),
        })
        .to_bytes(),
        response: false,
        content: true,
    }
}

fn bad_msg(msg: &InMessage, code: i32) -> OutMessage {
    service(
        tl::enums::BadMsgNotification::Notification(tl::types::BadMsgNotification {
            bad_msg_id: msg.msg_id,
            bad_msg_seqno: msg.seq_no,
            error_code: code,
        })
        .to_bytes(),
    )
}
