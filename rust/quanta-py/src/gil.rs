//! The only place where the GIL is released.
//!
//! `run_released` runs a core computation on quanta's rayon pool with the GIL released, while
//! the calling (main) thread wakes up every 50 ms, takes the GIL briefly, checks for Ctrl-C
//! (signals are only delivered to the main thread) and reports progress to an optional Python
//! callback. On Ctrl-C the computation is cancelled through its `Control` and the
//! `KeyboardInterrupt` is raised once it has stopped.

use crate::errors::to_pyerr;
use pyo3::prelude::*;
use quanta_core::{threads, Control, Error};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::Duration;

const POLL: Duration = Duration::from_millis(50);

/// Run `job` without the GIL on the quanta pool; see the module docs.
pub fn run_released<T, F>(py: Python<'_>, progress: Option<Py<PyAny>>, job: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce(&Control) -> quanta_core::Result<T> + Send,
{
    let ctl = Control::new();
    let pool = threads::pool();
    let mut interrupt: Option<PyErr> = None;
    let mut callback_err: Option<PyErr> = None;
    let report = |ctl: &Control, cb_err: &mut Option<PyErr>| {
        if let Some(cb) = &progress {
            if cb_err.is_none() {
                let (done, total) = ctl.progress();
                Python::with_gil(|py| {
                    if let Err(e) = cb.call1(py, (done, total)) {
                        *cb_err = Some(e);
                    }
                });
            }
        }
    };
    let result = py.allow_threads(|| {
        let (tx, rx) = channel();
        let ctl_ref = &ctl;
        pool.in_place_scope(|s| {
            s.spawn(move |_| {
                let _ = tx.send(job(ctl_ref));
            });
            loop {
                match rx.recv_timeout(POLL) {
                    Ok(r) => break r,
                    Err(RecvTimeoutError::Timeout) => {
                        if interrupt.is_none() {
                            Python::with_gil(|py| {
                                if let Err(e) = py.check_signals() {
                                    ctl.cancel();
                                    interrupt = Some(e);
                                }
                            });
                        }
                        report(&ctl, &mut callback_err);
                    }
                    // the job panicked: rayon re-raises the panic when the scope ends
                    Err(RecvTimeoutError::Disconnected) => {
                        break Err(Error::invalid("internal error: computation aborted"))
                    }
                }
            }
        })
    });
    if let Some(e) = interrupt {
        return Err(e);
    }
    report(&ctl, &mut callback_err);
    if let Some(e) = callback_err {
        return Err(e);
    }
    result.map_err(to_pyerr)
}
