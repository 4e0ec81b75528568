//! Cancellation and progress for long computations.
//!
//! The Python binding polls signals on the main thread while the work runs on the pool; on
//! Ctrl-C it sets `cancel`, and loops check [`Control::check`] between blocks of work.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Shared between the worker and the thread that watches it.
#[derive(Debug, Default)]
pub struct Control {
    cancel: AtomicBool,
    done: AtomicU64,
    total: AtomicU64,
}

impl Control {
    /// A fresh control with nothing done.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the computation to stop at its next check.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// `Err(Interrupted)` once cancelled.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }

    /// Announce the amount of work (units are the computation's own, e.g. iterations).
    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }

    /// Add finished units.
    pub fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// (done, total) so far.
    pub fn progress(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

/// A control nobody cancels, for callers that need none.
pub fn detached() -> Control {
    Control::new()
}
