//! File-format helpers shared by every index class (each class has its own `write`/`read`).

use crate::gil::run_released;
use pyo3::prelude::*;
use std::path::PathBuf;

/// The kind tag of the index file at `path` (header only), for `quanta.read_index` to dispatch.
#[pyfunction]
pub fn read_index_kind(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    run_released(py, None, |_| quanta_core::io::read_index_kind(&path))
}

/// Whether the file at `path` is a faiss index file (by its first four bytes).
#[pyfunction]
pub fn is_faiss_file(path: PathBuf) -> bool {
    // four bytes: not worth releasing the GIL for
    quanta_core::io::faiss::is_faiss_file(&path)
}
