//! `kuryer bench`: the benchmark suite of issue 5.
//!
//! Scenarios (each run in a child process of its own, so that peak memory
//! and CPU are the run's alone; the fake Telegram is yet another process):
//!
//! - **seed**: the seed's scale, 1,000 channels, 10,000 users × 5
//!   subscriptions, 5 posts a channel, limits off: poll cycle, throughput
//!   with every delivery persisted, latency, registry load, memory, database
//!   and Redis averages; and the seed's own design (`benches/seed_baseline.py`)
//!   on the same workload, as a ratio.
//! - **ceiling**: Telegram's real limits with 1 and 3 bot tokens: achieved
//!   rate as a fraction of the allowed one, 429s, the limits audited from
//!   arrival times.
//! - **persistence**: the DbWriter against one INSERT + commit a row and a
//!   binary COPY.
//! - **growth**: 100 / 1,000 / 10,000 channels with users scaled alike.
//!
//! It prints a table (figures as min / median / max over the runs) and, last,
//! one JSON line with everything; the growth plot goes to an SVG file.

/// The seed-design baseline program and its runner.
pub mod baseline;
/// The `kuryer fake-telegram` child process and its control client.
pub mod fake_proc;
/// The persistence scenario.
pub mod persistence;
/// One run of the real pipeline (seed, growth, ceiling).
pub mod pipeline_run;
/// The growth plot.
pub mod plot;
/// Throw-away databases, CPU and memory readings, the machine.
pub mod util;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::cli::BenchArgs;
use crate::config::Config;
use baseline::{BaselineResult, BaselineSpec};
use persistence::{PersistenceResult, PersistenceSpec};
use pipeline_run::{PipelineResult, PipelineSpec};
use util::{Machine, Spread};

/// One measurement, as the parent hands it to a child process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ChildSpec {
    Pipeline(PipelineSpec),
    Persistence(PersistenceSpec),
    Baseline(BaselineSpec),
}

/// What a child process measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ChildResult {
    Pipeline(PipelineResult),
    Persistence(PersistenceResult),
    Baseline(BaselineResult),
}

/// A target of the issue and whether the run met it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetCheck {
    /// What is measured.
    pub name: String,
    /// The figure compared (a median over the runs, or the worst run).
    pub value: f64,
    /// The target, as words.
    pub target: String,
    /// Met or not.
    pub met: bool,
}

/// Everything one `kuryer bench` measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Report {
    /// The command as run.
    pub command: String,
    /// Where it ran.
    pub machine: Machine,
    /// The tiny sizes (CI smoke test).
    pub tiny: bool,
    /// Runs of each scenario.
    pub runs: u32,
    /// Each seed-scale run.
    pub seed: Vec<PipelineResult>,
    /// The seed-design baseline's run, when it ran.
    pub baseline: Option<BaselineResult>,
    /// Why the baseline did not run, when it did not.
    pub baseline_note: Option<String>,
    /// Each Telegram-ceiling run (1 and 3 bots).
    pub ceiling: Vec<PipelineResult>,
    /// Each persistence run.
    pub persistence: Vec<PersistenceResult>,
    /// Each growth run (every channel count).
    pub growth: Vec<PipelineResult>,
    /// min / median / max of each figure over the runs.
    pub summary: BTreeMap<String, Spread>,
    pub targets: Vec<TargetCheck>,
    /// Every delivery of the seed, growth and baseline runs arrived exactly
    /// once and was persisted; every persistence way wrote exactly its rows.
    pub exact: bool,
}

/// The sizes of every scenario.
struct Plan {
    seed: PipelineSpec,
    baseline_posts: u32,
    ceiling: Vec<PipelineSpec>,
    persistence: PersistenceSpec,
    growth: Vec<PipelineSpec>,
}

fn plan(args: &BenchArgs) -> Plan {
    let tiny = args.tiny;
    let pipeline = |label: &str, channels: u32, users: u32, subs: u32, posts: u32| PipelineSpec {
        label: label.to_owned(),
        channels,
        users,
        subs,
        groups: 0,
        group_subs: 0,
        posts,
        cycle: true,
        limit_scale: 0.0,
        bots: 1,
        paced_posts: if tiny { 10 } else { 250 },
        paced_interval_ms: 20,
        ceiling_s: 0.0,
    };
    let seed = if tiny {
        pipeline("seed", 20, 200, 3, 3)
    } else {
        pipeline("seed", 1000, 10_000, 5, 5)
    };
    let ceiling_s = args
        .ceiling_seconds
        .unwrap_or(if tiny { 3.0 } else { 60.0 })
        .max(1.0);
    let ceiling = [1usize, 3]
        .iter()
        .map(|&bots| {
            let (channels, subs, groups, group_subs) = if tiny {
                (10, 3, 2, 3)
            } else {
                (100, 5, 10, 10)
            };
            // More deliveries than the bots may send in the whole run, so the
            // queue never runs dry while measured.
            let sendable = (ceiling_s + 10.0) * 30.0 * bots as f64 * 1.3;
            let users =
                ((sendable / f64::from(subs)).ceil() as u32).max(if tiny { 300 } else { 3000 });
            PipelineSpec {
                label: format!("ceiling-{bots}"),
                groups,
                group_subs,
                cycle: false,
                limit_scale: 1.0,
                bots,
                paced_posts: 0,
                ceiling_s,
                ..pipeline("ceiling", channels, users, subs, 1)
            }
        })
        .collect();
    let persistence = if tiny {
        PersistenceSpec {
            rows: 4000,
            per_row_rows: 500,
        }
    } else {
        PersistenceSpec {
            rows: 100_000,
            per_row_rows: 10_000,
        }
    };
    let sizes: &[u32] = if tiny {
        &[5, 10, 20]
    } else {
        &[100, 1000, 10_000]
    };
    let growth = sizes
        .iter()
        .map(|&c| PipelineSpec {
            paced_posts: if tiny { 5 } else { 100 },
            ..pipeline(
                &format!("growth-{c}"),
                c,
                c * 10,
                if tiny { 3 } else { 5 },
                2,
            )
        })
        .collect();
    Plan {
        baseline_posts: args.baseline_posts.unwrap_or(seed.posts),
        seed,
        ceiling,
        persistence,
        growth,
    }
}

/// Runs `kuryer bench`: as the parent, every selected scenario in child
/// processes, then the table, the plot and the JSON line; as a child
/// (`--child`), one measurement.
pub async fn run(args: &BenchArgs, cfg: &Config) -> anyhow::Result<()> {
    if let Some(spec) = &args.child {
        let spec: ChildSpec = serde_json::from_str(spec).context("--child")?;
        let result = match spec {
            ChildSpec::Pipeline(s) => ChildResult::Pipeline(pipeline_run::run(&s, cfg).await?),
            ChildSpec::Persistence(s) => ChildResult::Persistence(persistence::run(&s, cfg).await?),
            ChildSpec::Baseline(s) => ChildResult::Baseline(baseline::run(&s, cfg).await?),
        };
        println!("{}", serde_json::to_string(&result)?);
        return Ok(());
    }
    let scenarios: Vec<&str> = match args.scenario.as_str() {
        "all" => vec!["seed", "ceiling", "persistence", "growth"],
        s @ ("seed" | "ceiling" | "persistence" | "growth") => vec![s],
        other => {
            anyhow::bail!("unknown scenario {other:?}: seed, ceiling, persistence, growth or all")
        }
    };
    let runs = args.runs.unwrap_or(if args.tiny { 1 } else { 3 }).max(1);
    let plan = plan(args);
    let mut report = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: util::machine(cfg).await,
        tiny: args.tiny,
        runs,
        ..Report::default()
    };
    let progress = |what: &str| eprintln!("[bench] {what}");

    for scenario in scenarios {
        match scenario {
            "seed" => {
                for r in 1..=runs {
                    progress(&format!("seed scale, run {r}/{runs}"));
                    let res = child_pipeline(args, &plan.seed)?;
                    progress(&pipeline_line(&res));
                    report.seed.push(res);
                }
                if args.baseline == "off" {
                    report.baseline_note = Some("not run (--baseline off)".into());
                } else {
                    match baseline::find_python() {
                        Ok(python) => {
                            progress(&format!(
                                "seed-design baseline (Python, {} posts a channel)",
                                plan.baseline_posts
                            ));
                            let spec = BaselineSpec {
                                channels: plan.seed.channels,
                                users: plan.seed.users,
                                subs: plan.seed.subs,
                                posts: plan.baseline_posts,
                                python,
                            };
                            match run_child(args, &ChildSpec::Baseline(spec)) {
                                Ok(ChildResult::Baseline(b)) => {
                                    progress(&format!(
                                        "baseline: {} of {} delivered, {:.0}/s, p99 {:.0} ms",
                                        b.delivered,
                                        b.deliveries_expected,
                                        b.deliveries_per_s,
                                        b.latency_p99_ms
                                    ));
                                    report.baseline = Some(b);
                                }
                                Ok(_) => {
                                    anyhow::bail!("the baseline child answered something else")
                                }
                                Err(e) => {
                                    progress(&format!("baseline failed: {e:#}"));
                                    report.baseline_note = Some(format!("failed: {e:#}"));
                                }
                            }
                        }
                        Err(why) => {
                            progress(&format!("baseline skipped: {why}"));
                            report.baseline_note =
                                Some(format!("skipped: no Python with its packages ({why})"));
                        }
                    }
                }
            }
            "ceiling" => {
                for r in 1..=runs {
                    for spec in &plan.ceiling {
                        progress(&format!(
                            "Telegram ceiling, {} bot(s), {:.0} s, run {r}/{runs}",
                            spec.bots, spec.ceiling_s
                        ));
                        let res = child_pipeline(args, spec)?;
                        if let Some(c) = &res.ceiling {
                            progress(&format!(
                                "{:.2}/s of {:.0}/s allowed ({:.1} %), 429s {}",
                                c.achieved_per_s,
                                c.allowed_per_s,
                                c.fraction * 100.0,
                                c.rate_limited_429
                            ));
                        }
                        report.ceiling.push(res);
                    }
                }
            }
            "persistence" => {
                for r in 1..=runs {
                    progress(&format!("persistence, run {r}/{runs}"));
                    match run_child(args, &ChildSpec::Persistence(plan.persistence.clone()))? {
                        ChildResult::Persistence(p) => {
                            progress(&format!(
                                "DbWriter {:.0} rows/s, per-row {:.0}, COPY {:.0}",
                                p.writer_rows_per_s, p.per_row_rows_per_s, p.copy_rows_per_s
                            ));
                            report.persistence.push(p);
                        }
                        _ => anyhow::bail!("the persistence child answered something else"),
                    }
                }
            }
            _ => {
                for r in 1..=runs {
                    for spec in &plan.growth {
                        progress(&format!(
                            "growth, {} channels, run {r}/{runs}",
                            spec.channels
                        ));
                        let res = child_pipeline(args, spec)?;
                        progress(&pipeline_line(&res));
                        report.growth.push(res);
                    }
                }
            }
        }
    }

    summarise(&mut report);
    if !report.growth.is_empty() {
        match plot::growth_svg(&report.growth, &args.plot) {
            Ok(()) => progress(&format!("growth plot written to {}", args.plot.display())),
            Err(e) => progress(&format!("growth plot not written: {e}")),
        }
    }
    if !args.json {
        print_table(&report);
    }
    println!("{}", serde_json::to_string(&report)?);
    anyhow::ensure!(
        report.exact,
        "counts are not exact: a delivery was lost, duplicated or not persisted (see above)"
    );
    Ok(())
}

fn pipeline_line(r: &PipelineResult) -> String {
    format!(
        "{}: {} of {} delivered ({} lost, {} dup), {} persisted, {:.0}/s, cycle {:.0} ms, paced p99 {:.1} ms, RSS {:.1} MiB",
        r.label,
        r.delivered,
        r.deliveries_expected,
        r.lost,
        r.duplicates,
        r.rows_persisted,
        r.deliveries_per_s,
        r.cycle_ms.unwrap_or(0.0),
        r.paced_p99_ms.unwrap_or(0.0),
        r.peak_rss_mb
    )
}

fn child_pipeline(args: &BenchArgs, spec: &PipelineSpec) -> anyhow::Result<PipelineResult> {
    match run_child(args, &ChildSpec::Pipeline(spec.clone()))? {
        ChildResult::Pipeline(r) => Ok(r),
        _ => anyhow::bail!("the pipeline child answered something else"),
    }
}

/// Runs one measurement in `kuryer bench --child SPEC` and reads its last line.
fn run_child(args: &BenchArgs, spec: &ChildSpec) -> anyhow::Result<ChildResult> {
    let exe = std::env::current_exe().context("locating the kuryer binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("bench");
    if let Some(path) = &args.config.config {
        cmd.arg("--config").arg(path);
    }
    cmd.arg("--child").arg(serde_json::to_string(spec)?);
    if std::env::var_os("RUST_LOG").is_none() {
        // The pipeline's info lines would bury the progress. A ceiling run
        // ends by abandoning a queue that would take minutes to send at
        // 30/s, whose warnings (forced shutdown, writes retried) are expected.
        let ceiling = matches!(spec, ChildSpec::Pipeline(p) if p.ceiling_s > 0.0);
        cmd.env("RUST_LOG", if ceiling { "error" } else { "warn" });
    }
    if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
        // As the systemd unit sets it (see systemd/kuryer.service).
        cmd.env("MIMALLOC_ARENA_EAGER_COMMIT", "0");
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting a bench child")?;
    let mut last = String::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if !line.trim().is_empty() {
                last = line;
            }
        }
    }
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "the bench child failed ({status})");
    serde_json::from_str(&last).with_context(|| format!("reading the child's result {last:?}"))
}

fn put(summary: &mut BTreeMap<String, Spread>, key: &str, values: impl IntoIterator<Item = f64>) {
    if let Some(s) = Spread::of(values) {
        summary.insert(key.to_owned(), s);
    }
}

fn pipeline_summary(
    summary: &mut BTreeMap<String, Spread>,
    prefix: &str,
    runs: &[&PipelineResult],
) {
    let f = |g: fn(&PipelineResult) -> f64| runs.iter().map(|r| g(r)).collect::<Vec<_>>();
    put(
        summary,
        &format!("{prefix}.deliveries_per_s"),
        f(|r| r.deliveries_per_s),
    );
    put(
        summary,
        &format!("{prefix}.burst_p50_ms"),
        f(|r| r.burst_p50_ms),
    );
    put(
        summary,
        &format!("{prefix}.burst_p99_ms"),
        f(|r| r.burst_p99_ms),
    );
    put(
        summary,
        &format!("{prefix}.paced_p50_ms"),
        runs.iter().filter_map(|r| r.paced_p50_ms),
    );
    put(
        summary,
        &format!("{prefix}.paced_p99_ms"),
        runs.iter().filter_map(|r| r.paced_p99_ms),
    );
    put(
        summary,
        &format!("{prefix}.cycle_ms"),
        runs.iter().filter_map(|r| r.cycle_ms),
    );
    put(
        summary,
        &format!("{prefix}.registry_load_ms"),
        f(|r| r.registry_load_ms),
    );
    put(
        summary,
        &format!("{prefix}.peak_rss_mb"),
        f(|r| r.peak_rss_mb),
    );
    put(
        summary,
        &format!("{prefix}.cpu_us_per_delivery"),
        f(|r| r.cpu_us_per_delivery),
    );
    put(summary, &format!("{prefix}.db_avg_ms"), f(|r| r.db_avg_ms));
    put(
        summary,
        &format!("{prefix}.redis_avg_ms"),
        f(|r| r.redis_avg_ms),
    );
    put(
        summary,
        &format!("{prefix}.rss_kib_per_subscription"),
        f(|r| r.peak_rss_mb * 1024.0 / (r.subscriptions.max(1) as f64)),
    );
}

fn exact(r: &PipelineResult) -> bool {
    r.lost == 0
        && r.duplicates == 0
        && r.delivered == r.deliveries_expected
        && r.rows_persisted == r.deliveries_expected
}

/// Fills the summary, the target checks and `exact`.
fn summarise(report: &mut Report) {
    let mut s = BTreeMap::new();
    let seed: Vec<&PipelineResult> = report.seed.iter().collect();
    pipeline_summary(&mut s, "seed", &seed);
    for bots in [1usize, 3] {
        let runs: Vec<&PipelineResult> = report.ceiling.iter().filter(|r| r.bots == bots).collect();
        let c = |g: fn(&pipeline_run::CeilingResult) -> f64| {
            runs.iter()
                .filter_map(|r| r.ceiling.as_ref().map(g))
                .collect::<Vec<_>>()
        };
        put(
            &mut s,
            &format!("ceiling{bots}.fraction"),
            c(|c| c.fraction),
        );
        put(
            &mut s,
            &format!("ceiling{bots}.achieved_per_s"),
            c(|c| c.achieved_per_s),
        );
        put(
            &mut s,
            &format!("ceiling{bots}.rate_limited_429"),
            c(|c| c.rate_limited_429 as f64),
        );
        put(
            &mut s,
            &format!("ceiling{bots}.max_bot_in_1s"),
            c(|c| c.max_bot_in_1s as f64),
        );
        put(
            &mut s,
            &format!("ceiling{bots}.max_private_in_1s"),
            c(|c| c.max_private_in_1s as f64),
        );
        put(
            &mut s,
            &format!("ceiling{bots}.max_group_in_60s"),
            c(|c| c.max_group_in_60s as f64),
        );
    }
    let p = &report.persistence;
    put(
        &mut s,
        "persistence.writer_rows_per_s",
        p.iter().map(|r| r.writer_rows_per_s),
    );
    put(
        &mut s,
        "persistence.per_row_rows_per_s",
        p.iter().map(|r| r.per_row_rows_per_s),
    );
    put(
        &mut s,
        "persistence.copy_rows_per_s",
        p.iter().map(|r| r.copy_rows_per_s),
    );
    put(
        &mut s,
        "persistence.copy_bare_rows_per_s",
        p.iter().map(|r| r.copy_bare_rows_per_s),
    );
    put(
        &mut s,
        "persistence.writer_vs_copy",
        p.iter().map(|r| r.writer_vs_copy),
    );
    put(
        &mut s,
        "persistence.writer_vs_copy_bare",
        p.iter().map(|r| r.writer_vs_copy_bare),
    );
    put(
        &mut s,
        "persistence.writer_vs_per_row",
        p.iter().map(|r| r.writer_vs_per_row),
    );
    let mut sizes: Vec<u32> = report.growth.iter().map(|r| r.channels).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for c in &sizes {
        let runs: Vec<&PipelineResult> =
            report.growth.iter().filter(|r| r.channels == *c).collect();
        pipeline_summary(&mut s, &format!("growth{c}"), &runs);
    }
    if let (Some(b), Some(k)) = (&report.baseline, s.get("seed.deliveries_per_s").copied()) {
        put(
            &mut s,
            "baseline.throughput_ratio",
            [k.median / b.deliveries_per_s.max(1e-9)],
        );
        if let Some(p99) = s.get("seed.burst_p99_ms").copied() {
            put(
                &mut s,
                "baseline.p99_latency_ratio",
                [b.latency_p99_ms / p99.median.max(1e-9)],
            );
        }
        if let Some(p50) = s.get("seed.burst_p50_ms").copied() {
            put(
                &mut s,
                "baseline.p50_latency_ratio",
                [b.latency_p50_ms / p50.median.max(1e-9)],
            );
        }
    }

    let mut t = Vec::new();
    let mut check = |name: &str, value: Option<f64>, target: &str, met: fn(f64) -> bool| {
        if let Some(v) = value {
            t.push(TargetCheck {
                name: name.to_owned(),
                value: v,
                target: target.to_owned(),
                met: met(v),
            });
        }
    };
    let med = |k: &str| s.get(k).map(|x| x.median);
    let worst = |k: &str| s.get(k).map(|x| x.max);
    if !report.seed.is_empty() {
        let min_persisted = report
            .seed
            .iter()
            .map(|r| r.rows_persisted as f64 / r.deliveries_expected.max(1) as f64)
            .fold(f64::INFINITY, f64::min);
        check(
            "seed: deliveries/s (median)",
            med("seed.deliveries_per_s"),
            "≥ 20,000",
            |v| v >= 20_000.0,
        );
        check(
            "seed: every delivery persisted (worst run, fraction)",
            Some(min_persisted),
            "= 1",
            |v| v >= 1.0,
        );
        check(
            "seed: p99 latency not throttled, paced (median, ms)",
            med("seed.paced_p99_ms"),
            "≤ 50",
            |v| v <= 50.0,
        );
        check(
            "seed: all channels polled once (median, ms)",
            med("seed.cycle_ms"),
            "≤ 1,000",
            |v| v <= 1000.0,
        );
        check(
            "seed: registry load (median, ms)",
            med("seed.registry_load_ms"),
            "≤ 1,000",
            |v| v <= 1000.0,
        );
        check(
            "seed: peak RSS (worst run, MiB)",
            worst("seed.peak_rss_mb"),
            "≤ 100",
            |v| v <= 100.0,
        );
        check(
            "seed: DB average (median, ms)",
            med("seed.db_avg_ms"),
            "< 50 (seed)",
            |v| v < 50.0,
        );
        check(
            "seed: Redis average (median, ms)",
            med("seed.redis_avg_ms"),
            "< 5 (seed)",
            |v| v < 5.0,
        );
    }
    check(
        "baseline: kuryer ÷ seed design, deliveries/s",
        med("baseline.throughput_ratio"),
        "≥ 50",
        |v| v >= 50.0,
    );
    for bots in [1, 3] {
        check(
            &format!("ceiling, {bots} bot(s): fraction of allowed rate (median)"),
            med(&format!("ceiling{bots}.fraction")),
            "≥ 0.98",
            |v| v >= 0.98,
        );
        check(
            &format!("ceiling, {bots} bot(s): 429s (worst run)"),
            worst(&format!("ceiling{bots}.rate_limited_429")),
            "= 0",
            |v| v == 0.0,
        );
    }
    check(
        "persistence: DbWriter ÷ COPY (median)",
        med("persistence.writer_vs_copy"),
        "≥ 0.5",
        |v| v >= 0.5,
    );
    check(
        "persistence: DbWriter ÷ per-row INSERT (median)",
        med("persistence.writer_vs_per_row"),
        "≥ 30",
        |v| v >= 30.0,
    );
    if sizes.len() >= 2 {
        let (a, b) = (sizes[sizes.len() - 2], sizes[sizes.len() - 1]);
        let ratio = |k: &str| {
            Some(med(&format!("growth{b}.{k}"))? / med(&format!("growth{a}.{k}"))?.max(1e-9))
        };
        check(
            &format!("growth {a} → {b}: CPU per delivery ratio"),
            ratio("cpu_us_per_delivery"),
            "≤ 1.5 (flat)",
            |v| v <= 1.5,
        );
        check(
            &format!("growth {a} → {b}: RSS per subscription ratio"),
            ratio("rss_kib_per_subscription"),
            "≤ 1.5 (flat)",
            |v| v <= 1.5,
        );
    }
    report.exact = report.seed.iter().chain(&report.growth).all(exact)
        && report.baseline.as_ref().is_none_or(|b| {
            b.lost == 0
                && b.duplicates == 0
                && b.delivered == b.deliveries_expected
                && b.rows_persisted == b.deliveries_expected
        })
        && report.persistence.iter().all(|p| p.counts_exact)
        && report.ceiling.iter().all(|r| r.duplicates == 0);
    report.summary = s;
    report.targets = t;
}

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

fn print_table(r: &Report) {
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
    let row = |label: &str, key: &str| {
        if let Some(s) = r.summary.get(key) {
            println!(
                "  {label:<52} {:>12} {:>12} {:>12}",
                fmt_num(s.min),
                fmt_num(s.median),
                fmt_num(s.max)
            );
        }
    };
    let header = |title: &str| {
        println!("\n{title}");
        println!("  {:<52} {:>12} {:>12} {:>12}", "", "min", "median", "max");
    };
    if let Some(s) = r.seed.first() {
        header(&format!(
            "seed scale: {} channels, {} users, {} subscriptions, {} posts a channel, limits off",
            s.channels,
            s.users,
            s.subscriptions,
            r.seed
                .first()
                .map_or(0, |x| x.deliveries_expected / x.subscriptions.max(1))
        ));
        row("deliveries/s, burst, persisted", "seed.deliveries_per_s");
        row("latency p50, burst (ms)", "seed.burst_p50_ms");
        row("latency p99, burst (ms)", "seed.burst_p99_ms");
        row(
            "latency p50, paced, not throttled (ms)",
            "seed.paced_p50_ms",
        );
        row(
            "latency p99, paced, not throttled (ms)",
            "seed.paced_p99_ms",
        );
        row(
            "poll all channels once: post → recorded (ms)",
            "seed.cycle_ms",
        );
        row("registry load (ms)", "seed.registry_load_ms");
        row("peak RSS (MiB)", "seed.peak_rss_mb");
        row("CPU per delivery (µs)", "seed.cpu_us_per_delivery");
        row(
            "database: server time per transaction (ms)",
            "seed.db_avg_ms",
        );
        row(
            "Redis: dedup operation, client side (ms)",
            "seed.redis_avg_ms",
        );
        for run in &r.seed {
            println!(
                "  run: {} of {} delivered, {} lost, {} duplicates, {} rows persisted",
                run.delivered,
                run.deliveries_expected,
                run.lost,
                run.duplicates,
                run.rows_persisted
            );
        }
    }
    match (&r.baseline, &r.baseline_note) {
        (Some(b), _) => {
            println!(
                "\nseed design (benches/seed_baseline.py, Python {}), same workload, {} posts a channel, one run",
                b.python, b.posts
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
            row(
                "kuryer ÷ seed design: deliveries/s",
                "baseline.throughput_ratio",
            );
            row(
                "seed design ÷ kuryer: burst latency p50",
                "baseline.p50_latency_ratio",
            );
            row(
                "seed design ÷ kuryer: burst latency p99",
                "baseline.p99_latency_ratio",
            );
        }
        (None, Some(note)) => println!("\nseed design baseline: {note}"),
        (None, None) => {}
    }
    for bots in [1, 3] {
        if let Some(c) = r.ceiling.iter().find(|c| c.bots == bots) {
            header(&format!(
                "Telegram ceiling, real limits, {bots} bot(s): {} channels, {} users + groups, {:.0} s measured",
                c.channels,
                c.users,
                c.ceiling.as_ref().map_or(0.0, |x| x.seconds)
            ));
            row(
                "achieved ÷ allowed rate",
                &format!("ceiling{bots}.fraction"),
            );
            row(
                "achieved deliveries/s",
                &format!("ceiling{bots}.achieved_per_s"),
            );
            row("429s received", &format!("ceiling{bots}.rate_limited_429"));
            row(
                "densest second of a bot (allowed 30)",
                &format!("ceiling{bots}.max_bot_in_1s"),
            );
            row(
                "densest second of a private chat (allowed 1)",
                &format!("ceiling{bots}.max_private_in_1s"),
            );
            row(
                "densest minute of a group (allowed 20)",
                &format!("ceiling{bots}.max_group_in_60s"),
            );
        }
    }
    if let Some(p) = r.persistence.first() {
        header(&format!(
            "persistence: {} rows (per-row INSERT: {}), DbWriter batches of {}",
            p.rows, p.per_row_rows, p.batch_size
        ));
        row("DbWriter rows/s", "persistence.writer_rows_per_s");
        row(
            "one INSERT + commit a row, rows/s",
            "persistence.per_row_rows_per_s",
        );
        row(
            "binary COPY into forwarded_messages, rows/s",
            "persistence.copy_rows_per_s",
        );
        row(
            "binary COPY into a bare heap, rows/s",
            "persistence.copy_bare_rows_per_s",
        );
        row("DbWriter ÷ COPY", "persistence.writer_vs_copy");
        row("DbWriter ÷ bare COPY", "persistence.writer_vs_copy_bare");
        row("DbWriter ÷ per-row INSERT", "persistence.writer_vs_per_row");
    }
    let mut sizes: Vec<u32> = r.growth.iter().map(|g| g.channels).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for c in sizes {
        let g = r.growth.iter().find(|g| g.channels == c).expect("present");
        header(&format!(
            "growth: {c} channels, {} users, {} subscriptions",
            g.users, g.subscriptions
        ));
        row(
            "deliveries/s, burst, persisted",
            &format!("growth{c}.deliveries_per_s"),
        );
        row("peak RSS (MiB)", &format!("growth{c}.peak_rss_mb"));
        row(
            "RSS per subscription (KiB)",
            &format!("growth{c}.rss_kib_per_subscription"),
        );
        row(
            "CPU per delivery (µs)",
            &format!("growth{c}.cpu_us_per_delivery"),
        );
        row("registry load (ms)", &format!("growth{c}.registry_load_ms"));
        row(
            "poll all channels once (ms)",
            &format!("growth{c}.cycle_ms"),
        );
        row(
            "latency p99, paced (ms)",
            &format!("growth{c}.paced_p99_ms"),
        );
    }
    if !r.targets.is_empty() {
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
    println!(
        "\ncounts exact (lost 0, duplicates 0, every delivery persisted): {}",
        if r.exact { "yes" } else { "NO" }
    );
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

    #[test]
    fn specs_round_trip_through_json() {
        let p = PersistenceSpec {
            rows: 10,
            per_row_rows: 2,
        };
        let json = serde_json::to_string(&ChildSpec::Persistence(p)).unwrap();
        assert!(json.contains("\"kind\":\"persistence\""), "{json}");
        let back: ChildSpec = serde_json::from_str(&json).unwrap();
        assert!(matches!(back, ChildSpec::Persistence(p) if p.rows == 10));
    }
}
