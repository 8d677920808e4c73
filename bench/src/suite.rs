//! The scenarios and how they run: the plan (sizes of every scenario,
//! tiny for CI), the parent that runs each measurement in a child process of
//! its own, and the child's side (`kuryer-bench --child SPEC`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::Context as _;
use kuryer::config::Config;
use serde::{Deserialize, Serialize};

use crate::BenchArgs;
use crate::baseline::{self, BaselineResult, BaselineSpec};
use crate::load::{self, ApiLoadResult, ApiLoadSpec, BotLoadResult, BotLoadSpec};
use crate::mtproto_fake::{self, MtprotoFakeResult, MtprotoFakeSpec};
use crate::persistence::{self, PersistenceResult, PersistenceSpec};
use crate::pipeline_run::{self, PipelineResult, PipelineSpec, Reading};
use crate::plot;
use crate::reader::{self, ReaderSpec};
use crate::reader_plan::{reader_lines, reader_plan};
use crate::reader_result::ReaderResult;
use crate::report::{Report, summarise};
use crate::resume::{self, ResumeResult, ResumeSpec};
use crate::suite_plan::{Plan, mtproto_fake_plan, plan};
use crate::table::print_table;
use crate::util;

/// One measurement, as the parent hands it to a child process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ChildSpec {
    MtprotoFake(MtprotoFakeSpec),
    Pipeline(PipelineSpec),
    Persistence(PersistenceSpec),
    Baseline(BaselineSpec),
    Resume(ResumeSpec),
    Reader(ReaderSpec),
    ApiLoad(ApiLoadSpec),
    BotLoad(BotLoadSpec),
}

/// What a child process measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ChildResult {
    MtprotoFake(MtprotoFakeResult),
    Pipeline(PipelineResult),
    Persistence(PersistenceResult),
    Baseline(BaselineResult),
    Resume(ResumeResult),
    Reader(ReaderResult),
    ApiLoad(ApiLoadResult),
    BotLoad(BotLoadResult),
}

/// Prints a progress line on stderr.
fn progress(what: &str) {
    eprintln!("[bench] {what}");
}

/// Runs `kuryer-bench`: as the parent, every selected scenario in child
/// processes, then the table, the plot and the JSON line; as a child
/// (`--child`), one measurement.
pub(crate) async fn run(args: &BenchArgs, cfg: &Config) -> anyhow::Result<()> {
    if let Some(spec) = &args.child {
        return run_as_child(spec, cfg).await;
    }
    if args.scenario == "instances" {
        // Several `kuryer run` processes: its own lines and JSON line.
        let r = crate::instances::run(cfg, args.tiny).await?;
        println!("{}", serde_json::json!({ "instances": r }));
        return Ok(());
    }
    if args.scenario == "abuse" {
        // A real `kuryer run` process per run, watched from outside: its own lines and JSON line.
        let r = crate::abuse::run(cfg, args.tiny, args.load_seconds, &args.abuse).await?;
        println!("{}", serde_json::json!({ "abuse": r }));
        return Ok(());
    }
    let scenarios = scenarios(&args.scenario)?;
    let runs = args.runs.unwrap_or(if args.tiny { 1 } else { 3 }).max(1);
    let mut suite = Suite {
        args,
        plan: plan(args),
        runs,
        report: Report {
            command: std::env::args().collect::<Vec<_>>().join(" "),
            machine: util::machine(cfg).await,
            tiny: args.tiny,
            runs,
            ..Report::default()
        },
    };
    for scenario in scenarios {
        suite.scenario(scenario)?;
    }
    finish(args, suite.report)
}

/// Runs the one measurement `--child` names and prints its result as a JSON line.
async fn run_as_child(spec: &str, cfg: &Config) -> anyhow::Result<()> {
    let spec: ChildSpec = serde_json::from_str(spec).context("--child")?;
    let result = match spec {
        ChildSpec::Pipeline(s) => ChildResult::Pipeline(pipeline_run::run(&s, cfg).await?),
        ChildSpec::Persistence(s) => ChildResult::Persistence(persistence::run(&s, cfg).await?),
        ChildSpec::Baseline(s) => ChildResult::Baseline(baseline::run(&s, cfg).await?),
        ChildSpec::MtprotoFake(s) => ChildResult::MtprotoFake(mtproto_fake::run(&s).await?),
        ChildSpec::Resume(s) => ChildResult::Resume(resume::run(&s, cfg).await?),
        ChildSpec::Reader(s) => ChildResult::Reader(reader::run(&s, cfg).await?),
        ChildSpec::ApiLoad(s) => ChildResult::ApiLoad(load::api_load(&s, cfg).await?),
        ChildSpec::BotLoad(s) => ChildResult::BotLoad(load::bot_load(&s, cfg).await?),
    };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// The scenarios `--scenario` selects (`all`: the default set).
fn scenarios(name: &str) -> anyhow::Result<Vec<&str>> {
    Ok(match name {
        "all" => vec!["seed", "ceiling", "persistence", "growth", "mtproto-fake"],
        s @ ("seed" | "ceiling" | "persistence" | "growth" | "mtproto-fake" | "resume"
        | "api-load" | "bot-load" | "bot-load-2k" | "reader" | "reader-1k" | "reader-10k"
        | "reader-catch-up") => {
            vec![s]
        }
        other => {
            anyhow::bail!(
                "unknown scenario {other:?}: seed, ceiling, persistence, growth, mtproto-fake, resume, api-load, bot-load, bot-load-2k, abuse, instances, reader, reader-1k, reader-10k, reader-catch-up or all"
            )
        }
    })
}

/// Summarises the report, writes the growth plot, prints the table and the JSON line, and fails on inexact counts.
fn finish(args: &BenchArgs, mut report: Report) -> anyhow::Result<()> {
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

/// A parent's run of the suite: its arguments, plan and run count, and the report it fills.
struct Suite<'a> {
    /// The command line.
    args: &'a BenchArgs,
    /// The sizes of every scenario.
    plan: Plan,
    /// Runs of each measurement.
    runs: u32,
    /// What the runs measured so far.
    report: Report,
}

impl Suite<'_> {
    /// Runs every measurement of one scenario `runs` times, each in a child process.
    fn scenario(&mut self, scenario: &str) -> anyhow::Result<()> {
        match scenario {
            "seed" => seed_scenario(self.args, &self.plan, self.runs, &mut self.report),
            "ceiling" => self.ceiling(),
            "mtproto-fake" => self.mtproto_fake(),
            "persistence" => self.persistence(),
            "resume" => self.resume(),
            "reader" | "reader-1k" | "reader-10k" | "reader-catch-up" => self.reader(scenario),
            "api-load" => self.api_load(),
            "bot-load" => self.bot_load(self.plan.bot_load.clone()),
            "bot-load-2k" => self.bot_load(self.plan.bot_load_2k.clone()),
            _ => self.growth(),
        }
    }

    /// The Telegram ceiling runs: achieved sends a second against those allowed.
    fn ceiling(&mut self) -> anyhow::Result<()> {
        let runs = self.runs;
        for r in 1..=runs {
            for spec in &self.plan.ceiling {
                progress(&format!(
                    "Telegram ceiling, {} bot(s){}, {:.0} s, run {r}/{runs}",
                    spec.bots,
                    if spec.paid { ", paid broadcast" } else { "" },
                    spec.ceiling_s
                ));
                let res = child_pipeline(self.args, spec)?;
                if let Some(c) = &res.ceiling {
                    progress(&format!(
                        "{:.2} requests/s, {:.2} messages/s ({:.2} without the paid flag: {:.1} % of {:.0}/s allowed), 429s {}",
                        c.achieved_per_s,
                        c.items_per_s,
                        c.free_items_per_s,
                        c.free_fraction * 100.0,
                        c.allowed_per_s,
                        c.rate_limited_429
                    ));
                }
                self.report.ceiling.push(res);
            }
        }
        Ok(())
    }

    /// The MTProto fake runs: updates a second and the fake's CPU per update.
    fn mtproto_fake(&mut self) -> anyhow::Result<()> {
        let runs = self.runs;
        for r in 1..=runs {
            for spec in mtproto_fake_plan(self.args.tiny) {
                progress(&format!("MTProto fake, {}, run {r}/{runs}", spec.label));
                let ChildResult::MtprotoFake(m) =
                    run_child(self.args, &ChildSpec::MtprotoFake(spec))?
                else {
                    anyhow::bail!("the MTProto fake child answered something else")
                };
                progress(&format!(
                    "{}: {} updates in {:.2} s, {:.0}/s, fake {:.1} µs/update (process {:.1}), setup {:.1} s",
                    m.label,
                    m.updates,
                    m.elapsed_s,
                    m.updates_per_s,
                    m.fake_cpu_us_per_update,
                    m.process_cpu_us_per_update,
                    m.setup_s
                ));
                self.report.mtproto_fake.push(m);
            }
        }
        Ok(())
    }

    /// The persistence runs: DbWriter, per-row INSERT and COPY rows a second.
    fn persistence(&mut self) -> anyhow::Result<()> {
        let runs = self.runs;
        for r in 1..=runs {
            progress(&format!("persistence, run {r}/{runs}"));
            let ChildResult::Persistence(p) = run_child(
                self.args,
                &ChildSpec::Persistence(self.plan.persistence.clone()),
            )?
            else {
                anyhow::bail!("the persistence child answered something else")
            };
            progress(&format!(
                "DbWriter {:.0} rows/s, per-row {:.0}, COPY {:.0}",
                p.writer_rows_per_s, p.per_row_rows_per_s, p.copy_rows_per_s
            ));
            self.report.persistence.push(p);
        }
        Ok(())
    }

    /// The resume runs: a restart owing every delivery of the recorded posts.
    fn resume(&mut self) -> anyhow::Result<()> {
        let runs = self.runs;
        let spec = &self.plan.resume;
        for r in 1..=runs {
            progress(&format!(
                "resume: {} users × {} subscriptions × {} posts owed, run {r}/{runs}",
                spec.users, spec.subs, spec.posts
            ));
            let ChildResult::Resume(res) = run_child(self.args, &ChildSpec::Resume(spec.clone()))?
            else {
                anyhow::bail!("the resume child answered something else")
            };
            progress(&format!(
                "resume: {} owed, start {:.0} ms, first send {:.0} ms, all {:.1} s ({:.0}/s), peak RSS {:.0} MB, {} received",
                res.owed,
                res.start_ms,
                res.first_send_ms,
                res.total_s,
                res.per_s,
                res.peak_rss_mb,
                res.received
            ));
            self.report.resume.push(res);
        }
        Ok(())
    }

    /// The reader runs of `scenario` (`reader`, `reader-1k`, `reader-10k` or `reader-catch-up`).
    fn reader(&mut self, scenario: &str) -> anyhow::Result<()> {
        let runs = self.runs;
        for r in 1..=runs {
            for spec in reader_plan(self.args.tiny, scenario) {
                progress(&format!("reader, {}, run {r}/{runs}", spec.label));
                let ChildResult::Reader(res) = run_child(self.args, &ChildSpec::Reader(spec))?
                else {
                    anyhow::bail!("the reader child answered something else")
                };
                for line in reader_lines(&res) {
                    progress(&line);
                }
                self.report.reader.push(res);
            }
        }
        Ok(())
    }

    /// The HTTP API load runs: requests a second and their latencies.
    fn api_load(&mut self) -> anyhow::Result<()> {
        let runs = self.runs;
        let spec = &self.plan.api_load;
        for r in 1..=runs {
            progress(&format!(
                "api-load: {} users, {} s, run {r}/{runs}",
                spec.users, spec.seconds
            ));
            let ChildResult::ApiLoad(res) =
                run_child(self.args, &ChildSpec::ApiLoad(spec.clone()))?
            else {
                anyhow::bail!("the api-load child answered something else")
            };
            progress(&format!(
                "api-load: {} requests, {} failures, {:.0}/s; add p50/p95/p99 {:.1}/{:.1}/{:.1} ms, get {:.1}/{:.1}/{:.1} ms, all {:.1}/{:.1}/{:.1} (max {:.0}) ms; CPU {:.1} s",
                res.requests,
                res.failures,
                res.per_s,
                res.add.p50,
                res.add.p95,
                res.add.p99,
                res.get.p50,
                res.get.p95,
                res.get.p99,
                res.all.p50,
                res.all.p95,
                res.all.p99,
                res.all.max,
                res.cpu_s
            ));
            self.report.api_load.push(res);
        }
        Ok(())
    }

    /// The bot command load runs: replies a second and their latencies.
    fn bot_load(&mut self, spec: BotLoadSpec) -> anyhow::Result<()> {
        let runs = self.runs;
        for r in 1..=runs {
            progress(&format!(
                "bot-load: {} users, {} commands/s, {} s, fake latency {} ms, run {r}/{runs}",
                spec.users, spec.rate, spec.seconds, spec.latency_ms
            ));
            let ChildResult::BotLoad(res) =
                run_child(self.args, &ChildSpec::BotLoad(spec.clone()))?
            else {
                anyhow::bail!("the bot-load child answered something else")
            };
            progress(&format!(
                "bot-load: {} commands ({:.0}/s offered), {} replies ({:.0}/s), {} lost, {} out of order; latency p50/p95/p99 {:.1}/{:.1}/{:.1} (max {:.0}) ms; CPU {:.1} s",
                res.commands,
                res.offered_per_s,
                res.replies,
                res.replies_per_s,
                res.lost,
                res.out_of_order,
                res.latency.p50,
                res.latency.p95,
                res.latency.p99,
                res.latency.max,
                res.cpu_s
            ));
            progress(&format!(
                "bot-load: p50/p99 over the first tenth of the commands {:.1}/{:.1} ms, the last tenth {:.1}/{:.1} ms",
                res.latency_first_tenth.p50,
                res.latency_first_tenth.p99,
                res.latency_last_tenth.p50,
                res.latency_last_tenth.p99
            ));
            self.report.bot_load.push(res);
        }
        Ok(())
    }

    /// The growth runs: the pipeline at each channel count.
    fn growth(&mut self) -> anyhow::Result<()> {
        let runs = self.runs;
        for r in 1..=runs {
            for spec in &self.plan.growth {
                progress(&format!(
                    "growth, {} channels, run {r}/{runs}",
                    spec.channels
                ));
                let res = child_pipeline(self.args, spec)?;
                progress(&pipeline_line(&res));
                self.report.growth.push(res);
            }
        }
        Ok(())
    }
}

/// The seed scale: kuryer's runs (channels read from an in-process copy),
/// then, unless `--baseline off`, the comparison with the seed's design:
/// kuryer again with the channels read over HTTP from the fake's history
/// route, and the Python baseline reading that same route without the
/// seed's `sleep(0.05)` after each send (and, with `--baseline-as-written`,
/// with it).
fn seed_scenario(
    args: &BenchArgs,
    plan: &Plan,
    runs: u32,
    report: &mut Report,
) -> anyhow::Result<()> {
    for r in 1..=runs {
        progress(&format!("seed scale, run {r}/{runs}"));
        let res = child_pipeline(args, &plan.seed)?;
        progress(&pipeline_line(&res));
        report.seed.push(res);
    }
    if args.baseline == "off" {
        report.baseline_note = Some("not run (--baseline off)".into());
        return Ok(());
    }
    let python = match baseline::find_python() {
        Ok(python) => python,
        Err(why) => {
            progress(&format!("baseline skipped: {why}"));
            report.baseline_note = Some(format!("skipped: no Python with its packages ({why})"));
            return Ok(());
        }
    };
    let http = PipelineSpec {
        label: "seed-http".into(),
        reading: Reading::Http,
        ..plan.seed.clone()
    };
    for r in 1..=runs {
        progress(&format!(
            "seed scale, channels read over HTTP like the baseline, run {r}/{runs}"
        ));
        let res = child_pipeline(args, &http)?;
        progress(&pipeline_line(&res));
        report.seed_http.push(res);
    }
    let mut pauses = vec![0.0];
    if args.baseline_as_written {
        pauses.push(baseline::seed_send_pause());
    }
    for pause in pauses {
        progress(&format!(
            "seed-design baseline (Python, {} posts a channel, {})",
            plan.baseline_posts,
            if pause > 0.0 {
                format!("sleep({pause}) after each send, as written")
            } else {
                "no sleep after a send".into()
            }
        ));
        let spec = BaselineSpec {
            channels: plan.seed.channels,
            users: plan.seed.users,
            subs: plan.seed.subs,
            posts: plan.baseline_posts,
            send_pause_s: pause,
            python: python.clone(),
        };
        match run_child(args, &ChildSpec::Baseline(spec)) {
            Ok(ChildResult::Baseline(b)) => {
                progress(&format!(
                    "baseline: {} of {} delivered, {:.0}/s, p99 {:.0} ms",
                    b.delivered, b.deliveries_expected, b.deliveries_per_s, b.latency_p99_ms
                ));
                if pause > 0.0 {
                    report.baseline_as_written = Some(b);
                } else {
                    report.baseline = Some(b);
                }
            }
            Ok(_) => anyhow::bail!("the baseline child answered something else"),
            Err(e) => {
                progress(&format!("baseline failed: {e:#}"));
                report.baseline_note = Some(format!("failed: {e:#}"));
            }
        }
    }
    Ok(())
}

/// A pipeline run's one-line summary for the progress output.
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

/// Runs one pipeline measurement in a child process.
fn child_pipeline(args: &BenchArgs, spec: &PipelineSpec) -> anyhow::Result<PipelineResult> {
    match run_child(args, &ChildSpec::Pipeline(spec.clone()))? {
        ChildResult::Pipeline(r) => Ok(r),
        _ => anyhow::bail!("the pipeline child answered something else"),
    }
}

/// Runs one measurement in `kuryer-bench --child SPEC` and reads its last line.
fn run_child(args: &BenchArgs, spec: &ChildSpec) -> anyhow::Result<ChildResult> {
    let exe = std::env::current_exe().context("locating the kuryer-bench binary")?;
    let mut cmd = Command::new(exe);
    if let Some(path) = &args.config {
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

#[cfg(test)]
mod tests {
    use super::*;

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
