//! The status page's HTML: plain markup and one inline style sheet, every
//! value escaped, forms that POST back to this server only.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};

use crate::instance_snapshot::{self, FloodWaits, Snapshot};
use crate::store::{
    AccountRow, BotLease, ChannelPage, DeadLetter, DestinationView, InstanceRow,
    InstanceSnapshotRow, SubscriptionView,
};

/// Everything one rendering shows; an `Err` is shown in its section.
pub(super) struct Page<'a> {
    pub search: &'a str,
    pub page: i64,
    pub per_page: i64,
    pub user_id: Option<i64>,
    pub message: Option<&'a str>,
    pub channels: Result<ChannelPage, String>,
    pub instances: Result<Vec<InstanceRow>, String>,
    pub bots: Result<Vec<BotLease>, String>,
    pub accounts: Result<Vec<AccountRow>, String>,
    /// Every instance's last snapshot: its queues and its accounts' flood waits.
    pub snapshots: Result<Vec<InstanceSnapshotRow>, String>,
    pub dead: Result<Vec<DeadLetter>, String>,
    pub dead_counts: Vec<(String, String, i64)>,
    #[allow(clippy::type_complexity)]
    pub user: Option<(
        Result<Vec<SubscriptionView>, String>,
        Result<Vec<DestinationView>, String>,
    )>,
    pub grafana_url: Option<&'a str>,
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0 1.5em 2em;color:#222}
h1{font-size:1.4em;margin:.6em 0}h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:2px 8px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b00}.ok{color:#070}.msg{background:#ffd;padding:.4em .8em;border:1px solid #dd9}
nav a{margin-right:1em}form.inline{display:inline}input[type=search]{width:20em}
.err{color:#b00;font-style:italic}";

/// Escapes text for HTML content and attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query value.
pub(super) fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

fn head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width\"><title>{}</title>\
         <style>{STYLE}</style></head><body>",
        esc(title)
    )
}

/// The login form.
pub(super) fn login(note: &str) -> String {
    let mut s = head("kuryer — sign in");
    s.push_str("<h1>kuryer status</h1>");
    if !note.is_empty() {
        let _ = write!(s, "<p class=bad>{}</p>", esc(note));
    }
    s.push_str(
        "<form method=post action=\"/status/login\"><label>API token (<code>http.api_token</code>) \
         <input type=password name=token autocomplete=current-password required></label> \
         <button type=submit>Sign in</button></form></body></html>",
    );
    s
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "—".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

/// "n of limit" left of a day's budget (used, limit); "—" before the
/// account's holder wrote today's.
fn left(budget: Option<(i32, i32)>) -> String {
    budget.map_or_else(
        || "—".to_owned(),
        |(used, limit)| format!("{} of {limit}", (limit - used).max(0)),
    )
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| esc(&v.to_string()))
}

fn error_row(s: &mut String, what: &str, e: &str) {
    let _ = write!(
        s,
        "<p class=err>{} could not be read: {}</p>",
        esc(what),
        esc(e)
    );
}

/// The whole page.
pub(super) fn render(p: &Page<'_>) -> String {
    let mut s = head("kuryer status");
    s.push_str("<h1>kuryer status</h1><nav>");
    for (id, name) in [
        ("instances", "Instances"),
        ("accounts", "Reader accounts"),
        ("queues", "Queues"),
        ("dead-letters", "Dead letters"),
        ("channels", "Channels"),
        ("user", "A user"),
    ] {
        let _ = write!(s, "<a href=\"#{id}\">{name}</a>");
    }
    if let Some(g) = p.grafana_url {
        let _ = write!(s, "<a href=\"{}\">Grafana dashboard</a>", esc(g));
    } else {
        s.push_str("<span title=\"set http.grafana_url\">Grafana dashboard: not configured (<code>http.grafana_url</code>)</span>");
    }
    s.push_str(
        " <a href=\"/metrics\">/metrics</a> <form class=inline method=post action=\"/status/logout\"><button>Sign out</button></form></nav>",
    );
    if let Some(m) = p.message {
        let _ = write!(s, "<p class=msg id=message>{}</p>", esc(m));
    }
    instances(&mut s, p);
    accounts(&mut s, p);
    queues(&mut s, p);
    dead_letters(&mut s, p);
    channels(&mut s, p);
    user(&mut s, p);
    s.push_str("</body></html>");
    s
}

fn instances(s: &mut String, p: &Page<'_>) {
    s.push_str("<h2 id=instances>Instances and leases</h2>");
    match &p.instances {
        Ok(rows) if rows.is_empty() => s.push_str("<p>No instance has registered.</p>"),
        Ok(rows) => {
            s.push_str("<table><tr><th>instance</th><th>state</th><th>host</th><th>machine id</th><th>version</th><th>started</th><th>heartbeat</th><th>channels</th><th>reader accounts</th><th>bots</th></tr>");
            for r in rows {
                let _ = write!(
                    s,
                    "<tr><td>{}</td><td class={}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
                    esc(&r.id),
                    if r.live { "ok" } else { "bad" },
                    if r.live { "live" } else { "dead" },
                    opt(r.host_name.as_deref()),
                    opt(r.machine_id.as_deref()),
                    esc(&r.version),
                    when(Some(r.started_at)),
                    when(Some(r.heartbeat_at)),
                    r.channels,
                    r.accounts,
                    r.bots
                );
            }
            s.push_str("</table>");
        }
        Err(e) => error_row(s, "Instances", e),
    }
    match &p.bots {
        Ok(rows) if !rows.is_empty() => {
            s.push_str("<table><tr><th>bot</th><th>getUpdates read by</th><th>since</th></tr>");
            for b in rows {
                let _ = write!(
                    s,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    b.bot_id,
                    opt(b.owner.as_deref()),
                    when(b.taken_at)
                );
            }
            s.push_str("</table>");
        }
        Ok(_) => {}
        Err(e) => error_row(s, "Bot leases", e),
    }
}

fn accounts(s: &mut String, p: &Page<'_>) {
    s.push_str("<h2 id=accounts>Reader accounts</h2>");
    match &p.accounts {
        Ok(rows) if rows.is_empty() => s.push_str(
            "<p>No reader account: only channels our bot administers are read (<code>kuryer login</code> adds one).</p>",
        ),
        Ok(rows) => {
            s.push_str("<table><tr><th>account</th><th>state</th><th>lease holder</th><th>lease until</th><th>channels</th><th>joined</th><th>flood wait until</th><th>look-ups left today</th><th>joins left today</th><th>flood waits (all instances, since each started)</th><th>seconds waited</th></tr>");
            let floods = flood_waits(p);
            for a in rows {
                let FloodWaits {
                    waits,
                    seconds: secs,
                } = floods.get(&a.name).copied().unwrap_or_default();
                let state = match &a.lost_reason {
                    Some(r) => format!("{} ({})", a.status, r),
                    None => a.status.clone(),
                };
                let flood = match &a.flood_wait {
                    Some((until, method)) => format!("{} ({})", when(Some(*until)), esc(method)),
                    None => "—".to_owned(),
                };
                let mut joins = left(a.joins_today);
                if let Some(why) = &a.joins_stopped {
                    let _ = write!(joins, " (stopped: {})", esc(why));
                }
                let _ = write!(
                    s,
                    "<tr><td>{}</td><td class={}>{}</td><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td>{flood}</td><td class=n>{}</td><td class=n>{joins}</td><td class=n>{waits}</td><td class=n>{secs}</td></tr>",
                    esc(&a.name),
                    if a.status == "active" { "ok" } else { "bad" },
                    esc(&state),
                    opt(a.lease_holder.as_deref()),
                    when(a.lease_expires_at),
                    a.channels,
                    a.joined,
                    left(a.resolves_today),
                );
            }
            s.push_str("</table>");
        }
        Err(e) => error_row(s, "Reader accounts", e),
    }
}

/// Flood waits by account, summed over the live instances' snapshots.
fn flood_waits(p: &Page<'_>) -> BTreeMap<String, FloodWaits> {
    let rows = p.snapshots.as_deref().unwrap_or_default();
    let read: Vec<Snapshot> = rows
        .iter()
        .filter(|r| r.live)
        .filter_map(|r| r.snapshot.as_ref().and_then(Snapshot::read))
        .collect();
    instance_snapshot::flood_waits_of_all(&read)
}

fn queues(s: &mut String, p: &Page<'_>) {
    s.push_str("<h2 id=queues>Queues of every instance</h2>");
    let rows = match &p.snapshots {
        Ok(rows) => rows,
        Err(e) => return error_row(s, "Queues", e),
    };
    let shown: Vec<(&InstanceSnapshotRow, Snapshot)> = rows
        .iter()
        .filter(|r| r.live)
        .filter_map(|r| Some((r, Snapshot::read(r.snapshot.as_ref()?)?)))
        .collect();
    if shown.is_empty() {
        s.push_str("<p>No live instance has written its queues yet.</p>");
        return;
    }
    s.push_str(
        "<table><tr><th>instance</th><th>as of</th><th>rate limiter (queued deliveries)</th>\
         <th>sends in flight</th><th>rows waiting for PostgreSQL</th><th>deliveries held</th>\
         <th>channels polled</th><th>channels held back by the resume</th>\
         <th>bots halted (token refused)</th></tr>",
    );
    for (r, q) in shown {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td>\
             <td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            esc(&r.id),
            when(r.at),
            q.queued,
            q.in_flight,
            q.db_backlog,
            q.held_deliveries,
            q.channels_polled,
            q.resuming_channels,
            q.halted_bots
        );
    }
    s.push_str("</table>");
}

fn dead_letters(s: &mut String, p: &Page<'_>) {
    s.push_str("<h2 id=dead-letters>Dead letters</h2><p>");
    if p.dead_counts.is_empty() {
        s.push_str("None kept.");
    }
    for (kind, state, n) in &p.dead_counts {
        let _ = write!(s, "{} {}: <b>{n}</b>. ", esc(kind), esc(state));
    }
    s.push_str("</p>");
    match &p.dead {
        Ok(rows) if rows.is_empty() => s.push_str("<p>Nothing waits.</p>"),
        Ok(rows) => {
            s.push_str("<table><tr><th>id</th><th>kind</th><th>kept</th><th>chat</th><th>message</th><th>update</th><th>replays</th><th>reason</th><th></th></tr>");
            for d in rows {
                let _ = write!(
                    s,
                    "<tr id=dl-{id}><td class=n>{id}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=n>{}</td><td>{}</td>\
                     <td><form class=inline method=post action=\"/status/dead_letters/{id}/replay\"><button name=replay>Replay</button></form> \
                     <form class=inline method=post action=\"/status/dead_letters/{id}/discard\"><button name=discard>Discard</button></form></td></tr>",
                    esc(&d.kind),
                    when(Some(d.created_at)),
                    opt(d.chat_id),
                    opt(d.message_id),
                    opt(d.update_id),
                    d.replays,
                    esc(&d.reason),
                    id = d.id,
                );
            }
            s.push_str("</table><p><code>kuryer dead-letters show ID --redact</code> shows one as kept.</p>");
        }
        Err(e) => error_row(s, "Dead letters", e),
    }
}

fn channels(s: &mut String, p: &Page<'_>) {
    s.push_str("<h2 id=channels>Channels</h2>");
    let _ = write!(
        s,
        "<form method=get action=\"/status#channels\"><input type=search name=q value=\"{}\" placeholder=\"name, title or id\"> <button>Search</button></form>",
        esc(p.search)
    );
    let page = match &p.channels {
        Ok(page) => page,
        Err(e) => return error_row(s, "Channels", e),
    };
    let first = p.page * p.per_page;
    let _ = write!(
        s,
        "<p id=channel-count>{} channel(s){}; showing {}–{}.</p>",
        page.total,
        if p.search.is_empty() {
            String::new()
        } else {
            format!(" matching “{}”", esc(p.search))
        },
        (first + 1).min(page.total),
        first + page.channels.len() as i64
    );
    s.push_str("<table><tr><th>id</th><th>channel</th><th>Telegram id</th><th>status</th><th>owner</th><th>subscribers</th><th>mark</th><th>last post</th><th>lag</th></tr>");
    for c in &page.channels {
        let name = match (&c.username, &c.title) {
            (Some(u), _) => format!("@{u}"),
            (None, Some(t)) => t.clone(),
            (None, None) => "—".to_owned(),
        };
        let status = match &c.unreadable {
            Some(why) => format!("{} ({why})", c.status),
            None if c.bot_is_admin => format!("{} (bot admin)", c.status),
            None => c.status.clone(),
        };
        let _ = write!(
            s,
            "<tr><td class=n>{}</td><td>{}</td><td class=n>{}</td><td class={}>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td><td class=n>{}</td></tr>",
            c.id,
            esc(&name),
            opt(c.telegram_id),
            if c.status == "active" && c.unreadable.is_none() {
                "ok"
            } else {
                "bad"
            },
            esc(&status),
            opt(c.lease_owner.as_deref()),
            c.subscribers,
            c.last_message_id,
            when(c.last_post_at),
            c.lag_s
                .map_or_else(|| "—".to_owned(), |l| format!("{l:.1} s")),
        );
    }
    s.push_str("</table><p>");
    let q = url_encode(p.search);
    if p.page > 0 {
        let _ = write!(
            s,
            "<a rel=prev href=\"/status?q={q}&amp;page={}#channels\">← previous</a> ",
            p.page - 1
        );
    }
    if first + (page.channels.len() as i64) < page.total {
        let _ = write!(
            s,
            "<a rel=next href=\"/status?q={q}&amp;page={}#channels\">next →</a>",
            p.page + 1
        );
    }
    s.push_str("</p>");
}

fn user(s: &mut String, p: &Page<'_>) {
    s.push_str("<h2 id=user>A user's subscriptions and destinations</h2>");
    let _ = write!(
        s,
        "<form method=get action=\"/status#user\"><input type=number name=user value=\"{}\" placeholder=\"Telegram user id\"> <button>Show</button></form>",
        p.user_id.map(|u| u.to_string()).unwrap_or_default()
    );
    let Some((subs, dests)) = &p.user else {
        return;
    };
    match subs {
        Ok(rows) if rows.is_empty() => s.push_str("<p>No subscriptions.</p>"),
        Ok(rows) => {
            s.push_str("<table><tr><th>subscription</th><th>channel</th><th>status</th><th>destination</th><th>mode</th><th>state</th></tr>");
            for r in rows {
                let _ = write!(
                    s,
                    "<tr><td class=n>{}</td><td>{}</td><td>{}</td><td>{} ({:?})</td><td>{:?}</td><td>{}</td></tr>",
                    r.id,
                    esc(&r
                        .channel_username
                        .as_deref()
                        .map_or_else(|| opt(r.channel_id), |u| format!("@{u}"))),
                    esc(&r.channel_status),
                    r.destination_chat_id,
                    r.destination_kind,
                    r.mode,
                    if r.paused {
                        "paused"
                    } else if r.active {
                        "active"
                    } else {
                        "inactive"
                    }
                );
            }
            s.push_str("</table>");
        }
        Err(e) => error_row(s, "Subscriptions", e),
    }
    match dests {
        Ok(rows) => {
            s.push_str("<table><tr><th>destination</th><th>chat</th><th>kind</th><th>title</th><th>active</th></tr>");
            for d in rows {
                let _ = write!(
                    s,
                    "<tr><td class=n>{}</td><td class=n>{}</td><td>{:?}</td><td>{}</td><td>{}</td></tr>",
                    d.id,
                    d.chat_id,
                    d.kind,
                    opt(d.title.as_deref()),
                    d.active
                );
            }
            s.push_str("</table>");
        }
        Err(e) => error_row(s, "Destinations", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_encoded() {
        assert_eq!(esc("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
        assert_eq!(url_encode("a b&c"), "a%20b%26c");
    }
}
