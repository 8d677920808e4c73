//! A `kuryer fake-telegram` child process and a client of its control API.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::{Value, json};

/// What the fake process simulates.
#[derive(Debug, Clone, Default)]
pub struct FakeSpec {
    /// Telegram's limits × this; 0: no limits.
    pub limit_scale: f64,
    /// Demo channels.
    pub channels: u32,
    /// Demo users.
    pub users: u32,
    /// Group chats.
    pub groups: u32,
    /// Bots.
    pub bots: usize,
}

/// A running fake Telegram process. Stopped (and waited for) on
/// [`FakeProcess::quit`], killed if dropped without it.
pub struct FakeProcess {
    child: Child,
    /// Kept open: the child exits when it closes.
    _stdin: Option<ChildStdin>,
    /// Base URL of its Bot API.
    pub bot_api: String,
    control: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Announce {
    bot_api: String,
    control: String,
}

/// The fake's delivery report and audit (see `sim::control`).
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
    pub allowed_per_chat_per_s: f64,
    pub allowed_per_group_per_min: f64,
    pub max_bot_requests_in_1s: u64,
    pub max_private_chat_requests_in_1s: u64,
    pub max_group_requests_in_60s: u64,
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
}

impl FakeProcess {
    /// Starts `kuryer fake-telegram` (this very binary) and waits until it listens.
    pub fn spawn(spec: &FakeSpec) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the kuryer binary")?;
        let mut child = Command::new(exe)
            .arg("fake-telegram")
            .args(["--limit-scale", &spec.limit_scale.to_string()])
            .args(["--channels", &spec.channels.to_string()])
            .args(["--users", &spec.users.to_string()])
            .args(["--groups", &spec.groups.to_string()])
            .args(["--bots", &spec.bots.max(1).to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting kuryer fake-telegram")?;
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
            .build()?;
        Ok(Self {
            child,
            _stdin: stdin,
            bot_api: announce.bot_api,
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
