//! What one `kuryer-bench` measured ([`Report`]), its min / median / max
//! summary over the runs, and the targets checked against it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::baseline::BaselineResult;
use crate::mtproto_fake::MtprotoFakeResult;
use crate::persistence::PersistenceResult;
use crate::pipeline_run::PipelineResult;
use crate::util::{Machine, Spread};

/// A target of the issue and whether the run met it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TargetCheck {
    /// What is measured.
    pub(crate) name: String,
    /// The figure compared (a median over the runs, or the worst run).
    pub(crate) value: f64,
    /// The target, as words.
    pub(crate) target: String,
    /// Met or not.
    pub(crate) met: bool,
}

/// Everything one `kuryer bench` measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct Report {
    /// The command as run.
    pub(crate) command: String,
    /// Where it ran.
    pub(crate) machine: Machine,
    /// The tiny sizes (CI smoke test).
    pub(crate) tiny: bool,
    /// Runs of each scenario.
    pub(crate) runs: u32,
    /// Each seed-scale run.
    pub(crate) seed: Vec<PipelineResult>,
    /// Each seed-scale run with the channels read over HTTP from the fake's
    /// history route, as the baseline reads them: kuryer's side of the ratio.
    #[serde(default)]
    pub(crate) seed_http: Vec<PipelineResult>,
    /// The seed-design baseline's run without the seed's `sleep(0.05)`
    /// after each send, when it ran: the ratio's other side.
    pub(crate) baseline: Option<BaselineResult>,
    /// The seed-design baseline as written (with the sleep), when asked for.
    #[serde(default)]
    pub(crate) baseline_as_written: Option<BaselineResult>,
    /// Why the baseline did not run, when it did not.
    pub(crate) baseline_note: Option<String>,
    /// Each Telegram-ceiling run (1 and 3 bots, 1 bot with paid broadcast).
    pub(crate) ceiling: Vec<PipelineResult>,
    /// Each persistence run.
    pub(crate) persistence: Vec<PersistenceResult>,
    /// Each growth run (every channel count).
    pub(crate) growth: Vec<PipelineResult>,
    /// Each run of the MTProto fake's own capacity.
    #[serde(default)]
    pub(crate) mtproto_fake: Vec<MtprotoFakeResult>,
    /// Resume of a large backlog of owed deliveries.
    #[serde(default)]
    pub(crate) resume: Vec<crate::resume::ResumeResult>,
    /// The MTProto reader's runs (not in `all`).
    #[serde(default)]
    pub(crate) reader: Vec<crate::reader_result::ReaderResult>,
    /// api-load runs (not in `all`).
    pub(crate) api_load: Vec<crate::load::ApiLoadResult>,
    /// bot-load runs (not in `all`).
    pub(crate) bot_load: Vec<crate::load::BotLoadResult>,
    /// min / median / max of each figure over the runs.
    pub(crate) summary: BTreeMap<String, Spread>,
    pub(crate) targets: Vec<TargetCheck>,
    /// Every delivery of the seed, growth and baseline runs arrived exactly
    /// once and was persisted; every persistence way wrote exactly its rows.
    pub(crate) exact: bool,
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

/// Every baseline delivery arrived exactly once and was persisted.
fn baseline_exact(b: &BaselineResult) -> bool {
    b.lost == 0
        && b.duplicates == 0
        && b.delivered == b.deliveries_expected
        && b.rows_persisted == b.deliveries_expected
}

/// The distinct channel counts of the growth runs, smallest first.
fn growth_sizes(growth: &[PipelineResult]) -> Vec<u32> {
    let mut sizes: Vec<u32> = growth.iter().map(|r| r.channels).collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

/// Fills the summary, the target checks and `exact`.
pub(crate) fn summarise(report: &mut Report) {
    let mut s = BTreeMap::new();
    let seed: Vec<&PipelineResult> = report.seed.iter().collect();
    pipeline_summary(&mut s, "seed", &seed);
    let seed_http: Vec<&PipelineResult> = report.seed_http.iter().collect();
    pipeline_summary(&mut s, "seed_http", &seed_http);
    for (key, bots, paid) in CEILINGS {
        ceiling_summary(&mut s, &report.ceiling, key, bots, paid);
    }
    persistence_summary(&mut s, &report.persistence);
    let sizes = growth_sizes(&report.growth);
    for c in &sizes {
        let runs: Vec<&PipelineResult> =
            report.growth.iter().filter(|r| r.channels == *c).collect();
        pipeline_summary(&mut s, &format!("growth{c}"), &runs);
    }
    baseline_ratios(&mut s, report);

    let mut checks = Checks {
        summary: &s,
        out: Vec::new(),
    };
    seed_targets(&mut checks, &report.seed);
    checks.check(
        "kuryer ÷ seed design, both over HTTP, no sleep, deliveries/s",
        checks.med("baseline.throughput_ratio"),
        "≥ 50",
        |v| v >= 50.0,
    );
    ceiling_targets(&mut checks);
    persistence_targets(&mut checks);
    growth_targets(&mut checks, &sizes);
    let t = checks.out;
    report.exact = all_exact(report);
    report.summary = s;
    report.targets = t;
}

/// The Telegram-ceiling runs' summary keys: (key, bots, paid broadcast).
pub(crate) const CEILINGS: [(&str, usize, bool); 3] = [
    ("ceiling1", 1, false),
    ("ceiling3", 3, false),
    ("ceiling_paid1", 1, true),
];

/// Summarises the Telegram-ceiling runs with `bots` bots (and paid
/// broadcast or not) under `{key}.*`.
fn ceiling_summary(
    s: &mut BTreeMap<String, Spread>,
    ceiling: &[PipelineResult],
    key: &str,
    bots: usize,
    paid: bool,
) {
    let runs: Vec<&PipelineResult> = ceiling
        .iter()
        .filter(|r| r.bots == bots && r.ceiling.as_ref().is_some_and(|c| c.paid == paid))
        .collect();
    /// One figure of a ceiling run.
    type Figure = fn(&crate::pipeline_run::CeilingResult) -> f64;
    let c = |g: Figure| {
        runs.iter()
            .filter_map(|r| r.ceiling.as_ref().map(g))
            .collect::<Vec<_>>()
    };
    let fields: [(&str, Figure); 11] = [
        ("fraction", |c| c.fraction),
        ("achieved_per_s", |c| c.achieved_per_s),
        ("items_per_s", |c| c.items_per_s),
        ("free_items_per_s", |c| c.free_items_per_s),
        ("free_fraction", |c| c.free_fraction),
        ("items_fraction", |c| c.items_fraction),
        ("rate_limited_429", |c| c.rate_limited_429 as f64),
        ("max_bot_in_1s", |c| c.max_bot_in_1s as f64),
        ("max_bot_free_items_in_1s", |c| {
            c.max_bot_free_items_in_1s as f64
        }),
        ("max_private_in_1s", |c| c.max_private_in_1s as f64),
        ("max_group_in_60s", |c| c.max_group_in_60s as f64),
    ];
    for (name, g) in fields {
        put(s, &format!("{key}.{name}"), c(g));
    }
}

/// Summarises the persistence runs under `persistence.*`.
fn persistence_summary(s: &mut BTreeMap<String, Spread>, p: &[PersistenceResult]) {
    put(
        s,
        "persistence.writer_rows_per_s",
        p.iter().map(|r| r.writer_rows_per_s),
    );
    put(
        s,
        "persistence.per_row_rows_per_s",
        p.iter().map(|r| r.per_row_rows_per_s),
    );
    put(
        s,
        "persistence.copy_rows_per_s",
        p.iter().map(|r| r.copy_rows_per_s),
    );
    put(
        s,
        "persistence.copy_bare_rows_per_s",
        p.iter().map(|r| r.copy_bare_rows_per_s),
    );
    put(
        s,
        "persistence.writer_vs_copy",
        p.iter().map(|r| r.writer_vs_copy),
    );
    put(
        s,
        "persistence.writer_vs_copy_bare",
        p.iter().map(|r| r.writer_vs_copy_bare),
    );
    put(
        s,
        "persistence.writer_vs_per_row",
        p.iter().map(|r| r.writer_vs_per_row),
    );
}

/// Computes kuryer's `seed_http` medians ÷ each baseline variant (`{variant}.*_ratio`).
fn baseline_ratios(s: &mut BTreeMap<String, Spread>, report: &Report) {
    // Like with like: kuryer's runs that read the channels over HTTP, as the
    // baseline does, against each baseline variant.
    for (key, baseline) in [
        ("baseline", &report.baseline),
        ("baseline_as_written", &report.baseline_as_written),
    ] {
        let (Some(b), Some(k)) = (baseline, s.get("seed_http.deliveries_per_s").copied()) else {
            continue;
        };
        put(
            s,
            &format!("{key}.throughput_ratio"),
            [k.median / b.deliveries_per_s.max(1e-9)],
        );
        if let Some(p99) = s.get("seed_http.burst_p99_ms").copied() {
            put(
                s,
                &format!("{key}.p99_latency_ratio"),
                [b.latency_p99_ms / p99.median.max(1e-9)],
            );
        }
        if let Some(p50) = s.get("seed_http.burst_p50_ms").copied() {
            put(
                s,
                &format!("{key}.p50_latency_ratio"),
                [b.latency_p50_ms / p50.median.max(1e-9)],
            );
        }
    }
}

/// The target checks gathered so far and the summary they read.
struct Checks<'a> {
    summary: &'a BTreeMap<String, Spread>,
    out: Vec<TargetCheck>,
}

impl Checks<'_> {
    /// The median of a summary figure.
    fn med(&self, k: &str) -> Option<f64> {
        self.summary.get(k).map(|x| x.median)
    }

    /// The largest (worst) run of a summary figure.
    fn worst(&self, k: &str) -> Option<f64> {
        self.summary.get(k).map(|x| x.max)
    }

    /// Records a target check when there is a figure to check.
    fn check(&mut self, name: &str, value: Option<f64>, target: &str, met: fn(f64) -> bool) {
        if let Some(v) = value {
            self.out.push(TargetCheck {
                name: name.to_owned(),
                value: v,
                target: target.to_owned(),
                met: met(v),
            });
        }
    }
}

/// Checks the seed-scale runs against the targets (none without a run).
fn seed_targets(t: &mut Checks<'_>, seed: &[PipelineResult]) {
    if seed.is_empty() {
        return;
    }
    let min_persisted = seed
        .iter()
        .map(|r| r.rows_persisted as f64 / r.deliveries_expected.max(1) as f64)
        .fold(f64::INFINITY, f64::min);
    t.check(
        "seed: deliveries/s (median)",
        t.med("seed.deliveries_per_s"),
        "≥ 20,000",
        |v| v >= 20_000.0,
    );
    t.check(
        "seed: every delivery persisted (worst run, fraction)",
        Some(min_persisted),
        "= 1",
        |v| v >= 1.0,
    );
    t.check(
        "seed: p99 latency not throttled, paced (median, ms)",
        t.med("seed.paced_p99_ms"),
        "≤ 50",
        |v| v <= 50.0,
    );
    t.check(
        "seed: all channels polled once, in-memory read (median, ms)",
        t.med("seed.cycle_ms"),
        "≤ 1,000",
        |v| v <= 1000.0,
    );
    t.check(
        "seed: registry load (median, ms)",
        t.med("seed.registry_load_ms"),
        "≤ 1,000",
        |v| v <= 1000.0,
    );
    t.check(
        "seed: peak RSS (worst run, MiB)",
        t.worst("seed.peak_rss_mb"),
        "≤ 100",
        |v| v <= 100.0,
    );
    t.check(
        "seed: DB average (median, ms)",
        t.med("seed.db_avg_ms"),
        "< 50 (seed)",
        |v| v < 50.0,
    );
    t.check(
        "seed: Redis average (median, ms)",
        t.med("seed.redis_avg_ms"),
        "< 5 (seed)",
        |v| v < 5.0,
    );
}

/// Checks the Telegram-ceiling runs (1 and 3 bots, paid broadcast): the
/// free rate reached, album items counted one by one; no 429.
fn ceiling_targets(t: &mut Checks<'_>) {
    for (key, bots, paid) in CEILINGS {
        let name = if paid {
            format!("ceiling, {bots} bot(s), paid broadcast")
        } else {
            format!("ceiling, {bots} bot(s)")
        };
        if !paid {
            t.check(
                &format!("{name}: messages ÷ allowed 30/s a bot, album items counted (median)"),
                t.med(&format!("{key}.free_fraction")),
                "≥ 0.98",
                |v| v >= 0.98,
            );
        }
        t.check(
            &format!("{name}: 429s (worst run)"),
            t.worst(&format!("{key}.rate_limited_429")),
            "= 0",
            |v| v == 0.0,
        );
    }
}

/// Checks the DbWriter against COPY and against per-row INSERTs.
fn persistence_targets(t: &mut Checks<'_>) {
    t.check(
        "persistence: DbWriter ÷ COPY (median)",
        t.med("persistence.writer_vs_copy"),
        "≥ 0.5",
        |v| v >= 0.5,
    );
    t.check(
        "persistence: DbWriter ÷ per-row INSERT (median)",
        t.med("persistence.writer_vs_per_row"),
        "≥ 30",
        |v| v >= 30.0,
    );
}

/// Checks that CPU and RSS stay flat between the two largest growth sizes.
fn growth_targets(t: &mut Checks<'_>, sizes: &[u32]) {
    if sizes.len() < 2 {
        return;
    }
    let (a, b) = (sizes[sizes.len() - 2], sizes[sizes.len() - 1]);
    let ratio = |t: &Checks<'_>, k: &str| {
        Some(t.med(&format!("growth{b}.{k}"))? / t.med(&format!("growth{a}.{k}"))?.max(1e-9))
    };
    t.check(
        &format!("growth {a} → {b}: CPU per delivery ratio"),
        ratio(&*t, "cpu_us_per_delivery"),
        "≤ 1.5 (flat)",
        |v| v <= 1.5,
    );
    t.check(
        &format!("growth {a} → {b}: RSS per subscription ratio"),
        ratio(&*t, "rss_kib_per_subscription"),
        "≤ 1.5 (flat)",
        |v| v <= 1.5,
    );
}

/// Whether every scenario's counts are exact: nothing lost, duplicated or unpersisted.
fn all_exact(report: &Report) -> bool {
    report
        .seed
        .iter()
        .chain(&report.seed_http)
        .chain(&report.growth)
        .all(exact)
        && [&report.baseline, &report.baseline_as_written]
            .into_iter()
            .flatten()
            .all(baseline_exact)
        && report.persistence.iter().all(|p| p.counts_exact)
        && report.ceiling.iter().all(|r| r.duplicates == 0)
        && report
            .resume
            .iter()
            .all(|r| r.rows_written == r.owed && r.received == r.owed)
        && report.reader.iter().all(|r| {
            r.lost == 0
                && r.duplicates == 0
                && r.run_calls_during_flood_wait == 0
                && r.catch_up
                    .as_ref()
                    .is_none_or(|c| c.lost == 0 && c.duplicates == 0 && c.out_of_order == 0)
        })
}
