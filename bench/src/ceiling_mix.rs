//! The Telegram-ceiling runs' workload and plan: posts of every form that
//! counts differently against the limits, and paid broadcast.
//!
//! Telegram counts an album's items one by one against a bot's 30 messages
//! a second (the fake and the limiter do the same), and `allow_paid_broadcast`
//! rides only on `sendMessage` and `copyMessage`: albums (`copyMessages`) and
//! forwards (`forwardMessage(s)`) stay at the free 30 a second. A ceiling of
//! text posts alone measures neither, so each channel publishes
//! [`MIX_ROUNDS`] posts — text, text, photo, text, an album of 3
//! (`kuryer_sim::fixtures::publish`) — and [`FORWARD_SHARE`] of the
//! subscriptions forward instead of copying.

use kuryer::store::Store;

use crate::pipeline_spec::{PipelineSpec, Reading};

/// Posts a channel publishes in a ceiling run: one of each round of
/// `fixtures::publish` (the 5th is an album of 3).
pub(crate) const MIX_ROUNDS: u32 = 5;

/// Items those rounds carry on average: (1 + 1 + 1 + 1 + 3) ÷ 5.
pub(crate) const ITEMS_PER_POST: f64 = 7.0 / 5.0;

/// One subscription in `FORWARD_SHARE` forwards (`mode = 'forward'`).
pub(crate) const FORWARD_SHARE: i64 = 2;

/// Deliveries that may carry `allow_paid_broadcast`: copies (half the
/// subscriptions) of the posts that are not albums (4 in 5).
const PAID_SHARE: f64 = 0.5 * 4.0 / 5.0;

/// The ceiling runs: 1 and 3 bots at the free limits, and 1 bot with paid
/// broadcast; each owes more than it may send in `ceiling_s`.
pub(crate) fn ceiling_plan(
    tiny: bool,
    ceiling_s: f64,
    base: impl Fn(u32, u32, u32) -> PipelineSpec,
) -> Vec<PipelineSpec> {
    [(1usize, false), (3, false), (1, true)]
        .iter()
        .map(|&(bots, paid)| {
            let (channels, subs, groups, group_subs) = if tiny {
                (10, 3, 2, 3)
            } else {
                (100, 5, 10, 10)
            };
            // Messages the bots may send in the whole run: at the free
            // limit, or at the paid one, which only the copies of single
            // posts may use ([`PAID_SHARE`] of the deliveries): sized so
            // the queue never runs dry while measured.
            let per_bot = if paid { 1000.0 } else { 30.0 };
            let sendable = (ceiling_s + 10.0) * per_bot * bots as f64 * 1.3;
            let per_user = f64::from(subs * MIX_ROUNDS);
            let deliveries_per_user = if paid {
                per_user * PAID_SHARE
            } else {
                per_user * ITEMS_PER_POST
            };
            let floor = if tiny { 300 } else { 3000 };
            let users = ((sendable / deliveries_per_user).ceil() as u32).max(floor);
            PipelineSpec {
                label: if paid {
                    format!("ceiling-paid-{bots}")
                } else {
                    format!("ceiling-{bots}")
                },
                groups,
                group_subs,
                cycle: false,
                limit_scale: 1.0,
                bots,
                paced_posts: 0,
                ceiling_s,
                mixed: true,
                paid,
                reading: Reading::Memory,
                ..base(channels, users, subs)
            }
        })
        .collect()
}

/// Makes every [`FORWARD_SHARE`]th subscription forward.
pub(crate) async fn forward_some(store: &Store) -> anyhow::Result<u64> {
    let n = store
        .conn("bench forward mode")
        .await?
        .execute(
            "UPDATE subscriptions SET mode = 'forward' WHERE id % $1 = 0",
            &[&FORWARD_SHARE],
        )
        .await?;
    Ok(n)
}
