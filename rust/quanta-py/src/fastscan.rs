//! Fast-scan bindings: `IndexPQFastScan` (4-bit PQ, packed blocks, shuffle kernels).

use crate::arrays::{check_dim, f32_matrix, matrix_f32, matrix_i64, matrix_u8, u8_matrix};
use crate::errors::{new_err, CoreResultExt, Kind};
use crate::gil::run_released;
use crate::indexes::{positive, positive_k, SearchOut};
use crate::pq::{nonneg, train_released, PyProductQuantizer};
use numpy::{PyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use quanta_core::index::IndexPQFastScan;
use quanta_core::io::Persist;
use quanta_core::Metric;
use std::path::PathBuf;

/// 4-bit PQ index scanned with in-register table shuffles.
#[pyclass(name = "IndexPQFastScan", module = "quanta._core")]
pub struct PyIndexPQFastScan {
    pub inner: IndexPQFastScan,
}

#[pymethods]
impl PyIndexPQFastScan {
    #[new]
    #[pyo3(signature = (d, M, nbits=4, metric="l2"))]
    #[allow(non_snake_case)]
    fn new(d: i64, M: i64, nbits: i64, metric: &str) -> PyResult<Self> {
        Ok(PyIndexPQFastScan {
            inner: IndexPQFastScan::new(
                nonneg(d, "d")?,
                nonneg(M, "M")?,
                nonneg(nbits, "nbits")?,
                Metric::parse(metric).py()?,
            )
            .py()?,
        })
    }

    /// Empty index around a copy of an existing 4-bit quantizer.
    #[staticmethod]
    #[pyo3(signature = (pq, metric="l2"))]
    fn from_pq(pq: &PyProductQuantizer, metric: &str) -> PyResult<Self> {
        Ok(PyIndexPQFastScan {
            inner: IndexPQFastScan::from_pq(pq.inner.clone(), Metric::parse(metric).py()?).py()?,
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
    #[getter]
    fn code_size(&self) -> usize {
        self.inner.code_size()
    }
    #[getter]
    fn is_trained(&self) -> bool {
        self.inner.is_trained()
    }
    /// Re-ranking factor used when `search` gets none; saved with the index.
    #[getter]
    fn k_factor(&self) -> usize {
        self.inner.k_factor
    }
    #[setter(k_factor)]
    fn set_k_factor(&mut self, v: i64) -> PyResult<()> {
        self.inner.k_factor = positive(v, "k_factor")?;
        Ok(())
    }

    /// A copy of the codec.
    #[getter]
    fn pq(&self) -> PyProductQuantizer {
        PyProductQuantizer {
            inner: self.inner.pq().clone(),
        }
    }

    #[pyo3(signature = (x, *, niter=25, seed=1234, init="random", max_points_per_centroid=256, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn train(
        &mut self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        niter: i64,
        seed: u64,
        init: &str,
        max_points_per_centroid: i64,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(Vec<f64>, Vec<String>)> {
        let d = self.inner.d();
        let inner = &mut self.inner;
        train_released(
            py,
            x,
            d,
            niter,
            seed,
            init,
            max_points_per_centroid,
            progress,
            |xs, p, ctl| inner.train(xs, p, ctl),
        )
    }

    fn add(&mut self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let x = f32_matrix(x, "x")?;
        check_dim(&x, self.inner.d(), "x")?;
        let xs = x.as_slice()?;
        let inner = &mut self.inner;
        run_released(py, None, |ctl| inner.add(xs, ctl))
    }

    /// Append unpacked codes `(n, M)` uint8, one 4-bit sub-code per byte.
    fn add_codes(&mut self, py: Python<'_>, codes: &Bound<'_, PyAny>) -> PyResult<()> {
        let c = u8_matrix(codes, "codes")?;
        let m = self.inner.pq().m();
        if c.shape()[1] != m {
            return Err(new_err(
                Kind::Shape,
                format!("codes has {} columns, expected M={m}", c.shape()[1]),
            ));
        }
        let s = c.as_slice()?;
        let inner = &mut self.inner;
        run_released(py, None, |_| inner.add_codes(s))
    }

    /// Stored codes unpacked to `(ntotal, M)` uint8 (a copy).
    fn codes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<u8>>> {
        matrix_u8(
            py,
            self.inner.codes(),
            self.inner.ntotal(),
            self.inner.pq().m(),
        )
    }

    #[pyo3(signature = (queries, k, k_factor=1, progress=None))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: i64,
        k_factor: i64,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<SearchOut<'py>> {
        let k = positive_k(k)?;
        let k_factor = positive(k_factor, "k_factor")?;
        let q = f32_matrix(queries, "queries")?;
        check_dim(&q, self.inner.d(), "queries")?;
        let nq = q.shape()[0];
        let qs = q.as_slice()?;
        let inner = &self.inner;
        let kf = k_factor;
        let (d, i) = run_released(py, progress, |ctl| inner.search(qs, k, kf, ctl))?;
        Ok((matrix_f32(py, d, nq, k)?, matrix_i64(py, i, nq, k)?))
    }

    fn reconstruct<'py>(
        &self,
        py: Python<'py>,
        id: i64,
    ) -> PyResult<Bound<'py, numpy::PyArray1<f32>>> {
        Ok(numpy::PyArray1::from_vec(
            py,
            self.inner.reconstruct(id).py()?,
        ))
    }

    fn reset(&mut self) {
        self.inner.reset()
    }

    /// Whether the blocks are still a view of a memory-mapped file.
    #[getter]
    fn is_mapped(&self) -> bool {
        self.inner.is_mapped()
    }

    /// Save to `path` (atomic: temporary file, fsync, rename).
    fn write(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let inner = &self.inner;
        run_released(py, None, |_| inner.write(&path))
    }

    /// Load from `path`; with `mmap`, the blocks are a view of the mapped file until modified.
    #[staticmethod]
    #[pyo3(signature = (path, mmap=false))]
    fn read(py: Python<'_>, path: PathBuf, mmap: bool) -> PyResult<Self> {
        let inner = run_released(py, None, |_| IndexPQFastScan::read(&path, mmap))?;
        Ok(PyIndexPQFastScan { inner })
    }

    fn __len__(&self) -> usize {
        self.inner.ntotal()
    }
}
