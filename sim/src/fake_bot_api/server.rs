//! The fake's HTTP server: an actix-web server on a thread of its own, its
//! control (start, down and up again, stop), and the request handler that
//! dispatches each request to the shared state.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::Value;

use super::FakeLimits;
use super::json::me_json;
use super::limits::Rules;
use super::state::State;
use super::wire::{Method, Params, Reply, split_client, split_path};

/// Cap on a `getUpdates` long poll, like Telegram's own.
const MAX_POLL_TIMEOUT_SECS: u64 = 50;
/// Longer than reqwest's 90 s idle-pool timeout, so the client always closes
/// an idle connection first: a server-side close racing a new request would
/// show up in the daemon as a spurious network error.
const KEEP_ALIVE: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------
// Server lifecycle

/// Owns the server thread; dropping the last `FakeTelegram` drops this.
pub(super) struct ServerControl {
    pub(super) addr: SocketAddr,
    inner: Mutex<ControlInner>,
}

struct ControlInner {
    /// `Some` while serving.
    handle: Option<ServerHandle>,
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
    thread: Option<JoinHandle<()>>,
    stopped: bool,
}

enum Command {
    Up,
    Quit,
}

enum Event {
    Started(io::Result<(ServerHandle, SocketAddr)>),
    Stopped,
}

impl ServerControl {
    /// Starts the server thread (see [`FakeTelegram::start`](super::FakeTelegram::start))
    /// and returns once the socket is listening.
    pub(super) fn start(shared: &Arc<Shared>, port: u16) -> io::Result<Self> {
        let (event_tx, event_rx) = mpsc::channel();
        let (command_tx, command_rx) = mpsc::channel();
        let thread_shared = Arc::clone(shared);
        let thread = std::thread::Builder::new()
            .name("fake-telegram".to_owned())
            .spawn(move || server_thread(&thread_shared, port, &event_tx, &command_rx))?;
        let (handle, addr) = match event_rx.recv() {
            Ok(Event::Started(Ok(started))) => started,
            Ok(Event::Started(Err(e))) => {
                drop(command_tx);
                let _ = thread.join();
                return Err(e);
            }
            _ => {
                return Err(io::Error::other(
                    "the fake Telegram server thread ended before listening",
                ));
            }
        };
        tracing::debug!(%addr, "Fake Telegram Bot API listening.");
        Ok(ServerControl {
            addr,
            inner: Mutex::new(ControlInner {
                handle: Some(handle),
                commands: command_tx,
                events: event_rx,
                thread: Some(thread),
                stopped: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ControlInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn set_down(&self, shared: &Shared, down: bool) {
        let mut c = self.lock();
        if c.stopped {
            return;
        }
        if down {
            // Covers the connections a stopping worker still serves.
            shared.down.store(true, Ordering::SeqCst);
            c.stop_server();
            return;
        }
        if c.handle.is_none() {
            let _ = c.commands.send(Command::Up);
            match c.events.recv() {
                Ok(Event::Started(Ok((handle, _)))) => c.handle = Some(handle),
                Ok(Event::Started(Err(e))) => {
                    panic!("fake Telegram: cannot listen on {} again: {e}", self.addr)
                }
                _ => panic!("fake Telegram: the server thread is gone"),
            }
        }
        shared.down.store(false, Ordering::SeqCst);
    }

    pub(super) fn shutdown(&self) {
        let mut c = self.lock();
        if c.stopped {
            return;
        }
        c.stopped = true;
        c.stop_server();
        let _ = c.commands.send(Command::Quit);
        if let Some(thread) = c.thread.take() {
            let _ = thread.join();
        }
    }
}

impl ControlInner {
    /// Stops serving (not gracefully: open connections are dropped, which is
    /// the point of "down") and waits until the socket is closed.
    fn stop_server(&mut self) {
        if let Some(handle) = self.handle.take() {
            // `stop` sends its command at once; the returned future only
            // waits for completion, which the Stopped event reports instead.
            drop(handle.stop(false));
            while let Ok(event) = self.events.recv() {
                if matches!(event, Event::Stopped) {
                    break;
                }
            }
        }
    }
}

impl Drop for ServerControl {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn server_thread(
    shared: &Arc<Shared>,
    port: u16,
    events: &mpsc::Sender<Event>,
    commands: &mpsc::Receiver<Command>,
) {
    let system = actix_rt::System::new();
    let mut addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        let served = system.block_on(async {
            match build_server(shared, addr) {
                Ok((server, bound)) => {
                    // Later restarts (after `set_down`) reuse the same port.
                    addr = bound;
                    let _ = events.send(Event::Started(Ok((server.handle(), bound))));
                    let _ = server.await;
                    true
                }
                Err(e) => {
                    let _ = events.send(Event::Started(Err(e)));
                    false
                }
            }
        });
        if served {
            let _ = events.send(Event::Stopped);
        }
        match commands.recv() {
            Ok(Command::Up) => {}
            Ok(Command::Quit) | Err(_) => break,
        }
    }
}

fn build_server(shared: &Arc<Shared>, addr: SocketAddr) -> io::Result<(Server, SocketAddr)> {
    let data = web::Data::from(Arc::clone(shared));
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(handle))
    })
    .workers(workers)
    .backlog(4096)
    .keep_alive(KEEP_ALIVE)
    // The fake must not take over Ctrl-C from the demo or the test harness.
    .disable_signals()
    .shutdown_timeout(1)
    .bind(addr)?;
    let bound = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| io::Error::other("no address bound"))?;
    Ok((server.run(), bound))
}

// ---------------------------------------------------------------------------
// Request handling

async fn handle(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    if shared.down.load(Ordering::SeqCst) {
        return broken_response();
    }
    let reply = shared.serve(&req, &body).await;
    let (client, path) = split_client(req.path());
    let method = split_path(path).map_or(Method::Unknown, |(_, m)| Method::parse(m));
    // Telegram answers in tens of milliseconds, never in 0: the latency a
    // test set (`FakeTelegram::set_latency`), or an injected slow answer.
    // No source publishes the Bot API's response time; the test chooses
    // the figure and says it. The request's effect is recorded above,
    // before the wait: the Bot API server answers a send only once the
    // message exists (telegram-bot-api `Client.cpp` replies from the
    // `updateMessageSendSucceeded` handler), so an answer lost to a killed
    // client is a message sent. getUpdates long-polls on its own clock.
    let latency = match method {
        Method::GetUpdates => Duration::ZERO,
        _ => Duration::from_millis(shared.latency_ms.load(Ordering::Relaxed)),
    };
    let wait = reply.delay.unwrap_or_default().max(latency);
    if !wait.is_zero() {
        // A send answered late was made already (recorded above): while its
        // answer is on the way it is "in flight" for its client, as a
        // request is for a process killed before the answer arrives.
        let _flight = (method.is_send())
            .then(|| client.map(|c| InFlight::enter(&shared, c)))
            .flatten();
        actix_rt::time::sleep(wait).await;
    }
    // Serialising a `Value` cannot fail.
    let body = serde_json::to_vec(&reply.body).unwrap_or_default();
    HttpResponse::build(reply.status)
        .content_type("application/json")
        .body(body)
}

/// A response whose body fails after the head, so the connection is cut
/// mid-answer: the client sees a network error, as if the server were
/// unreachable, and not a 5xx (after which teloxide would sleep 10 s).
fn broken_response() -> HttpResponse {
    let body = futures_util::stream::once(async {
        Err::<web::Bytes, io::Error>(io::Error::other("the fake Telegram is down"))
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .streaming(body)
}

// ---------------------------------------------------------------------------
// Shared state

/// Everything the HTTP workers and the `FakeTelegram` handles share.
pub(super) struct Shared {
    rules: Rules,
    state: Mutex<State>,
    /// Set by `set_down(true)`: a request a stopping worker still reads gets
    /// its connection broken instead of an answer.
    down: AtomicBool,
    /// Called after every [`FakeTelegram::post`](super::FakeTelegram::post),
    /// outside the state lock: how another face of the world learns of it.
    pub(super) post_hook: Mutex<Option<super::PostHook>>,
    /// Every answer but getUpdates' waits this long (ms).
    pub(super) latency_ms: AtomicU64,
    /// Sends made whose answer is still on its way, by client.
    pub(super) in_flight: Mutex<std::collections::HashMap<String, u64>>,
}

/// One send's answer on its way, counted for its client until dropped
/// (answered, or the connection gone).
struct InFlight<'a> {
    shared: &'a Shared,
    client: String,
}

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared, client: &str) -> Self {
        *shared
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(client.to_owned())
            .or_default() += 1;
        Self {
            shared,
            client: client.to_owned(),
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut m = self
            .shared
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.client) {
            *n = n.saturating_sub(1);
        }
    }
}

impl Shared {
    pub(super) fn new(limits: FakeLimits) -> Self {
        Self {
            rules: Rules::new(&limits),
            state: Mutex::new(State::default()),
            down: AtomicBool::new(false),
            post_hook: Mutex::new(None),
            latency_ms: AtomicU64::new(0),
            in_flight: Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not turn every later request into a panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn serve(&self, req: &HttpRequest, body: &[u8]) -> Reply {
        let (client, path) = split_client(req.path());
        let path = split_path(path);
        let method = path.map_or(Method::Unknown, |(_, m)| Method::parse(m));
        let params = Params::parse(req, body);
        let (token, params) = {
            let mut st = self.lock();
            st.counters.requests_total += 1;
            st.counters.per_method[method as usize] += 1;
            if let Some(client) = client {
                *st.counters
                    .requests_by_client
                    .entry(client.to_owned())
                    .or_default() += 1;
            }
            if let Some(client) = client
                && method.is_send()
            {
                *st.counters
                    .sends_by_client
                    .entry(client.to_owned())
                    .or_default() += 1;
            }
            let Some((token, _)) = path else {
                return Reply::not_found();
            };
            let Some(bot) = st.bots.get(token).filter(|_| !st.revoked.contains(token)) else {
                st.counters.unauthorized_401 += 1;
                return Reply::error(401, "Unauthorized", None);
            };
            let params = match params {
                Ok(p) => p,
                Err(reply) => return reply,
            };
            match method {
                Method::Unknown => return Reply::not_found(),
                Method::GetMe => {
                    let mut me = me_json(&bot.user);
                    // A field a test took away, as a changed Bot API would.
                    for field in &st.get_me_omits {
                        if let Some(o) = me.as_object_mut() {
                            o.remove(field);
                        }
                    }
                    return Reply::ok(me);
                }
                Method::GetWebhookInfo => {
                    let url = bot.webhook.clone().unwrap_or_default();
                    return Reply::ok(serde_json::json!({
                        "url": url,
                        "has_custom_certificate": false,
                        "pending_update_count": bot.updates.len(),
                    }));
                }
                Method::DeleteWebhook => {
                    if let Some(bot) = st.bots.get_mut(token) {
                        bot.webhook = None;
                    }
                    return Reply::ok(Value::Bool(true));
                }
                // Long polling waits outside the lock.
                Method::GetUpdates => (token, params),
                m if m.is_mirror() => return st.mirror_method(token, method, &params),
                m if m.is_people() => return st.people_method(token, method, &params),
                _ => return st.send(&self.rules, token, method, &params),
            }
        };
        self.get_updates(token, &params)
            .await
            .unwrap_or_else(|reply| reply)
    }

    async fn get_updates(&self, token: &str, params: &Params) -> Result<Reply, Reply> {
        let offset = params.int("offset")?.unwrap_or(0);
        let limit = params.int("limit")?.unwrap_or(100).clamp(1, 100);
        let limit = usize::try_from(limit).unwrap_or(100);
        let timeout = params.int("timeout")?.unwrap_or(0);
        let timeout = u64::try_from(timeout)
            .unwrap_or(0)
            .min(MAX_POLL_TIMEOUT_SECS);
        let deadline = Instant::now() + Duration::from_secs(timeout);
        match self.lock().bots.get(token) {
            Some(bot) if bot.webhook.is_some() => {
                return Err(Reply::error(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
                    None,
                ));
            }
            Some(_) => {}
            None => return Err(Reply::error(401, "Unauthorized", None)),
        };
        // Telegram allows one getUpdates consumer a bot: a call that meets
        // another open one ends it with 409 ("terminated by other getUpdates
        // request"), counted, so tests can say two consumers never overlap.
        let (notify, ticket) = {
            let mut st = self.lock();
            let conflict = {
                let bot = st.bots.get_mut(token).expect("bots are never removed");
                let conflict = bot.polls_open > 0;
                bot.polls_open += 1;
                bot.poll_ticket += 1;
                if conflict {
                    bot.notify.notify_waiters();
                }
                (Arc::clone(&bot.notify), bot.poll_ticket, conflict)
            };
            if conflict.2 {
                st.counters.get_updates_conflicts += 1;
            }
            (conflict.0, conflict.1)
        };
        let _open = OpenPoll {
            shared: self,
            token,
        };
        loop {
            // Registered before looking at the queue, so an update pushed in
            // between still wakes us.
            let mut notified = std::pin::pin!(notify.notified());
            notified.as_mut().enable();
            {
                let mut st = self.lock();
                let bot = st.bots.get_mut(token).expect("bots are never removed");
                if bot.poll_ticket != ticket {
                    return Err(Reply::error(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                        None,
                    ));
                }
                bot.confirm(offset);
                if !bot.updates.is_empty() || Instant::now() >= deadline {
                    let updates = bot
                        .updates
                        .iter()
                        .take(limit)
                        .map(|(_, u)| u.clone())
                        .collect();
                    return Ok(Reply::ok(Value::Array(updates)));
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let _ = tokio::time::timeout(remaining, notified).await;
        }
    }
}

/// One getUpdates call being answered; closed however it ends (also when
/// the client goes away and the future is dropped).
struct OpenPoll<'a> {
    shared: &'a Shared,
    token: &'a str,
}

impl Drop for OpenPoll<'_> {
    fn drop(&mut self) {
        if let Some(bot) = self.shared.lock().bots.get_mut(self.token) {
            bot.polls_open = bot.polls_open.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use super::super::{FakeLimits, FakeTelegram};

    #[tokio::test]
    async fn a_request_caught_while_going_down_fails_at_the_network_level() {
        use teloxide::requests::Requester;

        let tg = FakeTelegram::start(FakeLimits::off()).unwrap();
        tg.add_bot("7:x");
        let bot = tg.bot("7:x");
        bot.get_me().await.expect("up");
        // What a stopping worker does with a request it still reads.
        tg.shared.down.store(true, Ordering::SeqCst);
        let started = Instant::now();
        let err = bot.get_me().await.unwrap_err();
        assert!(matches!(err, teloxide::RequestError::Network(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "no 5xx delay");
        tg.shared.down.store(false, Ordering::SeqCst);
        bot.get_me().await.expect("up again");
    }
}
