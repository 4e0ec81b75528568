//! Composite indexes: `IndexPreTransform` (OPQ rotation + index) and `IndexRefineFlat` (exact
//! re-ranking of a base index). Both hold a copy of the index they are built from; the shared
//! methods come from `Index` (`base.rs`).

use crate::base::{positive, wrap, PyIndex};
use crate::errors::CoreResultExt;
use crate::pq::PyOpqMatrix;
use pyo3::prelude::*;
use quanta_core::index::{IndexPreTransform, IndexRefineFlat};

/// An index over OPQ-rotated vectors (faiss IndexPreTransform).
#[pyclass(extends = PyIndex, name = "IndexPreTransform", module = "quanta._core")]
pub struct PyIndexPreTransform;

#[pymethods]
impl PyIndexPreTransform {
    /// Wraps copies of `transform` and `index` (of dimension `transform.d_out`).
    #[new]
    fn new(
        transform: PyRef<'_, PyOpqMatrix>,
        index: PyRef<'_, PyIndex>,
    ) -> PyResult<(Self, PyIndex)> {
        let inner =
            IndexPreTransform::new(transform.inner.clone(), index.inner.clone_box()).py()?;
        Ok((
            PyIndexPreTransform,
            PyIndex {
                inner: Box::new(inner),
            },
        ))
    }

    /// A copy of the transform.
    #[getter]
    fn transform(slf: PyRef<'_, Self>) -> PyResult<PyOpqMatrix> {
        let m = slf.as_super().concrete::<IndexPreTransform>()?;
        Ok(PyOpqMatrix {
            inner: m.transform().clone(),
        })
    }

    /// A copy of the wrapped index.
    #[getter]
    fn index(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let m = slf.as_super().concrete::<IndexPreTransform>()?;
        wrap(py, m.inner().clone_box())
    }
}

/// Exact re-ranking of a base index's candidates (faiss IndexRefineFlat).
#[pyclass(extends = PyIndex, name = "IndexRefineFlat", module = "quanta._core")]
pub struct PyIndexRefineFlat;

#[pymethods]
impl PyIndexRefineFlat {
    /// Wraps a copy of `base_index` (which must be empty).
    #[new]
    #[pyo3(signature = (base_index, k_factor=1))]
    fn new(base_index: PyRef<'_, PyIndex>, k_factor: i64) -> PyResult<(Self, PyIndex)> {
        let kf = positive(k_factor, "k_factor")?;
        let inner = IndexRefineFlat::new(base_index.inner.clone_box(), kf).py()?;
        Ok((
            PyIndexRefineFlat,
            PyIndex {
                inner: Box::new(inner),
            },
        ))
    }

    /// A copy of the base index.
    #[getter]
    fn base_index(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let m = slf.as_super().concrete::<IndexRefineFlat>()?;
        wrap(py, m.base().clone_box())
    }

    /// Candidates per result asked from the base index (the default of `k_factor=`).
    #[getter]
    fn k_factor(slf: PyRef<'_, Self>) -> PyResult<usize> {
        Ok(slf.as_super().concrete::<IndexRefineFlat>()?.k_factor())
    }

    #[setter]
    fn set_k_factor(mut slf: PyRefMut<'_, Self>, value: i64) -> PyResult<()> {
        let kf = positive(value, "k_factor")?;
        slf.as_super()
            .concrete_mut::<IndexRefineFlat>()?
            .set_k_factor(kf)
            .py()
    }
}
