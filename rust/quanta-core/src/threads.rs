//! quanta's own rayon pool (never the global one), sized by `set_num_threads` or
//! `QUANTA_NUM_THREADS`, default: all cores.
//!
//! The pool is built lazily; a "used" flag tells a fork hook whether the pool exists (a forked
//! child must not touch a pool whose worker threads did not survive the fork).

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

struct PoolState {
    threads: usize,
    pool: Option<Arc<rayon::ThreadPool>>,
}

static STATE: RwLock<PoolState> = RwLock::new(PoolState {
    threads: 0,
    pool: None,
});
static USED: AtomicBool = AtomicBool::new(false);

fn default_threads() -> usize {
    if let Ok(s) = std::env::var("QUANTA_NUM_THREADS") {
        if let Ok(n) = s.trim().parse::<usize>() {
            if n > 0 && n <= MAX_THREADS {
                return n;
            }
        }
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Number of threads parallel work uses.
pub fn num_threads() -> usize {
    let st = STATE.read().unwrap_or_else(|e| e.into_inner());
    if st.threads > 0 {
        st.threads
    } else {
        default_threads()
    }
}

/// Upper bound on the pool size (far above any useful value; guards against typos).
pub const MAX_THREADS: usize = 1024;

/// Resize the pool (1 ..= [`MAX_THREADS`]); the new pool is built on next use.
pub fn set_num_threads(n: usize) -> Result<()> {
    if n == 0 || n > MAX_THREADS {
        return Err(Error::invalid(format!(
            "num_threads must be in 1..={MAX_THREADS}, got {n}"
        )));
    }
    let mut st = STATE.write().unwrap_or_else(|e| e.into_inner());
    if st.threads != n {
        st.threads = n;
        st.pool = None;
    }
    Ok(())
}

/// The pool, built on first use.
pub fn pool() -> Arc<rayon::ThreadPool> {
    if let Some(p) = &STATE.read().unwrap_or_else(|e| e.into_inner()).pool {
        return p.clone();
    }
    let mut st = STATE.write().unwrap_or_else(|e| e.into_inner());
    if st.threads == 0 {
        st.threads = default_threads();
    }
    if st.pool.is_none() {
        let p = rayon::ThreadPoolBuilder::new()
            .num_threads(st.threads)
            .thread_name(|i| format!("quanta-{i}"))
            .build()
            .expect("failed to spawn quanta worker threads");
        st.pool = Some(Arc::new(p));
    }
    USED.store(true, Ordering::Relaxed);
    st.pool.clone().expect("pool just built")
}

/// Run `f` inside the quanta pool (so `par_iter` inside uses its threads).
pub fn install<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    pool().install(f)
}

/// Whether the pool has been built in this process.
pub fn pool_used() -> bool {
    USED.load(Ordering::Relaxed)
}

/// Forget the pool without joining it: for the child side of `fork()`, where the parent's
/// worker threads do not exist. The next call builds a fresh pool.
pub fn reset_after_fork() {
    let mut st = STATE.write().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = st.pool.take() {
        // the workers are gone in the child; dropping would try to signal them
        std::mem::forget(p);
    }
    USED.store(false, Ordering::Relaxed);
}
