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
    println!(
        "hostile apply: best of {runs} {best:.2} ms, allocated {:.1} MB, peak live {:.1} MB",
        total as f64 / 1e6,
        peak as f64 / 1e6
    );
}
