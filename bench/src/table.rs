//! The table `kuryer-bench` prints for people (figures as min / median / max).

use crate::report::Report;

fn fmt_num(v: f64) -> String {
    if v.abs() >= 1000.0 {
        let s = format!("{:.0}", v);
        // Thousands separators for the big figures.
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        format!("{sign}{out}")
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// What the fake Bot API's answers cost: nothing but loopback.
const FAKE_LATENCY: &str = "The fake Bot API answers at loopback speed: no per-call latency is simulated \
(Telegram's own is tens of ms a call), so latencies here are the pipeline's own.";

/// The poll cycle is not a Telegram read.
const POLL_CYCLE_NOTE: &str = "(the poll cycle reads an in-process copy of the channels, no Telegram \
call; the MTProto reader's first read of 1,000 channels is measured by --scenario reader-1k)";

/// Prints one summary figure's min / median / max under `label`, when it was measured.
fn row(r: &Report, label: &str, key: &str) {
    if let Some(s) = r.summary.get(key) {
        println!(
            "  {label:<52} {:>12} {:>12} {:>12}",
            fmt_num(s.min),
            fmt_num(s.median),
            fmt_num(s.max)
        );
    }
}

/// Prints a block's title and its min / median / max column heads.
fn header(title: &str) {
    println!("\n{title}");
    println!("  {:<52} {:>12} {:>12} {:>12}", "", "min", "median", "max");
}

/// The comparison with the seed's design, with its conditions.
fn print_baseline(r: &Report) {
    let Some(b) = &r.baseline else {
        if let Some(note) = &r.baseline_note {
            println!("\nseed design baseline: {note}");
        }
        return;
    };
    if let Some(k) = r.seed_http.first() {
        header(&format!(
            "kuryer, same seed scale, {} (the baseline's way of reading)",
            k.reading.describe()
        ));
        row(
            r,
            "deliveries/s, burst, persisted",
            "seed_http.deliveries_per_s",
        );
        row(r, "latency p50, burst (ms)", "seed_http.burst_p50_ms");
        row(r, "latency p99, burst (ms)", "seed_http.burst_p99_ms");
        row(r, "poll cycle over HTTP (ms)", "seed_http.cycle_ms");
        row(r, "peak RSS (MiB)", "seed_http.peak_rss_mb");
        row(r, "CPU per delivery (µs)", "seed_http.cpu_us_per_delivery");
    }
    print_baseline_variant(b);
    println!(
        "  like with like: both read the channels over HTTP from the same fake process, neither sleeps \
between sends, limits off, the machine's cores shared by all"
    );
    row(
        r,
        "kuryer ÷ seed design: deliveries/s",
        "baseline.throughput_ratio",
    );
    row(
        r,
        "seed design ÷ kuryer: burst latency p50",
        "baseline.p50_latency_ratio",
    );
    row(
        r,
        "seed design ÷ kuryer: burst latency p99",
        "baseline.p99_latency_ratio",
    );
    if let Some(w) = &r.baseline_as_written {
        print_baseline_variant(w);
        println!(
            "  not like with like: the sleep holds each of its 30 send slots 0.05 s, a cap of 600 sends a second"
        );
        row(
            r,
            "kuryer ÷ seed design as written: deliveries/s",
            "baseline_as_written.throughput_ratio",
        );
    }
}

/// Prints one run of the seed-design baseline: its conditions, counts and figures.
fn print_baseline_variant(b: &crate::baseline::BaselineResult) {
    println!(
        "\nseed design (bench/baseline/seed_baseline.py, Python {}), same population, fake process and \
history route, {} posts a channel, one run, {}",
        b.python,
        b.posts,
        if b.send_pause_s > 0.0 {
            format!("as written: sleep({}) after each send", b.send_pause_s)
        } else {
            "without the seed's sleep(0.05) after each send".to_owned()
        }
    );
    println!(
        "  {} of {} delivered ({} lost, {} duplicates), {} rows persisted",
        b.delivered, b.deliveries_expected, b.lost, b.duplicates, b.rows_persisted
    );
    println!(
        "  {:.0} deliveries/s; latency p50 {} ms, p99 {} ms; RSS {:.1} MiB",
        b.deliveries_per_s,
        fmt_num(b.latency_p50_ms),
        fmt_num(b.latency_p99_ms),
        b.peak_rss_mb
    );
    println!(
        "  poll cycle with nothing new {} ms; DB {:.2} ms a call (client), {:.2} ms a transaction (server); Redis {:.2} ms",
        b.empty_cycle_ms.map_or("-".into(), fmt_num),
        b.db_avg_ms,
        b.db_server_avg_ms,
        b.redis_avg_ms
    );
}

/// Prints the whole table: the machine, then each scenario's block, the targets and the counts.
pub(crate) fn print_table(r: &Report) {
    print_machine(r);
    print_seed(r);
    print_baseline(r);
    for (key, bots, paid) in crate::report::CEILINGS {
        print_ceiling(r, key, bots, paid);
    }
    print_persistence(r);
    print_growth(r);
    print_reader(r);
    print_mtproto_fake(r);
    print_targets(r);
    println!(
        "\ncounts exact (lost 0, duplicates 0, every delivery persisted): {}",
        if r.exact { "yes" } else { "NO" }
    );
}

/// Prints the opening lines: the build, the machine and how the figures were taken.
fn print_machine(r: &Report) {
    let m = &r.machine;
    println!(
        "kuryer bench — {} build, {} × {}, {:.0} GiB, PostgreSQL {}, kernel {}; {} run(s) a scenario{}",
        m.profile,
        m.cores,
        m.cpu,
        m.memory_gib,
        m.postgres,
        m.kernel,
        r.runs,
        if r.tiny { " (tiny sizes)" } else { "" }
    );
    println!("The pipeline and the fake Telegram (a separate process) share the same cores.");
    println!("{FAKE_LATENCY}");
}

/// Prints the seed-scale block and each seed run's counts.
fn print_seed(r: &Report) {
    let Some(s) = r.seed.first() else {
        return;
    };
    header(&format!(
        "seed scale: {} channels, {} users, {} subscriptions, {} posts a channel, limits off; {}",
        s.channels,
        s.users,
        s.subscriptions,
        r.seed
            .first()
            .map_or(0, |x| x.deliveries_expected / x.subscriptions.max(1)),
        s.reading.describe()
    ));
    row(r, "deliveries/s, burst, persisted", "seed.deliveries_per_s");
    row(r, "latency p50, burst (ms)", "seed.burst_p50_ms");
    row(r, "latency p99, burst (ms)", "seed.burst_p99_ms");
    row(
        r,
        "latency p50, paced, not throttled (ms)",
        "seed.paced_p50_ms",
    );
    row(
        r,
        "latency p99, paced, not throttled (ms)",
        "seed.paced_p99_ms",
    );
    row(
        r,
        "poll cycle, in-memory read, no Telegram call (ms)",
        "seed.cycle_ms",
    );
    println!("  {POLL_CYCLE_NOTE}");
    row(r, "registry load (ms)", "seed.registry_load_ms");
    row(r, "peak RSS (MiB)", "seed.peak_rss_mb");
    row(r, "CPU per delivery (µs)", "seed.cpu_us_per_delivery");
    row(
        r,
        "database: server time per transaction (ms)",
        "seed.db_avg_ms",
    );
    row(
        r,
        "Redis: dedup operation, client side (ms)",
        "seed.redis_avg_ms",
    );
    for run in &r.seed {
        println!(
            "  run: {} of {} delivered, {} lost, {} duplicates, {} rows persisted",
            run.delivered, run.deliveries_expected, run.lost, run.duplicates, run.rows_persisted
        );
    }
}

/// Prints the Telegram-ceiling block of the runs under `key`, when made.
fn print_ceiling(r: &Report, key: &str, bots: usize, paid: bool) {
    let Some(c) = r
        .ceiling
        .iter()
        .find(|c| c.bots == bots && c.ceiling.as_ref().is_some_and(|x| x.paid == paid))
    else {
        return;
    };
    header(&format!(
        "Telegram ceiling, real limits, {bots} bot(s){}: {} channels, {} users + groups, \
         texts, photos and albums of 3, half the subscriptions forwarding, {:.0} s measured",
        if paid { ", paid broadcast" } else { "" },
        c.channels,
        c.users,
        c.ceiling.as_ref().map_or(0.0, |x| x.seconds)
    ));
    for (label, name) in [
        (
            "messages ÷ allowed (30/s a bot), album items counted",
            "free_fraction",
        ),
        ("all messages ÷ the bot limit in force", "items_fraction"),
        ("messages/s (album items counted)", "items_per_s"),
        (
            "messages/s without allow_paid_broadcast",
            "free_items_per_s",
        ),
        ("requests ÷ allowed (an album one request)", "fraction"),
        ("requests/s", "achieved_per_s"),
        ("429s received", "rate_limited_429"),
        ("densest second of a bot, requests", "max_bot_in_1s"),
        (
            "densest second of a bot, free messages (allowed 30)",
            "max_bot_free_items_in_1s",
        ),
        (
            "densest second of a private chat (allowed 1)",
            "max_private_in_1s",
        ),
        ("densest minute of a group (allowed 20)", "max_group_in_60s"),
    ] {
        row(r, label, &format!("{key}.{name}"));
    }
}

/// Prints the persistence block: DbWriter against COPY and per-row INSERTs.
fn print_persistence(r: &Report) {
    let Some(p) = r.persistence.first() else {
        return;
    };
    header(&format!(
        "persistence: {} rows (per-row INSERT: {}), DbWriter batches of {}",
        p.rows, p.per_row_rows, p.batch_size
    ));
    row(r, "DbWriter rows/s", "persistence.writer_rows_per_s");
    row(
        r,
        "one INSERT + commit a row, rows/s",
        "persistence.per_row_rows_per_s",
    );
    row(
        r,
        "binary COPY into forwarded_messages, rows/s",
        "persistence.copy_rows_per_s",
    );
    row(
        r,
        "binary COPY into a bare heap, rows/s",
        "persistence.copy_bare_rows_per_s",
    );
    row(r, "DbWriter ÷ COPY", "persistence.writer_vs_copy");
    row(r, "DbWriter ÷ bare COPY", "persistence.writer_vs_copy_bare");
    row(
        r,
        "DbWriter ÷ per-row INSERT",
        "persistence.writer_vs_per_row",
    );
}

/// Prints one growth block per channel count, smallest first.
fn print_growth(r: &Report) {
    let mut sizes: Vec<u32> = r.growth.iter().map(|g| g.channels).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for c in sizes {
        let g = r.growth.iter().find(|g| g.channels == c).expect("present");
        header(&format!(
            "growth: {c} channels, {} users, {} subscriptions",
            g.users, g.subscriptions
        ));
        print_growth_rows(r, c);
    }
}

/// Prints the figures of the growth runs with `c` channels.
fn print_growth_rows(r: &Report, c: u32) {
    row(
        r,
        "deliveries/s, burst, persisted",
        &format!("growth{c}.deliveries_per_s"),
    );
    row(r, "peak RSS (MiB)", &format!("growth{c}.peak_rss_mb"));
    row(
        r,
        "RSS per subscription (KiB)",
        &format!("growth{c}.rss_kib_per_subscription"),
    );
    row(
        r,
        "CPU per delivery (µs)",
        &format!("growth{c}.cpu_us_per_delivery"),
    );
    row(
        r,
        "registry load (ms)",
        &format!("growth{c}.registry_load_ms"),
    );
    row(
        r,
        "poll cycle, in-memory read (ms)",
        &format!("growth{c}.cycle_ms"),
    );
    row(
        r,
        "latency p99, paced (ms)",
        &format!("growth{c}.paced_p99_ms"),
    );
}

/// Prints one line per MTProto reader run, when there were any.
fn print_reader(r: &Report) {
    if r.reader.is_empty() {
        return;
    }
    println!(
        "\nMTProto reader: grammers over TCP against the fake data centre, Telegram-like flood limits (each run)"
    );
    for x in &r.reader {
        println!(
            "  {:<40} first read of every channel after start {} s; publish → committed p99 {} ms (joined), {} ms (polled); {} lost, {} dup",
            x.label,
            fmt_num(x.first_reads_s),
            fmt_num(x.latency_joined.p99),
            fmt_num(x.latency_polled.p99),
            x.lost,
            x.duplicates
        );
    }
}

/// Prints one line per run of the MTProto fake's capacity, when there were any.
fn print_mtproto_fake(r: &Report) {
    if r.mtproto_fake.is_empty() {
        return;
    }
    header("MTProto fake: pushed updates to grammers clients (each run)");
    for m in &r.mtproto_fake {
        println!(
            "  {:<40} {:>9} updates/s, fake {:>5.1} µs/update, process {:>5.1} µs/update",
            m.label,
            fmt_num(m.updates_per_s),
            m.fake_cpu_us_per_update,
            m.process_cpu_us_per_update
        );
    }
}

/// Prints each target check with its figure and whether it was met.
fn print_targets(r: &Report) {
    if r.targets.is_empty() {
        return;
    }
    println!("\ntargets");
    for t in &r.targets {
        println!(
            "  {:<62} {:>12}  {:<14} {}",
            t.name,
            fmt_num(t.value),
            t.target,
            if t.met { "met" } else { "MISSED" }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_readable() {
        assert_eq!(fmt_num(23_456.7), "23,457");
        assert_eq!(fmt_num(1_000_000.0), "1,000,000");
        assert_eq!(fmt_num(512.3), "512");
        assert_eq!(fmt_num(42.25), "42.2");
        assert_eq!(fmt_num(0.984), "0.98");
    }
}
