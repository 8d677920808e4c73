//! The hostile transform measured: a 4,096-character post through 20 rules
//! that try to grow it past the work limit (`a => aaaa`, then `a => ` 1,000
//! characters, nineteen times). Prints the time and the bytes allocated
//! (total and peak) for one `apply`.
//!
//! `cargo run --release -p kuryer-actors --example hostile_transform`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use kuryer_actors::transform::{TEXT_LIMIT, TransformSpec};

struct Counting;

static TOTAL: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        TOTAL.fetch_add(l.size(), Ordering::Relaxed);
        let live = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: allocated above with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn main() {
    let big = "z".repeat(1_000);
    let mut rules = vec![r#"{"from": "a", "to": "aaaa"}"#.to_owned()];
    for _ in 0..19 {
        rules.push(format!(r#"{{"from": "a", "to": "{big}"}}"#));
    }
    let json = format!(r#"{{"replace": [{}]}}"#, rules.join(","));
    let tr = TransformSpec::from_json(&json).unwrap().compile().unwrap();
    let text = "a".repeat(4_096);
    let runs = 5;
    let mut best = f64::MAX;
    let (mut total, mut peak) = (0, 0);
    for _ in 0..runs {
        let (t0, p0) = (TOTAL.load(Ordering::Relaxed), LIVE.load(Ordering::Relaxed));
        PEAK.store(p0, Ordering::Relaxed);
        let start = Instant::now();
        let (out, _) = tr.apply(&text, &[], TEXT_LIMIT);
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
        total = TOTAL.load(Ordering::Relaxed) - t0;
        peak = PEAK.load(Ordering::Relaxed) - p0;
        assert!(!out.is_empty());
    }
    let start = Instant::now();
    let heavy = TransformSpec::from_json(&heavy_rules()).unwrap().compile();
    let compile_ms = start.elapsed().as_secs_f64() * 1e3;
    match heavy {
        Ok(heavy) => {
            let words = "abcdefghijklmnopqrstuvwxyzabc ".repeat(140);
            let start = Instant::now();
            let _ = heavy.apply(&words[..4_096], &[], TEXT_LIMIT);
            println!(
                "heavy regexes: compile {compile_ms:.1} ms, apply {:.1} ms",
                start.elapsed().as_secs_f64() * 1e3
            );
        }
        Err(e) => println!("heavy regexes refused: {e} ({compile_ms:.1} ms)"),
    }
    println!(
        "hostile apply: best of {runs} {best:.2} ms, allocated {:.1} MB, peak live {:.1} MB",
        total as f64 / 1e6,
        peak as f64 / 1e6
    );
}

/// A heavy regex transform: twenty rules near the compiled-size limit
/// whose search thrashes the lazy DFA's cache, over a 4,096-character text.
fn heavy_rules() -> String {
    let rules: Vec<String> = (0..20)
        .map(|i| {
            format!(
                r#"{{"from": "(?:[a-z]{{1,30}} ?){{1,8}}[{i}0-9]", "to": "$1", "regex": true}}"#
            )
        })
        .collect();
    format!(r#"{{"replace": [{}]}}"#, rules.join(","))
}
