//! Index classes: thin wrappers, no algorithms.

use crate::arrays::{check_dim, f32_matrix, matrix_f32, matrix_i64};
use crate::errors::{new_err, CoreResultExt, Kind};
use crate::gil::run_released;
use numpy::{PyArray1, PyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use quanta_core::index::IndexFlat;
use quanta_core::io::Persist;
use quanta_core::Metric;
use std::path::PathBuf;

/// Result of a search: (distances (nq, k) float32, ids (nq, k) int64).
pub type SearchOut<'py> = (Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<i64>>);

/// `v` as a count `>= 1`, or a ValueError naming `arg`.
pub fn positive(v: i64, arg: &str) -> PyResult<usize> {
    if v < 1 {
        return Err(new_err(Kind::Value, format!("{arg} must be >= 1, got {v}")));
    }
    Ok(v as usize)
}

pub fn positive_k(k: i64) -> PyResult<usize> {
    positive(k, "k")
}

/// Exact search over stored float vectors (faiss IndexFlatL2 / IndexFlatIP).
#[pyclass(name = "IndexFlat", module = "quanta._core")]
pub struct PyIndexFlat {
    inner: IndexFlat,
}

#[pymethods]
impl PyIndexFlat {
    #[new]
    #[pyo3(signature = (d, metric="l2"))]
    fn new(d: i64, metric: &str) -> PyResult<Self> {
        if d < 1 {
            return Err(new_err(Kind::Value, format!("d must be >= 1, got {d}")));
        }
        Ok(PyIndexFlat {
            inner: IndexFlat::new(d as usize, Metric::parse(metric).py()?).py()?,
        })
    }

    #[getter]
    fn d(&self) -> usize {
        self.inner.d()
    }

    #[getter]
    fn metric(&self) -> &'static str {
        self.inner.metric().name()
    }

    #[getter]
    fn ntotal(&self) -> usize {
        self.inner.ntotal()
    }

    fn add(&mut self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let x = f32_matrix(x, "x")?;
        check_dim(&x, self.inner.d(), "x")?;
        let xs = x.as_slice()?;
        let inner = &mut self.inner;
        run_released(py, None, |_| inner.add(xs))
    }

    #[pyo3(signature = (queries, k, progress=None))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: i64,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<SearchOut<'py>> {
        let k = positive_k(k)?;
        let q = f32_matrix(queries, "queries")?;
        check_dim(&q, self.inner.d(), "queries")?;
        let nq = q.shape()[0];
        let qs = q.as_slice()?;
        let inner = &self.inner;
        let (d, i) = run_released(py, progress, |ctl| inner.search(qs, k, ctl))?;
        Ok((matrix_f32(py, d, nq, k)?, matrix_i64(py, i, nq, k)?))
    }

    fn reconstruct<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyArray1<f32>>> {
        Ok(PyArray1::from_vec(py, self.inner.reconstruct(id).py()?))
    }

    /// Stored vectors `i0 .. i0 + n` as an (n, d) copy.
    fn reconstruct_n<'py>(
        &self,
        py: Python<'py>,
        i0: i64,
        n: i64,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let total = self.inner.ntotal() as i64;
        if i0 < 0 || n < 0 || i0 + n > total {
            return Err(new_err(
                Kind::Value,
                format!("range [{i0}, {}) is outside [0, {total})", i0 + n),
            ));
        }
        let d = self.inner.d();
        let (a, b) = (i0 as usize * d, (i0 + n) as usize * d);
        matrix_f32(py, self.inner.data()[a..b].to_vec(), n as usize, d)
    }

    fn reset(&mut self) {
        self.inner.reset()
    }

    /// Whether the vectors are still a view of a memory-mapped file.
    #[getter]
    fn is_mapped(&self) -> bool {
        self.inner.is_mapped()
    }

    /// Save to `path` (atomic: temporary file, fsync, rename).
    fn write(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let inner = &self.inner;
        run_released(py, None, |_| inner.write(&path))
    }

    /// Load from `path`; with `mmap`, the vectors are a view of the mapped file until `add`.
    #[staticmethod]
    #[pyo3(signature = (path, mmap=false))]
    fn read(py: Python<'_>, path: PathBuf, mmap: bool) -> PyResult<Self> {
        let inner = run_released(py, None, |_| IndexFlat::read(&path, mmap))?;
        Ok(PyIndexFlat { inner })
    }

    fn __len__(&self) -> usize {
        self.inner.ntotal()
    }
}
