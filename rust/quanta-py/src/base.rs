//! `quanta._core.Index`: the one base class of every float-vector index. It holds the core
//! index as an `AnyIndex` and carries every method the `Index` trait shares; the per-index
//! classes (`#[pyclass(extends = PyIndex)]`) add only their constructors and own getters.

use crate::arrays::{check_dim, f32_matrix, i64_vector, matrix_f32, matrix_i64};
use crate::errors::{new_err, CoreResultExt, Kind};
use crate::gil::run_released;
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::prelude::*;
use quanta_core::index::{
    read_index_file, AnyIndex, IdSelector, IdSet, Index, LoadedIndex, SearchParams,
};
use quanta_core::pq::SearchMode;
use std::path::PathBuf;

/// Result of a search: (distances (nq, k) float32, ids (nq, k) int64).
pub type SearchOut<'py> = (Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<i64>>);

/// Result of a range search: (lims (nq + 1,) int64, distances, ids int64).
pub type RangeArrays<'py, T> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<T>>,
    Bound<'py, PyArray1<i64>>,
);

/// [`RangeArrays`] of a float index.
pub type RangeOut<'py> = RangeArrays<'py, f32>;

/// `v` as a count `>= 1`, or a ValueError naming `arg`.
pub fn positive(v: i64, arg: &str) -> PyResult<usize> {
    if v < 1 {
        return Err(new_err(Kind::Value, format!("{arg} must be >= 1, got {v}")));
    }
    Ok(v as usize)
}

fn bool_vector<'py>(obj: &Bound<'py, PyAny>, arg: &str) -> PyResult<PyReadonlyArray1<'py, bool>> {
    let arr = obj
        .downcast::<PyArray1<bool>>()
        .map_err(|_| new_err(Kind::DType, format!("{arg} must be a 1-D bool numpy array")))?;
    let ro = arr.try_readonly()?;
    if !ro.is_c_contiguous() {
        return Err(new_err(Kind::Shape, format!("{arg} must be C-contiguous")));
    }
    Ok(ro)
}

/// A selector from `ids` (int64) or `mask` (bool, indexed by id), allowing or denying them.
pub fn selector(
    ids: Option<&Bound<'_, PyAny>>,
    mask: Option<&Bound<'_, PyAny>>,
    deny: bool,
) -> PyResult<Option<IdSelector>> {
    let set = match (ids, mask) {
        (Some(_), Some(_)) => {
            return Err(new_err(
                Kind::Value,
                "give the filter as ids or as a mask, not both",
            ))
        }
        (Some(i), None) => IdSet::from_ids(i64_vector(i, "filter ids")?.as_slice()?),
        (None, Some(m)) => IdSet::from_mask(bool_vector(m, "filter mask")?.as_slice()?),
        (None, None) => return Ok(None),
    };
    Ok(Some(if deny {
        IdSelector::Deny(set)
    } else {
        IdSelector::Allow(set)
    }))
}

/// A range-search result as numpy arrays `(lims int64, distances, ids int64)`, faiss layout.
pub fn range_arrays<T: numpy::Element>(
    py: Python<'_>,
    lims: Vec<usize>,
    dist: Vec<T>,
    ids: Vec<i64>,
) -> RangeArrays<'_, T> {
    let lims: Vec<i64> = lims.into_iter().map(|v| v as i64).collect();
    (
        PyArray1::from_vec(py, lims),
        PyArray1::from_vec(py, dist),
        PyArray1::from_vec(py, ids),
    )
}

/// Search parameters from the keyword arguments every `search` / `range_search` takes.
#[allow(clippy::too_many_arguments)]
fn params(
    nprobe: Option<i64>,
    k_factor: Option<i64>,
    mode: Option<&str>,
    bias_correction: Option<bool>,
    filter_ids: Option<&Bound<'_, PyAny>>,
    filter_mask: Option<&Bound<'_, PyAny>>,
    deny: bool,
) -> PyResult<SearchParams> {
    Ok(SearchParams {
        nprobe: nprobe.map(|v| positive(v, "nprobe")).transpose()?,
        k_factor: k_factor.map(|v| positive(v, "k_factor")).transpose()?,
        mode: mode.map(|m| SearchMode::parse(m).py()).transpose()?,
        bias_correction,
        selector: selector(filter_ids, filter_mask, deny)?,
    })
}

/// Base class of every float-vector index: the shared protocol, implemented once.
#[pyclass(subclass, name = "Index", module = "quanta._core")]
pub struct PyIndex {
    pub inner: AnyIndex,
}

impl PyIndex {
    /// The concrete core index of a subclass (a `TypeError` if the base holds another type,
    /// which only a hand-built object could cause).
    pub fn concrete<T: Index>(&self) -> PyResult<&T> {
        self.inner
            .downcast_ref::<T>()
            .ok_or_else(|| self.mismatch())
    }

    /// Mutable form of [`PyIndex::concrete`].
    pub fn concrete_mut<T: Index>(&mut self) -> PyResult<&mut T> {
        let kind = self.inner.kind();
        self.inner
            .downcast_mut::<T>()
            .ok_or_else(|| new_err(Kind::DType, format!("unexpected core index {kind}")))
    }

    fn mismatch(&self) -> PyErr {
        new_err(
            Kind::DType,
            format!("unexpected core index {}", self.inner.kind()),
        )
    }

    fn matrix<'py>(
        &self,
        x: &Bound<'py, PyAny>,
        arg: &str,
    ) -> PyResult<numpy::PyReadonlyArray2<'py, f32>> {
        let m = f32_matrix(x, arg)?;
        check_dim(&m, self.inner.d(), arg)?;
        Ok(m)
    }
}

#[pymethods]
impl PyIndex {
    #[getter]
    fn d(&self) -> usize {
        self.inner.d()
    }

    #[getter]
    fn metric(&self) -> &'static str {
        self.inner.metric().name()
    }

    /// Whether some data is still a view of a memory-mapped file.
    #[getter]
    fn is_mapped(&self) -> bool {
        self.inner.is_mapped()
    }

    /// Whether the index keeps the caller's ids (`add_with_ids`, `remove_ids` by id).
    #[getter]
    fn stores_ids(&self) -> bool {
        self.inner.stores_ids()
    }

    /// Train with the index's default settings; returns warnings.
    #[pyo3(signature = (x, progress=None))]
    fn train(
        &mut self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<String>> {
        let x = self.matrix(x, "x")?;
        let xs = x.as_slice()?;
        let inner = &mut self.inner;
        run_released(py, progress, |ctl| inner.train(xs, ctl))
    }

    #[pyo3(signature = (x, progress=None))]
    fn add(
        &mut self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let x = self.matrix(x, "x")?;
        let xs = x.as_slice()?;
        let inner = &mut self.inner;
        run_released(py, progress, |ctl| inner.add(xs, ctl))
    }

    #[pyo3(signature = (x, ids, progress=None))]
    fn add_with_ids(
        &mut self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        ids: &Bound<'_, PyAny>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let x = self.matrix(x, "x")?;
        let ids = i64_vector(ids, "ids")?;
        let (xs, is) = (x.as_slice()?, ids.as_slice()?);
        let inner = &mut self.inner;
        run_released(py, progress, |ctl| inner.add_with_ids(xs, is, ctl))
    }

    #[pyo3(signature = (queries, k, *, nprobe=None, k_factor=None, mode=None,
        bias_correction=None, filter_ids=None, filter_mask=None, deny=false, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: i64,
        nprobe: Option<i64>,
        k_factor: Option<i64>,
        mode: Option<&str>,
        bias_correction: Option<bool>,
        filter_ids: Option<&Bound<'py, PyAny>>,
        filter_mask: Option<&Bound<'py, PyAny>>,
        deny: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<SearchOut<'py>> {
        let k = positive(k, "k")?;
        let p = params(
            nprobe,
            k_factor,
            mode,
            bias_correction,
            filter_ids,
            filter_mask,
            deny,
        )?;
        let q = self.matrix(queries, "queries")?;
        let nq = q.shape()[0];
        let qs = q.as_slice()?;
        let inner = &self.inner;
        let (d, i) = run_released(py, progress, |ctl| inner.search(qs, k, &p, ctl))?;
        Ok((matrix_f32(py, d, nq, k)?, matrix_i64(py, i, nq, k)?))
    }

    #[pyo3(signature = (queries, radius, *, nprobe=None, k_factor=None, mode=None,
        bias_correction=None, filter_ids=None, filter_mask=None, deny=false, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn range_search<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        radius: f32,
        nprobe: Option<i64>,
        k_factor: Option<i64>,
        mode: Option<&str>,
        bias_correction: Option<bool>,
        filter_ids: Option<&Bound<'py, PyAny>>,
        filter_mask: Option<&Bound<'py, PyAny>>,
        deny: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<RangeOut<'py>> {
        let p = params(
            nprobe,
            k_factor,
            mode,
            bias_correction,
            filter_ids,
            filter_mask,
            deny,
        )?;
        let q = self.matrix(queries, "queries")?;
        let qs = q.as_slice()?;
        let inner = &self.inner;
        let r = run_released(py, progress, |ctl| inner.range_search(qs, radius, &p, ctl))?;
        Ok(crate::base::range_arrays(py, r.lims, r.dist, r.ids))
    }

    /// Copy every entry of `other` (same kind, same trained parameters) into this index.
    fn merge_from(&mut self, other: PyRef<'_, PyIndex>) -> PyResult<()> {
        self.inner.merge_from(&*other.inner).py()
    }

    fn reconstruct<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyArray1<f32>>> {
        Ok(PyArray1::from_vec(py, self.inner.reconstruct(id).py()?))
    }

    /// Vectors of ids `i0 .. i0 + n` as an (n, d) array.
    fn reconstruct_n<'py>(
        &self,
        py: Python<'py>,
        i0: i64,
        n: i64,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        if i0 < 0 || n < 0 {
            return Err(new_err(
                Kind::Value,
                format!("i0={i0} and n={n} must be >= 0"),
            ));
        }
        let d = self.inner.d();
        let mut out = Vec::with_capacity(n as usize * d);
        for id in i0..i0 + n {
            out.extend(self.inner.reconstruct(id).py()?);
        }
        matrix_f32(py, out, n as usize, d)
    }
}

crate::shared::shared_index_methods!(PyIndex, wrap);

/// Load any index file (float or binary; quanta's format or faiss's) from `path`, as the
/// class that wrote it. faiss files are read into memory (`mmap` applies to quanta files).
#[pyfunction]
#[pyo3(signature = (path, mmap=false))]
pub fn read_index(py: Python<'_>, path: PathBuf, mmap: bool) -> PyResult<Py<PyAny>> {
    let loaded = run_released(py, None, |_| {
        if quanta_core::io::faiss::is_faiss_file(&path) {
            return quanta_core::io::faiss::read_faiss_file(&path);
        }
        read_index_file(&quanta_core::io::FileReader::open(&path, mmap)?)
    })?;
    wrap_loaded(py, loaded)
}

/// Load an index from the bytes of `Index.serialize()` (or of a faiss index file).
#[pyfunction]
pub fn deserialize_index(py: Python<'_>, data: &[u8]) -> PyResult<Py<PyAny>> {
    let loaded = run_released(py, None, |_| {
        if quanta_core::io::faiss::is_faiss(data) {
            return quanta_core::io::faiss::read_faiss_bytes(data, "<bytes>");
        }
        read_index_file(&quanta_core::io::FileReader::from_bytes(data)?)
    })?;
    wrap_loaded(py, loaded)
}

/// The Python object of a loaded index of either family (float or binary).
fn wrap_loaded(py: Python<'_>, loaded: LoadedIndex) -> PyResult<Py<PyAny>> {
    match loaded {
        LoadedIndex::Float(inner) => wrap(py, inner),
        LoadedIndex::Binary(inner) => crate::binary_base::wrap_binary(py, inner),
    }
}

/// The Python object of a core index: an instance of its own subclass.
pub fn wrap(py: Python<'_>, inner: AnyIndex) -> PyResult<Py<PyAny>> {
    crate::indexes::wrap_subclass(py, PyIndex { inner })
}
