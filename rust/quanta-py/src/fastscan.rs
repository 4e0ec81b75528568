//! Fast-scan bindings: `IndexPQFastScan` (4-bit PQ, packed blocks, shuffle kernels), an `Index`
//! subclass.

use crate::arrays::{matrix_u8, u8_matrix};
use crate::base::{positive, PyIndex};
use crate::errors::{new_err, CoreResultExt, Kind};
use crate::gil::run_released;
use crate::pq::{nonneg, train_released, PyProductQuantizer};
use numpy::{PyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use quanta_core::index::IndexPQFastScan;
use quanta_core::Metric;

/// 4-bit PQ index scanned with in-register table shuffles (faiss `IndexPQFastScan`).
#[pyclass(extends = PyIndex, name = "IndexPQFastScan", module = "quanta._core")]
pub struct PyIndexPQFastScan;

fn fs_base(inner: IndexPQFastScan) -> PyIndex {
    PyIndex {
        inner: Box::new(inner),
    }
}

#[pymethods]
impl PyIndexPQFastScan {
    #[new]
    #[pyo3(signature = (d, M, nbits=4, metric="l2"))]
    #[allow(non_snake_case)]
    fn new(d: i64, M: i64, nbits: i64, metric: &str) -> PyResult<(Self, PyIndex)> {
        let inner = IndexPQFastScan::new(
            nonneg(d, "d")?,
            nonneg(M, "M")?,
            nonneg(nbits, "nbits")?,
            Metric::parse(metric).py()?,
        )
        .py()?;
        Ok((PyIndexPQFastScan, fs_base(inner)))
    }

    /// Empty index around a copy of an existing 4-bit quantizer.
    #[staticmethod]
    #[pyo3(signature = (pq, metric="l2"))]
    fn from_pq(py: Python<'_>, pq: &PyProductQuantizer, metric: &str) -> PyResult<Py<PyAny>> {
        let inner = IndexPQFastScan::from_pq(pq.inner.clone(), Metric::parse(metric).py()?).py()?;
        crate::base::wrap(py, Box::new(inner))
    }

    #[getter(M)]
    fn m(slf: PyRef<'_, Self>) -> PyResult<usize> {
        Ok(slf.as_super().concrete::<IndexPQFastScan>()?.pq().m())
    }
    #[getter]
    fn nbits(slf: PyRef<'_, Self>) -> PyResult<usize> {
        Ok(slf.as_super().concrete::<IndexPQFastScan>()?.pq().nbits())
    }
    #[getter]
    fn code_size(slf: PyRef<'_, Self>) -> PyResult<usize> {
        Ok(slf.as_super().concrete::<IndexPQFastScan>()?.code_size())
    }

    /// Re-ranking factor used when `search` gets none; saved with the index.
    #[getter]
    fn k_factor(slf: PyRef<'_, Self>) -> PyResult<usize> {
        Ok(slf.as_super().concrete::<IndexPQFastScan>()?.k_factor)
    }
    #[setter(k_factor)]
    fn set_k_factor(mut slf: PyRefMut<'_, Self>, v: i64) -> PyResult<()> {
        let v = positive(v, "k_factor")?;
        slf.as_super().concrete_mut::<IndexPQFastScan>()?.k_factor = v;
        Ok(())
    }

    /// A copy of the codec.
    #[getter]
    fn pq(slf: PyRef<'_, Self>) -> PyResult<PyProductQuantizer> {
        Ok(PyProductQuantizer {
            inner: slf.as_super().concrete::<IndexPQFastScan>()?.pq().clone(),
        })
    }

    /// Train the quantizer with explicit settings; returns the warnings.
    #[pyo3(signature = (x, progress=None, *, niter=25, seed=1234, init="random", max_points_per_centroid=256))]
    #[allow(clippy::too_many_arguments)]
    fn train(
        mut slf: PyRefMut<'_, Self>,
        x: &Bound<'_, PyAny>,
        progress: Option<Py<PyAny>>,
        niter: i64,
        seed: u64,
        init: &str,
        max_points_per_centroid: i64,
    ) -> PyResult<Vec<String>> {
        let py = slf.py();
        let inner = slf.as_super().concrete_mut::<IndexPQFastScan>()?;
        let d = inner.d();
        let (_, warnings) = train_released(
            py,
            x,
            d,
            niter,
            seed,
            init,
            max_points_per_centroid,
            progress,
            |xs, p, ctl| inner.train(xs, p, ctl),
        )?;
        Ok(warnings)
    }

    /// Append unpacked codes `(n, M)` uint8, one 4-bit sub-code per byte.
    fn add_codes(mut slf: PyRefMut<'_, Self>, codes: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let inner = slf.as_super().concrete_mut::<IndexPQFastScan>()?;
        let c = u8_matrix(codes, "codes")?;
        let m = inner.pq().m();
        if c.shape()[1] != m {
            return Err(new_err(
                Kind::Shape,
                format!("codes has {} columns, expected M={m}", c.shape()[1]),
            ));
        }
        let s = c.as_slice()?;
        run_released(py, None, |_| inner.add_codes(s))
    }

    /// Stored codes unpacked to `(ntotal, M)` uint8 (a copy).
    fn codes<'py>(slf: PyRef<'py, Self>, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<u8>>> {
        let inner = slf.as_super().concrete::<IndexPQFastScan>()?;
        matrix_u8(py, inner.codes(), inner.ntotal(), inner.pq().m())
    }
}
