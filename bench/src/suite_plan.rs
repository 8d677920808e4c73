//! What `kuryer-bench` runs for its arguments: the scenarios' sizes (the
//! full ones, or `--tiny` for the smoke test) and the specs handed to the
//! child processes that run them.

use crate::BenchArgs;
use crate::load::{ApiLoadSpec, BotLoadSpec};
use crate::mtproto_fake::MtprotoFakeSpec;
use crate::persistence::PersistenceSpec;
use crate::pipeline_run::{PipelineSpec, Reading};
use crate::resume::ResumeSpec;

/// The sizes of every scenario.
pub(crate) struct Plan {
    pub(crate) seed: PipelineSpec,
    pub(crate) baseline_posts: u32,
    pub(crate) ceiling: Vec<PipelineSpec>,
    pub(crate) persistence: PersistenceSpec,
    pub(crate) growth: Vec<PipelineSpec>,
    pub(crate) resume: ResumeSpec,
    pub(crate) api_load: ApiLoadSpec,
    pub(crate) bot_load: BotLoadSpec,
    /// The bot's target: 200 commands a second from 2,000 people.
    pub(crate) bot_load_2k: BotLoadSpec,
}

/// The sizes of every scenario, tiny or full, with the command line's overrides.
pub(crate) fn plan(args: &BenchArgs) -> Plan {
    let tiny = args.tiny;
    let load_seconds = args.load_seconds.unwrap_or(if tiny { 2.0 } else { 30.0 });
    let seed = if tiny {
        pipeline_spec(tiny, "seed", 20, 200, 3, 3)
    } else {
        pipeline_spec(tiny, "seed", 1000, 10_000, 5, 5)
    };
    let ceiling_s = args
        .ceiling_seconds
        .unwrap_or(if tiny { 3.0 } else { 60.0 })
        .max(1.0);
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
    Plan {
        resume: resume_plan(tiny),
        api_load: ApiLoadSpec {
            users: if tiny { 20 } else { 1_000 },
            seconds: load_seconds,
        },
        bot_load: BotLoadSpec {
            users: if tiny { 50 } else { 10_000 },
            rate: args
                .bot_load_rate
                .unwrap_or(if tiny { 50.0 } else { 1_000.0 }),
            seconds: load_seconds,
            latency_ms: 0,
        },
        bot_load_2k: BotLoadSpec {
            users: if tiny { 50 } else { 2_000 },
            rate: args
                .bot_load_rate
                .unwrap_or(if tiny { 50.0 } else { 200.0 }),
            seconds: load_seconds,
            // Telegram's answers take tens of milliseconds.
            latency_ms: 30,
        },
        baseline_posts: args.baseline_posts.unwrap_or(seed.posts),
        seed,
        ceiling: crate::ceiling_mix::ceiling_plan(tiny, ceiling_s, |channels, users, subs| {
            pipeline_spec(
                tiny,
                "ceiling",
                channels,
                users,
                subs,
                crate::ceiling_mix::MIX_ROUNDS,
            )
        }),
        persistence,
        growth: growth_plan(tiny),
    }
}

/// A pipeline run of the given size with the plan's defaults (cycle, no limits, one bot, in-memory reading).
fn pipeline_spec(
    tiny: bool,
    label: &str,
    channels: u32,
    users: u32,
    subs: u32,
    posts: u32,
) -> PipelineSpec {
    PipelineSpec {
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
        reading: Reading::Memory,
        mixed: false,
        paid: false,
    }
}

/// The growth runs: three channel counts, ten users a channel.
fn growth_plan(tiny: bool) -> Vec<PipelineSpec> {
    let sizes: &[u32] = if tiny {
        &[5, 10, 20]
    } else {
        &[100, 1000, 10_000]
    };
    sizes
        .iter()
        .map(|&c| PipelineSpec {
            paced_posts: if tiny { 5 } else { 100 },
            ..pipeline_spec(
                tiny,
                &format!("growth-{c}"),
                c,
                c * 10,
                if tiny { 3 } else { 5 },
                2,
            )
        })
        .collect()
}

/// The resume run's size.
fn resume_plan(tiny: bool) -> ResumeSpec {
    // 100 channels × 1,000 subscribers × 5 posts = 500,000 owed.
    if tiny {
        ResumeSpec {
            channels: 10,
            users: 1_000,
            subs: 1,
            posts: 2,
        }
    } else {
        ResumeSpec {
            channels: 100,
            users: 100_000,
            subs: 1,
            posts: 5,
        }
    }
}

/// The fake data centre at 10,000 channels: one account joined to 500 of
/// them (Telegram's cap), and 20 accounts joined to 500 each (all 10,000).
pub(crate) fn mtproto_fake_plan(tiny: bool) -> Vec<MtprotoFakeSpec> {
    let (channels, joined, one, twenty) = if tiny {
        (100, 20, 200, 400)
    } else {
        (10_000, 500, 100_000, 200_000)
    };
    vec![
        MtprotoFakeSpec {
            label: format!("1 account, {joined} of {channels} channels"),
            channels,
            accounts: 1,
            joined,
            posts: one,
        },
        MtprotoFakeSpec {
            label: format!("20 accounts x {joined} of {channels} channels"),
            channels,
            accounts: if tiny { 5 } else { 20 },
            joined,
            posts: twenty,
        },
    ]
}
