//! Runtime switches: SIMD level, thread count, fork hook.

use crate::errors::CoreResultExt;
use pyo3::prelude::*;
use quanta_core::{simd, threads, SimdLevel};

/// Name of the SIMD level the kernels use now.
#[pyfunction]
pub fn simd_level() -> &'static str {
    simd::level().name()
}

/// Best SIMD level this CPU supports.
#[pyfunction]
pub fn detected_simd_level() -> &'static str {
    simd::detected().name()
}

/// Every level this CPU can run, lowest first.
#[pyfunction]
pub fn available_simd_levels() -> Vec<&'static str> {
    SimdLevel::available()
        .into_iter()
        .map(|l| l.name())
        .collect()
}

/// Force a SIMD level ("scalar", "avx2", "avx512").
#[pyfunction]
pub fn set_simd_level(name: &str) -> PyResult<()> {
    simd::set_level(SimdLevel::parse(name).py()?).py()
}

/// Size the thread pool (n >= 1).
#[pyfunction]
pub fn set_num_threads(n: i64) -> PyResult<()> {
    let n = usize::try_from(n).unwrap_or(0);
    threads::set_num_threads(n).py()
}

/// Current thread-pool size.
#[pyfunction]
pub fn get_num_threads() -> usize {
    threads::num_threads()
}

/// Called in a forked child: drop the parent's pool (its threads do not exist here).
#[pyfunction]
pub fn _reset_after_fork() {
    threads::reset_after_fork();
}
