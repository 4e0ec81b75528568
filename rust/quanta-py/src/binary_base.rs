//! `quanta._core.IndexBinary`: the base class of every binary index, holding the core index as
//! an `AnyBinaryIndex` and carrying the methods the `BinaryIndex` trait shares once; per-index
//! classes (`#[pyclass(extends = PyIndexBinary)]`) add their constructors and own getters.

use crate::arrays::{check_code_size, i64_vector, matrix_i32, matrix_i64, matrix_u8, u8_matrix};
use crate::base::{positive, selector};
use crate::binary::PyIndexBinaryFlat;
use crate::errors::{new_err, CoreResultExt, Kind};
use crate::gil::run_released;
use numpy::{PyArray1, PyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::PyClassInitializer;
use quanta_core::index::{AnyBinaryIndex, BinaryIndex, IndexBinaryFlat, SearchParams};
use quanta_core::io::Persist;

/// (distances (nq, k) int32, ids (nq, k) int64).
type BinarySearchOut<'py> = (Bound<'py, PyArray2<i32>>, Bound<'py, PyArray2<i64>>);
/// (lims (nq + 1,) int64, distances int32, ids int64).
type RangeOut<'py> = crate::base::RangeArrays<'py, i32>;

/// Base class of every binary index: the shared protocol, implemented once.
#[pyclass(subclass, name = "IndexBinary", module = "quanta._core")]
pub struct PyIndexBinary {
    pub inner: AnyBinaryIndex,
}

impl PyIndexBinary {
    /// The concrete core index of a subclass.
    pub fn concrete<T: BinaryIndex>(&self) -> PyResult<&T> {
        self.inner.downcast_ref::<T>().ok_or_else(|| {
            new_err(
                Kind::DType,
                format!("unexpected core index {}", self.inner.kind()),
            )
        })
    }

    fn codes<'py>(
        &self,
        x: &Bound<'py, PyAny>,
        arg: &str,
    ) -> PyResult<numpy::PyReadonlyArray2<'py, u8>> {
        let c = u8_matrix(x, arg)?;
        check_code_size(&c, self.inner.code_size(), arg)?;
        Ok(c)
    }
}

fn params(
    filter_ids: Option<&Bound<'_, PyAny>>,
    filter_mask: Option<&Bound<'_, PyAny>>,
    deny: bool,
) -> PyResult<SearchParams> {
    Ok(SearchParams::with_selector(selector(
        filter_ids,
        filter_mask,
        deny,
    )?))
}

#[pymethods]
impl PyIndexBinary {
    #[getter]
    fn nbits(&self) -> usize {
        self.inner.nbits()
    }
    #[getter]
    fn code_size(&self) -> usize {
        self.inner.code_size()
    }
    fn add(&mut self, py: Python<'_>, codes: &Bound<'_, PyAny>) -> PyResult<()> {
        let c = self.codes(codes, "codes")?;
        let cs = c.as_slice()?;
        let inner = &mut self.inner;
        run_released(py, None, |ctl| inner.add(cs, ctl))
    }

    fn add_with_ids(
        &mut self,
        py: Python<'_>,
        codes: &Bound<'_, PyAny>,
        ids: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let c = self.codes(codes, "codes")?;
        let i = i64_vector(ids, "ids")?;
        let (cs, is) = (c.as_slice()?, i.as_slice()?);
        let inner = &mut self.inner;
        run_released(py, None, |ctl| inner.add_with_ids(cs, is, ctl))
    }

    #[pyo3(signature = (queries, k, *, filter_ids=None, filter_mask=None, deny=false, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: i64,
        filter_ids: Option<&Bound<'py, PyAny>>,
        filter_mask: Option<&Bound<'py, PyAny>>,
        deny: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<BinarySearchOut<'py>> {
        let k = positive(k, "k")?;
        let p = params(filter_ids, filter_mask, deny)?;
        let q = self.codes(queries, "queries")?;
        let nq = q.shape()[0];
        let qs = q.as_slice()?;
        let inner = &self.inner;
        let (d, i) = run_released(py, progress, |ctl| inner.search(qs, k, &p, ctl))?;
        Ok((matrix_i32(py, d, nq, k)?, matrix_i64(py, i, nq, k)?))
    }

    #[pyo3(signature = (queries, radius, *, filter_ids=None, filter_mask=None, deny=false, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn range_search<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        radius: i64,
        filter_ids: Option<&Bound<'py, PyAny>>,
        filter_mask: Option<&Bound<'py, PyAny>>,
        deny: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<RangeOut<'py>> {
        if radius < 0 {
            return Err(new_err(
                Kind::Value,
                format!("radius must be >= 0, got {radius}"),
            ));
        }
        let p = params(filter_ids, filter_mask, deny)?;
        let q = self.codes(queries, "queries")?;
        let qs = q.as_slice()?;
        let inner = &self.inner;
        let r = run_released(py, progress, |ctl| {
            inner.range_search(qs, radius as usize, &p, ctl)
        })?;
        Ok(crate::base::range_arrays(py, r.lims, r.dist, r.ids))
    }

    /// The stored code with id `id`.
    fn reconstruct<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyArray1<u8>>> {
        Ok(PyArray1::from_vec(py, self.inner.reconstruct(id).py()?))
    }
}

crate::shared::shared_index_methods!(PyIndexBinary, wrap_binary);

/// Stored codes `(ntotal, code_size)` of a flat binary index, in storage order.
pub fn stored_codes<'py>(
    py: Python<'py>,
    idx: &IndexBinaryFlat,
) -> PyResult<Bound<'py, PyArray2<u8>>> {
    matrix_u8(py, idx.codes().to_vec(), idx.ntotal(), idx.code_size())
}

/// The Python object of a core binary index: an instance of its own subclass.
pub fn wrap_binary(py: Python<'_>, inner: AnyBinaryIndex) -> PyResult<Py<PyAny>> {
    let kind = inner.kind();
    let init = PyClassInitializer::from(PyIndexBinary { inner });
    if kind == IndexBinaryFlat::KIND {
        return Ok(Py::new(py, init.add_subclass(PyIndexBinaryFlat))?.into_any());
    }
    Ok(Py::new(py, init)?.into_any())
}
