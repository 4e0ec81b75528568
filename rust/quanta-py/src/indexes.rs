//! Per-index classes of the flat family and the table that gives every core index its Python
//! class. Each class extends `Index` (`base.rs`) and adds only its constructor and getters.
//!
//! Adding an index type: a unit struct `#[pyclass(extends = PyIndex)]` with a `#[new]`
//! returning `(Self, PyIndex)`, one line in [`wrap_subclass`], one `add_class` in `lib.rs`.

pub use crate::base::positive;
use crate::base::PyIndex;
use crate::composite::{PyIndexPreTransform, PyIndexRefineFlat};
use crate::errors::CoreResultExt;
use pyo3::prelude::*;
use pyo3::PyClassInitializer;
use quanta_core::index::{IndexFlat, IndexIDMap, IndexPreTransform, IndexRefineFlat};
use quanta_core::io::Persist;
use quanta_core::ivf::{IndexIVFFlat, IndexIVFPQ, IndexIVFPQFastScan, IndexIVFRaBitQ};
use quanta_core::Metric;

/// `d` as a dimension `>= 1`.
pub fn dim(d: i64) -> PyResult<usize> {
    positive(d, "d")
}

/// The Python object of `base`'s core index: an instance of the subclass of its kind (the bare
/// base class for a kind without one).
pub fn wrap_subclass(py: Python<'_>, base: PyIndex) -> PyResult<Py<PyAny>> {
    let kind = base.inner.kind();
    let init = PyClassInitializer::from(base);
    macro_rules! table {
        ($($core:ty => $py:expr),* $(,)?) => {
            $(if kind == <$core as Persist>::KIND {
                return Ok(Py::new(py, init.add_subclass($py))?.into_any());
            })*
        };
    }
    table! {
        IndexFlat => PyIndexFlat,
        IndexIDMap => PyIndexIDMap,
        IndexPreTransform => PyIndexPreTransform,
        IndexRefineFlat => PyIndexRefineFlat,
        quanta_core::index::IndexPQ => crate::pq::PyIndexPQ,
        quanta_core::index::IndexPQFastScan => crate::fastscan::PyIndexPQFastScan,
        quanta_core::index::IndexRaBitQ => crate::rabitq::PyIndexRaBitQ,
        quanta_core::index::IndexScalarQuantizer => crate::sq::PyIndexScalarQuantizer,
        quanta_core::lattice::IndexLattice => crate::lattice::PyIndexLattice,
        IndexIVFFlat => crate::ivf::PyIndexIVFFlat,
        IndexIVFPQ => crate::ivf::PyIndexIVFPQ,
        IndexIVFPQFastScan => crate::ivf::PyIndexIVFPQFastScan,
        IndexIVFRaBitQ => crate::ivf::PyIndexIVFRaBitQ,
        quanta_core::ivf::IndexIVFScalarQuantizer => crate::ivf::PyIndexIVFScalarQuantizer,
    }
    Ok(Py::new(py, init)?.into_any())
}

/// Exact search over stored float vectors (faiss IndexFlatL2 / IndexFlatIP).
#[pyclass(extends = PyIndex, name = "IndexFlat", module = "quanta._core")]
pub struct PyIndexFlat;

#[pymethods]
impl PyIndexFlat {
    #[new]
    #[pyo3(signature = (d, metric="l2"))]
    fn new(d: i64, metric: &str) -> PyResult<(Self, PyIndex)> {
        let inner = IndexFlat::new(dim(d)?, Metric::parse(metric).py()?).py()?;
        Ok((
            PyIndexFlat,
            PyIndex {
                inner: Box::new(inner),
            },
        ))
    }
}

/// Explicit int64 ids over an index that numbers its vectors by position (faiss IndexIDMap2).
#[pyclass(extends = PyIndex, name = "IndexIDMap", module = "quanta._core")]
pub struct PyIndexIDMap;

#[pymethods]
impl PyIndexIDMap {
    /// Wraps a copy of `index` (which must be empty).
    #[new]
    fn new(index: PyRef<'_, PyIndex>) -> PyResult<(Self, PyIndex)> {
        let inner = IndexIDMap::new(index.inner.clone_box()).py()?;
        Ok((
            PyIndexIDMap,
            PyIndex {
                inner: Box::new(inner),
            },
        ))
    }

    /// A copy of the wrapped index.
    #[getter]
    fn index(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let m = slf.as_super().concrete::<IndexIDMap>()?;
        crate::base::wrap(py, m.inner().clone_box())
    }

    /// Ids of the stored vectors, in insertion order.
    #[getter]
    fn id_map<'py>(
        slf: PyRef<'py, Self>,
        py: Python<'py>,
    ) -> PyResult<Bound<'py, numpy::PyArray1<i64>>> {
        let m = slf.as_super().concrete::<IndexIDMap>()?;
        Ok(numpy::PyArray1::from_vec(py, m.ids().to_vec()))
    }
}
