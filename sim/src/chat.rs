//! `kuryer-sim chat`: a person talking to the bot, on plain lines of a
//! terminal, over a running `kuryer-sim`'s control API (its people's routes,
//! `control_api/people_routes.rs`). What the person types is sent as their
//! message; what the bot sends to their chat — answers, keyboards, edits,
//! delivered posts — is printed as it arrives.
//!
//! Lines typed:
//! - a number `N` while a keyboard is shown: presses its button `[N]`;
//! - `:forward CHANNEL POST`: forwards post `POST` of channel `CHANNEL`
//!   (its `-100…` id) to the bot;
//! - `:quit` (or the end of input): leaves;
//! - anything else: a message to the bot (`/start`, `/add @news`, …).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The chat client's command line.
#[derive(Debug, Clone, clap::Args)]
pub struct ChatArgs {
    /// The control API of the running kuryer-sim (printed at its start;
    /// its `--listen` default unless told otherwise).
    #[arg(long, default_value = "http://127.0.0.1:8082")]
    pub control: String,
    /// The person's user id (their private chat with the bot has the same id).
    #[arg(long, default_value_t = 42)]
    pub user: i64,
    /// Their app's language (`language_code`, e.g. `uz`); absent: not shared.
    #[arg(long)]
    pub lang: Option<String>,
    /// The bot talked to, by the control API's index (default: the first
    /// `--bot-token` kuryer-sim was given).
    #[arg(long)]
    pub bot: Option<usize>,
    /// How often the chat is read for new messages, in milliseconds.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(20..=10_000))]
    pub poll_ms: u64,
}

/// The keyboard shown last: its message and its buttons' data, `[1]` first.
struct Keyboard {
    seq: u64,
    message_id: i64,
    edits: u64,
    data: Vec<String>,
}

struct Client<W> {
    http: reqwest::Client,
    args: ChatArgs,
    out: W,
    /// `after` of the next read of the chat.
    next: u64,
    keyboard: Option<Keyboard>,
}

/// Runs the client on standard input and output until `:quit` or the end of
/// input. The person's lines are echoed when input is not a terminal, so a
/// piped conversation reads as one.
pub async fn main(args: ChatArgs) -> anyhow::Result<()> {
    let echo = !std::io::stdin().is_terminal();
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    run(args, rx, std::io::stdout(), echo).await
}

/// The client over `lines` (what the person types), writing to `out`.
pub async fn run<W: Write>(
    args: ChatArgs,
    mut lines: mpsc::Receiver<String>,
    out: W,
    echo: bool,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let poll = Duration::from_millis(args.poll_ms);
    let mut c = Client {
        http,
        args,
        out,
        next: 0,
        keyboard: None,
    };
    c.read_chat().await.with_context(|| {
        format!(
            "cannot read the chat from kuryer-sim's control API at {} (is kuryer-sim running?)",
            c.args.control
        )
    })?;
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { break };
                let line = line.trim().to_owned();
                if line.is_empty() {
                    continue;
                }
                if echo {
                    c.say(&format!("you: {line}"))?;
                }
                if line == ":quit" {
                    break;
                }
                if let Err(e) = c.act(&line).await {
                    c.say(&format!("error: {e:#}"))?;
                }
            }
            () = tokio::time::sleep(poll) => {
                c.read_chat().await.with_context(|| {
                    format!("kuryer-sim at {} stopped answering", c.args.control)
                })?;
            }
        }
    }
    Ok(())
}

impl<W: Write> Client<W> {
    fn say(&mut self, line: &str) -> anyhow::Result<()> {
        writeln!(self.out, "{line}")?;
        self.out.flush()?;
        Ok(())
    }

    /// A control call; a refusal is its message.
    async fn post(&self, route: &str, body: Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}{route}", self.args.control))
            .json(&body)
            .send()
            .await?;
        let ok = r.status().is_success();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !ok {
            anyhow::bail!("{}", v["message"].as_str().unwrap_or("refused"));
        }
        Ok(v)
    }

    async fn act(&mut self, line: &str) -> anyhow::Result<()> {
        let user = self.args.user;
        let bot = self.args.bot;
        if let Ok(n) = line.parse::<usize>()
            && let Some(k) = &self.keyboard
        {
            let data = n
                .checked_sub(1)
                .and_then(|i| k.data.get(i))
                .with_context(|| format!("no button [{n}]: the keyboard has {}", k.data.len()))?;
            let body = json!({"message_id": k.message_id, "data": data, "bot": bot});
            self.post(&format!("/people/{user}/presses"), body).await?;
            return Ok(());
        }
        if let Some(rest) = line.strip_prefix(":forward") {
            let mut parts = rest.split_whitespace().map(str::parse::<i64>);
            let (Some(Ok(channel)), Some(Ok(post)), None) =
                (parts.next(), parts.next(), parts.next())
            else {
                anyhow::bail!(":forward takes a channel id and a post id: `:forward -1001234 5`");
            };
            let body = json!({"channel": channel, "message_id": post, "bot": bot});
            self.post(&format!("/people/{user}/forwards"), body).await?;
            return Ok(());
        }
        let body = json!({"text": line, "lang": self.args.lang, "bot": bot});
        self.post(&format!("/people/{user}/says"), body).await?;
        Ok(())
    }

    async fn get(&self, after: u64, limit: u64) -> anyhow::Result<Value> {
        let url = format!(
            "{}/chats/{}/messages?after={after}&limit={limit}",
            self.args.control, self.args.user
        );
        Ok(self
            .http
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Prints what arrived since the last read, and the shown keyboard's
    /// message again when it was edited.
    async fn read_chat(&mut self) -> anyhow::Result<()> {
        if let Some(k) = &self.keyboard {
            let (seq, edits) = (k.seq, k.edits);
            let page = self.get(seq - 1, 1).await?;
            if let Some(m) = page["messages"].get(0)
                && m["edits"].as_u64().unwrap_or(0) != edits
            {
                self.show(m, "bot (edited)")?;
            }
        }
        loop {
            let page = self.get(self.next, 100).await?;
            let messages = page["messages"].as_array().cloned().unwrap_or_default();
            for m in &messages {
                let who = if m["source"].is_array() {
                    "post"
                } else {
                    "bot"
                };
                self.show(m, who)?;
            }
            self.next = page["next"].as_u64().unwrap_or(self.next);
            if messages.len() < 100 {
                return Ok(());
            }
        }
    }

    /// Prints one message: its text (a delivered post with where it came
    /// from), then its buttons, numbered.
    fn show(&mut self, m: &Value, who: &str) -> anyhow::Result<()> {
        let text = m["text"].as_str().unwrap_or("(no text: media)");
        let from = match m["source"].as_array().map(Vec::as_slice) {
            Some([chat, id]) => format!(" (channel {chat}, post {id})"),
            _ => String::new(),
        };
        let mut lines = text.lines();
        let first = lines.next().unwrap_or("");
        self.say(&format!("{who}{from}: {first}"))?;
        for l in lines {
            self.say(&format!("  {l}"))?;
        }
        let rows = m["reply_markup"]["inline_keyboard"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut data = Vec::new();
        for row in &rows {
            let mut shown = Vec::new();
            for b in row.as_array().into_iter().flatten() {
                let label = b["text"].as_str().unwrap_or("?");
                if let Some(d) = b["callback_data"].as_str() {
                    data.push(d.to_owned());
                    shown.push(format!("[{}] {label}", data.len()));
                } else if let Some(u) = b["url"].as_str() {
                    shown.push(format!("({label}: {u})"));
                }
            }
            if !shown.is_empty() {
                self.say(&format!("  {}", shown.join("   ")))?;
            }
        }
        if data.is_empty() {
            if who == "bot (edited)" {
                // The shown keyboard was edited away.
                self.keyboard = None;
            }
        } else {
            self.keyboard = Some(Keyboard {
                seq: m["seq"].as_u64().unwrap_or(1),
                message_id: m["message_id"].as_i64().unwrap_or(0),
                edits: m["edits"].as_u64().unwrap_or(0),
                data,
            });
        }
        Ok(())
    }
}
