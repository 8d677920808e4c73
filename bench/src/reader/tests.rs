//! The reader scenario's plan and projection.

use super::*;

fn spec(channels: u32, accounts: u32, joined: u32) -> ReaderSpec {
    ReaderSpec {
        label: String::new(),
        channels,
        accounts,
        joined,
        max_per_account: 450,
        history_per_second: 2.5,
        poll_interval_s: 60,
        poll_max_interval_ms: None,
        posts: 0,
        rate: 1.0,
        catch_up_channels: 0,
        catch_up_posts: 0,
        catch_up_history_limit: None,
        history_limit_calls: 10,
        history_limit_per_s: 30,
    }
}

#[test]
fn the_projection_follows_the_default_budgets() {
    let cfg = kuryer::config::ReaderConfig::default();
    let p = Projection::of(1_000, 3, &cfg);
    assert_eq!((p.per_account, p.joined_per_account), (334, 334));
    assert!((p.resolves_per_day - 30.0).abs() < 1e-9);
    // 334 look-ups at 30 a day: 12 days; twice as many: 23.
    assert_eq!((p.days_to_read_min, p.days_to_read_max), (12, 23));
    // Joins ramp 10, 12, 14, … up to 40, and wait for the look-ups.
    assert_eq!(&p.joins_by_day[..3], &[10, 12, 14]);
    assert_eq!(p.days_to_join, 15);
    let p = Projection::of(10_000, 23, &cfg);
    assert_eq!((p.per_account, p.joined_per_account), (435, 435));
    assert_eq!(p.days_to_read_min, 15);
}

#[test]
fn plan_fills_accounts_to_capacity_and_polls_the_rest() {
    let p = plan(&spec(10_000, 23, 9_900));
    let joined = p.iter().filter(|a| a.2).count();
    assert_eq!(joined, 9_900);
    let mut per = vec![0usize; 23];
    for a in p.iter().filter(|a| a.2) {
        per[a.1] += 1;
    }
    assert!(per[..22].iter().all(|&n| n == 450), "{per:?}");
    assert!(p.iter().filter(|a| !a.2).all(|a| a.1 == 22));

    let p = plan(&spec(1_000, 3, 1_000));
    let mut per = [0usize; 3];
    for a in &p {
        assert!(a.2);
        per[a.1] += 1;
    }
    assert_eq!(per, [334, 334, 332]);

    // Fewer than one account holds, all joined: spread, not one account.
    let p = plan(&spec(130, 3, 130));
    let mut per = [0usize; 3];
    for a in &p {
        per[a.1] += 1;
    }
    assert_eq!(per, [44, 44, 42]);
}
