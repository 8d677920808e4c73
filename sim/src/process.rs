//! What a fake Telegram process simulates ([`FakeSpec`], also its command
//! line), and [`FakeProcess`]: a child process serving it, with a client of
//! its control API (`crate::control_api`).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::{Value, json};

/// The control API's address unless `--listen` says otherwise.
pub const DEFAULT_CONTROL: &str = "127.0.0.1:8082";
/// The Bot API face's port unless `--bot-api-port` says otherwise: the
/// port Telegram's own local Bot API server listens on by default
/// (tdlib/telegram-bot-api, README.md: `--http-port` "default is 8081").
/// A choice, not a modelled behaviour.
pub const DEFAULT_BOT_API_PORT: u16 = 8081;

/// What a fake Telegram process simulates: the one description of it, as
/// command-line options (`kuryer-sim`, `kuryer-bench fake-telegram`) and as
/// the spawner's argument.
#[derive(Debug, Clone, clap::Args)]
pub struct FakeSpec {
    /// Address of the control API (both URLs are printed as one JSON
    /// line). Fixed by default, so the chat client's `--control` and a
    /// config written once stay right across restarts; `127.0.0.1:0` takes
    /// a free port.
    #[arg(long, default_value = DEFAULT_CONTROL)]
    pub listen: std::net::SocketAddr,
    /// Port of the Bot API face on 127.0.0.1 (`telegram.bot_api_url`).
    /// Fixed by default, so a config for `kuryer run` need not change at
    /// each start; 0 takes a free port (tests running several at once).
    #[arg(long, default_value_t = DEFAULT_BOT_API_PORT)]
    pub bot_api_port: u16,
    /// Telegram's limits × K (0 = no limits).
    #[arg(long, default_value_t = 0.0)]
    pub limit_scale: f64,
    /// Demo channels `channel_chat(1..=channels)`.
    #[arg(long, default_value_t = 50)]
    pub channels: u32,
    /// Demo users' private chats.
    #[arg(long, default_value_t = 1000)]
    pub users: u32,
    /// Group chats `group_chat(1..=groups)`.
    #[arg(long, default_value_t = 0)]
    pub groups: u32,
    /// Bots `nth_bot_token(0..bots)` the fake knows.
    #[arg(long, default_value_t = 1)]
    pub bots: usize,
    /// More bot tokens the fake knows (`"<bot id>:<secret>"`, repeatable):
    /// the token a `kuryer run` pointed at the fake is configured with.
    /// Bot `bots + i` in the control API. They are on the command line, so
    /// use made-up ones, never a real bot's.
    #[arg(long = "bot-token", value_name = "TOKEN")]
    pub bot_tokens: Vec<String>,
    /// Serve the Bot API face alone (no MTProto data centre).
    #[arg(long)]
    pub no_mtproto: bool,
}

impl Default for FakeSpec {
    fn default() -> Self {
        Self {
            // Spawned ones (tests, benchmarks) take free ports: several run at once.
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            bot_api_port: 0,
            limit_scale: 0.0,
            channels: 50,
            users: 1000,
            groups: 0,
            bots: 1,
            bot_tokens: Vec::new(),
            no_mtproto: false,
        }
    }
}

impl FakeSpec {
    /// The same spec as command-line options.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--listen".into(),
            self.listen.to_string(),
            "--bot-api-port".into(),
            self.bot_api_port.to_string(),
            "--limit-scale".into(),
            self.limit_scale.to_string(),
            "--channels".into(),
            self.channels.to_string(),
            "--users".into(),
            self.users.to_string(),
            "--groups".into(),
            self.groups.to_string(),
            "--bots".into(),
            self.bots.max(1).to_string(),
        ];
        for t in &self.bot_tokens {
            args.push("--bot-token".into());
            args.push(t.clone());
        }
        if self.no_mtproto {
            args.push("--no-mtproto".into());
        }
        args
    }
}

/// A running fake Telegram process. Stopped (and waited for) on
/// [`FakeProcess::quit`], killed if dropped without it.
pub struct FakeProcess {
    child: Child,
    /// Kept open: the child exits when it closes.
    _stdin: Option<ChildStdin>,
    /// Base URL of its Bot API.
    pub bot_api: String,
    /// Address of its MTProto face (`127.0.0.1:PORT`), unless `--no-mtproto`.
    pub mtproto: Option<String>,
    control: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Announce {
    bot_api: String,
    control: String,
    mtproto: Option<String>,
}

/// The fake's delivery report and rate-limit audit (`POST /report`, see
/// `control_api/bot_api_routes.rs` and `control_api/rate_audit.rs`).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct FakeReport {
    pub expected: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub lost: u64,
    pub unexpected: u64,
    pub out_of_order: u64,
    pub albums_split: u64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    pub stats: FakeStatsJson,
    pub audit: Audit,
}

/// The fake's counters.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct FakeStatsJson {
    pub requests_total: u64,
    pub messages_received: u64,
    pub rate_limited_429: u64,
}

/// The limits audit from arrival times.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Audit {
    pub enforced: bool,
    pub allowed_per_bot_per_s: f64,
    /// A bot's limit in all with `allow_paid_broadcast`.
    #[serde(default)]
    pub allowed_paid_per_bot_per_s: f64,
    pub allowed_per_chat_per_s: f64,
    pub allowed_per_group_per_min: f64,
    pub max_bot_requests_in_1s: u64,
    pub max_private_chat_requests_in_1s: u64,
    pub max_group_requests_in_60s: u64,
    /// Densest second of any bot's messages sent without
    /// `allow_paid_broadcast`, album items counted one by one.
    #[serde(default)]
    pub max_bot_free_items_in_1s: u64,
    pub bots: Vec<BotAudit>,
}

/// One bot's requests.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct BotAudit {
    pub bot_id: i64,
    pub requests: u64,
    pub steady_requests: u64,
    pub steady_rate_per_s: f64,
    pub span_s: f64,
    /// Messages delivered (an album's items each).
    #[serde(default)]
    pub items: u64,
    /// Messages a second after the ramp-up, and those of them without
    /// `allow_paid_broadcast`.
    #[serde(default)]
    pub steady_items_per_s: f64,
    #[serde(default)]
    pub steady_free_items_per_s: f64,
}

impl FakeProcess {
    /// Starts `program args… <spec as options>` (a binary that serves
    /// [`crate::control_api::run`]) and waits until it listens.
    pub fn spawn(
        program: &std::path::Path,
        args: &[&str],
        spec: &FakeSpec,
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(program)
            .args(args)
            .args(spec.to_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("fake-telegram stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading fake-telegram's address")?;
        let announce: Announce = match serde_json::from_str(line.trim()) {
            Ok(a) => a,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("fake-telegram did not start ({e}): {line:?}");
            }
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(600))
            // The control server closes a connection idle for 5 s (actix's
            // keep-alive). A caller may block its runtime longer than that
            // (the baseline waits for its Python program synchronously), so
            // the pool never sees the close and the next request goes out
            // on a dead connection ("connection closed before message
            // completed"). Idle connections are dropped well before then,
            // judged by the clock at checkout, not by a task that must run.
            .pool_idle_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self {
            child,
            _stdin: stdin,
            bot_api: announce.bot_api,
            mtproto: announce.mtproto,
            control: announce.control,
            http,
        })
    }

    /// Base URL of the control API.
    pub fn control_url(&self) -> &str {
        &self.control
    }

    async fn post(&self, route: &str, body: &Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}{route}", self.control))
            .json(body)
            .send()
            .await?
            .error_for_status()?;
        Ok(r.json().await?)
    }

    /// Tells the fake which (destination, channel chat) pairs are subscribed.
    pub async fn set_pairs(&self, pairs: &[(i64, i64)]) -> anyhow::Result<()> {
        for chunk in pairs.chunks(200_000) {
            self.post("/pairs", &json!(chunk)).await?;
        }
        Ok(())
    }

    /// Publishes (channel `i`, round) posts; returns (channel chat, first message id) of each.
    pub async fn publish(&self, posts: &[(i64, u32)]) -> anyhow::Result<Vec<(i64, i32)>> {
        let v = self.post("/publish", &json!({ "posts": posts })).await?;
        Ok(serde_json::from_value(v["ids"].clone())?)
    }

    /// The fake's counters.
    pub async fn stats(&self) -> anyhow::Result<FakeStatsJson> {
        Ok(self
            .http
            .get(format!("{}/stats", self.control))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// The report over `posts` (all published when `None`); rates skip each
    /// bot's first `skip_s` seconds.
    pub async fn report(
        &self,
        posts: Option<&[(i64, i32)]>,
        skip_s: f64,
    ) -> anyhow::Result<FakeReport> {
        let v = self
            .post("/report", &json!({ "posts": posts, "skip_s": skip_s }))
            .await?;
        Ok(serde_json::from_value(v)?)
    }

    /// Stops the process and waits for it.
    pub async fn quit(mut self) {
        let _ = self.post("/quit", &json!({})).await;
        self._stdin = None;
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FakeProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
