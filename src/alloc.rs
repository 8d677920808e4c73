//! The process's allocator: mimalloc, tuned.
//!
//! A delivery is many small short-lived allocations (an HTTP request, JSON,
//! Redis commands); glibc's malloc/free was a quarter of the pipeline's CPU
//! in the seed-scale profile. mimalloc's thread-local free lists cost less.
//! It is declared here, in the library, so that every binary running the
//! pipeline — `kuryer`, the benchmark's children, the tests — measures the
//! same allocator.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc gives freed pages back at once rather than after 10 ms: a
/// delivery burst frees what it allocated in waves. (Committing arenas on
/// demand, `MIMALLOC_ARENA_EAGER_COMMIT=0`, matters more but is read before
/// `main`, so the systemd unit sets it in the environment.)
pub fn tune() {
    // `mi_option_purge_delay` in mimalloc.h (v2); the crate names no constant.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: setting an option is a plain store mimalloc allows at any time.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
}
