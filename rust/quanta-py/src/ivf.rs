//! Inverted-file bindings: `IndexIVFFlat` and `IndexIVFPQ`. Conversion only.

use crate::arrays::{check_dim, f32_matrix, i64_vector, matrix_f32, matrix_i64};
use crate::errors::{new_err, CoreResultExt, Kind};
use crate::gil::run_released;
use crate::indexes::{positive, positive_k, SearchOut};
use crate::pq::PyProductQuantizer;
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::prelude::*;
use quanta_core::io::Persist;
use quanta_core::ivf::{
    IdSelector, IdSet, IndexIVFFlat, IndexIVFPQ, IndexIVFPQFastScan, IvfTrainParams,
};
use quanta_core::pq::{PqTrainParams, ProductQuantizer};
use quanta_core::Metric;
use std::path::PathBuf;

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

/// The selector of a search: `ids` (int64) or `mask` (bool, indexed by id), allow or deny.
fn selector(
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

fn coarse_params(niter: i64, seed: u64) -> PyResult<IvfTrainParams> {
    Ok(IvfTrainParams {
        niter: positive(niter, "niter")?,
        seed,
        ..Default::default()
    })
}

/// Residual-PQ training parameters of both IVFPQ classes.
fn pq_params(niter: i64, seed: u64, max_points_per_centroid: i64) -> PyResult<PqTrainParams> {
    Ok(PqTrainParams {
        niter: positive(niter, "pq_niter")?,
        seed,
        max_points_per_centroid: positive(max_points_per_centroid, "max_points_per_centroid")?,
        ..Default::default()
    })
}

/// Methods both IVF classes share (one `#[pymethods]` block per class).
macro_rules! ivf_class {
    ($py:ident, $core:ty, $($extra:tt)*) => {
        #[pymethods]
        impl $py {
            #[getter]
            fn d(&self) -> usize {
                self.inner.d()
            }
            #[getter]
            fn nlist(&self) -> usize {
                self.inner.nlist()
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
            fn is_trained(&self) -> bool {
                self.inner.is_trained()
            }
            #[getter]
            fn is_mapped(&self) -> bool {
                self.inner.is_mapped()
            }
            fn __len__(&self) -> usize {
                self.inner.ntotal()
            }

            /// Coarse centroids `(nlist, d)` (a copy; 0 rows before training).
            #[getter]
            fn centroids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
                let c = self.inner.centroids();
                matrix_f32(py, c.to_vec(), c.len() / self.inner.d(), self.inner.d())
            }

            fn add(&mut self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
                let x = f32_matrix(x, "x")?;
                check_dim(&x, self.inner.d(), "x")?;
                let xs = x.as_slice()?;
                let inner = &mut self.inner;
                run_released(py, None, |ctl| inner.add(xs, ctl))
            }

            fn add_with_ids(
                &mut self,
                py: Python<'_>,
                x: &Bound<'_, PyAny>,
                ids: &Bound<'_, PyAny>,
            ) -> PyResult<()> {
                let x = f32_matrix(x, "x")?;
                check_dim(&x, self.inner.d(), "x")?;
                let ids = i64_vector(ids, "ids")?;
                let (xs, is) = (x.as_slice()?, ids.as_slice()?);
                let inner = &mut self.inner;
                run_released(py, None, |ctl| inner.add_with_ids(xs, is, ctl))
            }

            /// Remove every entry with one of `ids` (int64); returns how many were removed.
            fn remove_ids(&mut self, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<usize> {
                let ids = i64_vector(ids, "ids")?;
                let set = IdSet::from_ids(ids.as_slice()?);
                let inner = &mut self.inner;
                run_released(py, None, |_| Ok(inner.remove_ids(&set)))
            }

            fn reconstruct<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyArray1<f32>>> {
                Ok(PyArray1::from_vec(py, self.inner.reconstruct(id).py()?))
            }

            fn reset(&mut self) {
                self.inner.reset()
            }

            #[pyo3(signature = (queries, k, nprobe, filter_ids=None, filter_mask=None, deny=false, progress=None))]
            #[allow(clippy::too_many_arguments)]
            fn search<'py>(
                &self,
                py: Python<'py>,
                queries: &Bound<'py, PyAny>,
                k: i64,
                nprobe: i64,
                filter_ids: Option<&Bound<'py, PyAny>>,
                filter_mask: Option<&Bound<'py, PyAny>>,
                deny: bool,
                progress: Option<Py<PyAny>>,
            ) -> PyResult<SearchOut<'py>> {
                let k = positive_k(k)?;
                let nprobe = positive(nprobe, "nprobe")?;
                let sel = selector(filter_ids, filter_mask, deny)?;
                let q = f32_matrix(queries, "queries")?;
                check_dim(&q, self.inner.d(), "queries")?;
                let nq = q.shape()[0];
                let qs = q.as_slice()?;
                let inner = &self.inner;
                let (d, i) = run_released(py, progress, |ctl| {
                    inner.search(qs, k, nprobe, sel.as_ref(), ctl)
                })?;
                Ok((matrix_f32(py, d, nq, k)?, matrix_i64(py, i, nq, k)?))
            }

            /// Number of entries of every list, int64 `(nlist,)`.
            fn list_sizes<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
                let s: Vec<i64> = self.inner.invlists().sizes().iter().map(|&v| v as i64).collect();
                PyArray1::from_vec(py, s)
            }

            /// faiss `imbalance_factor` of the list sizes (1.0 = balanced).
            fn imbalance_factor(&self) -> f64 {
                self.inner.invlists().imbalance_factor()
            }

            /// Ids of list `l` (a copy).
            fn list_ids<'py>(&self, py: Python<'py>, l: i64) -> PyResult<Bound<'py, PyArray1<i64>>> {
                let l = self.list_index(l)?;
                Ok(PyArray1::from_vec(py, self.inner.invlists().ids(l).to_vec()))
            }

            /// Save to `path` (atomic).
            fn write(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
                let inner = &self.inner;
                run_released(py, None, |_| inner.write(&path))
            }

            /// Load from `path`; with `mmap`, each list stays a view of the mapped file until it
            /// is modified (copy-on-write per list).
            #[staticmethod]
            #[pyo3(signature = (path, mmap=false))]
            fn read(py: Python<'_>, path: PathBuf, mmap: bool) -> PyResult<Self> {
                let inner = run_released(py, None, |_| <$core>::read(&path, mmap))?;
                Ok(Self { inner })
            }

            $($extra)*
        }

        impl $py {
            fn list_index(&self, l: i64) -> PyResult<usize> {
                let n = self.inner.nlist() as i64;
                if l < 0 || l >= n {
                    return Err(new_err(
                        Kind::Value,
                        format!("list number {l} is out of range [0, {n})"),
                    ));
                }
                Ok(l as usize)
            }
        }
    };
}

/// Inverted file over raw vectors.
#[pyclass(name = "IndexIVFFlat", module = "quanta._core")]
pub struct PyIndexIVFFlat {
    inner: IndexIVFFlat,
}

ivf_class! {
    PyIndexIVFFlat,
    IndexIVFFlat,
    #[new]
    #[pyo3(signature = (d, nlist, metric="l2"))]
    fn new(d: i64, nlist: i64, metric: &str) -> PyResult<Self> {
        Ok(PyIndexIVFFlat {
            inner: IndexIVFFlat::new(
                positive(d, "d")?,
                positive(nlist, "nlist")?,
                Metric::parse(metric).py()?,
            )
            .py()?,
        })
    }
    /// Trained, empty index around coarse centroids `(nlist, d)`.
    #[staticmethod]
    #[pyo3(signature = (centroids, metric="l2"))]
    fn from_centroids(centroids: &Bound<'_, PyAny>, metric: &str) -> PyResult<Self> {
        let c = f32_matrix(centroids, "centroids")?;
        let d = c.shape()[1];
        Ok(PyIndexIVFFlat {
            inner: IndexIVFFlat::from_centroids(c.as_slice()?, d, Metric::parse(metric).py()?)
                .py()?,
        })
    }
    /// Train the coarse quantizer; returns the k-means warnings.
    #[pyo3(signature = (x, *, niter=10, seed=1234, progress=None))]
    fn train(
        &mut self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        niter: i64,
        seed: u64,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<String>> {
        let p = coarse_params(niter, seed)?;
        let x = f32_matrix(x, "x")?;
        check_dim(&x, self.inner.d(), "x")?;
        let xs = x.as_slice()?;
        let inner = &mut self.inner;
        run_released(py, progress, |ctl| inner.train(xs, &p, ctl))
    }
}

/// Inverted file with PQ-encoded residuals.
#[pyclass(name = "IndexIVFPQ", module = "quanta._core")]
pub struct PyIndexIVFPQ {
    inner: IndexIVFPQ,
}

ivf_class! {
    PyIndexIVFPQ,
    IndexIVFPQ,
    #[new]
    #[pyo3(signature = (d, nlist, M, nbits=8, metric="l2", by_residual=true))]
    #[allow(non_snake_case)]
    fn new(
        d: i64,
        nlist: i64,
        M: i64,
        nbits: i64,
        metric: &str,
        by_residual: bool,
    ) -> PyResult<Self> {
        Ok(PyIndexIVFPQ {
            inner: IndexIVFPQ::new(
                positive(d, "d")?,
                positive(nlist, "nlist")?,
                positive(M, "M")?,
                positive(nbits, "nbits")?,
                Metric::parse(metric).py()?,
                by_residual,
            )
            .py()?,
        })
    }
    /// Trained, empty index from coarse centroids `(nlist, d)` and a trained quantizer.
    #[staticmethod]
    #[pyo3(signature = (centroids, pq, metric="l2", by_residual=true))]
    fn from_parts(
        centroids: &Bound<'_, PyAny>,
        pq: &PyProductQuantizer,
        metric: &str,
        by_residual: bool,
    ) -> PyResult<Self> {
        let c = f32_matrix(centroids, "centroids")?;
        check_dim(&c, pq.inner.d(), "centroids")?;
        let nlist = c.shape()[0];
        let pq: ProductQuantizer = pq.inner.clone();
        Ok(PyIndexIVFPQ {
            inner: IndexIVFPQ::from_parts(
                c.as_slice()?,
                nlist,
                pq,
                Metric::parse(metric).py()?,
                by_residual,
            )
            .py()?,
        })
    }
    #[getter(M)]
    fn m(&self) -> usize {
        self.inner.pq().m()
    }
    #[getter]
    fn nbits(&self) -> usize {
        self.inner.pq().nbits()
    }
    #[getter]
    fn code_size(&self) -> usize {
        self.inner.code_size()
    }
    #[getter]
    fn by_residual(&self) -> bool {
        self.inner.by_residual()
    }
    /// A copy of the codec.
    #[getter]
    fn pq(&self) -> PyProductQuantizer {
        PyProductQuantizer {
            inner: self.inner.pq().clone(),
        }
    }
    /// Codes of list `l` `(size, code_size)` (a copy).
    fn list_codes<'py>(&self, py: Python<'py>, l: i64) -> PyResult<Bound<'py, PyArray2<u8>>> {
        let l = self.list_index(l)?;
        let il = self.inner.invlists();
        crate::arrays::matrix_u8(py, il.codes(l).to_vec(), il.list_len(l), il.code_len())
    }
    /// Train the coarse quantizer, then the PQ on residuals; returns the k-means warnings.
    #[pyo3(signature = (x, *, niter=10, seed=1234, pq_niter=25, pq_seed=1234, max_points_per_centroid=256, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn train(
        &mut self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        niter: i64,
        seed: u64,
        pq_niter: i64,
        pq_seed: u64,
        max_points_per_centroid: i64,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<String>> {
        let cp = coarse_params(niter, seed)?;
        let pp = pq_params(pq_niter, pq_seed, max_points_per_centroid)?;
        let x = f32_matrix(x, "x")?;
        check_dim(&x, self.inner.d(), "x")?;
        let xs = x.as_slice()?;
        let inner = &mut self.inner;
        run_released(py, progress, |ctl| inner.train(xs, &cp, &pp, ctl))
    }
}

/// IVFPQ with 4-bit codes scanned by the fast-scan kernel.
#[pyclass(name = "IndexIVFPQFastScan", module = "quanta._core")]
pub struct PyIndexIVFPQFastScan {
    inner: IndexIVFPQFastScan,
}

ivf_class! {
    PyIndexIVFPQFastScan,
    IndexIVFPQFastScan,
    #[new]
    #[pyo3(signature = (d, nlist, M, metric="l2", by_residual=true))]
    #[allow(non_snake_case)]
    fn new(d: i64, nlist: i64, M: i64, metric: &str, by_residual: bool) -> PyResult<Self> {
        Ok(PyIndexIVFPQFastScan {
            inner: IndexIVFPQFastScan::new(
                positive(d, "d")?,
                positive(nlist, "nlist")?,
                positive(M, "M")?,
                Metric::parse(metric).py()?,
                by_residual,
            )
            .py()?,
        })
    }

    /// Trained, empty index from coarse centroids `(nlist, d)` and a trained 4-bit quantizer.
    #[staticmethod]
    #[pyo3(signature = (centroids, pq, metric="l2", by_residual=true))]
    fn from_parts(
        centroids: &Bound<'_, PyAny>,
        pq: &PyProductQuantizer,
        metric: &str,
        by_residual: bool,
    ) -> PyResult<Self> {
        let c = f32_matrix(centroids, "centroids")?;
        check_dim(&c, pq.inner.d(), "centroids")?;
        let nlist = c.shape()[0];
        Ok(PyIndexIVFPQFastScan {
            inner: IndexIVFPQFastScan::from_parts(
                c.as_slice()?,
                nlist,
                pq.inner.clone(),
                Metric::parse(metric).py()?,
                by_residual,
            )
            .py()?,
        })
    }

    #[getter(M)]
    fn m(&self) -> usize {
        self.inner.pq().m()
    }
    #[getter]
    fn nbits(&self) -> usize {
        self.inner.pq().nbits()
    }
    #[getter]
    fn code_size(&self) -> usize {
        self.inner.code_size()
    }
    #[getter]
    fn by_residual(&self) -> bool {
        self.inner.by_residual()
    }
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

    /// Codes of list `l` `(size, M)`, one sub-code per byte (a copy).
    fn list_codes<'py>(&self, py: Python<'py>, l: i64) -> PyResult<Bound<'py, PyArray2<u8>>> {
        let l = self.list_index(l)?;
        let il = self.inner.invlists();
        crate::arrays::matrix_u8(py, il.codes(l).to_vec(), il.list_len(l), il.code_len())
    }

    /// Train the coarse quantizer, then the 4-bit PQ on residuals; returns the warnings.
    #[pyo3(signature = (x, *, niter=10, seed=1234, pq_niter=25, pq_seed=1234, max_points_per_centroid=256, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn train(
        &mut self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        niter: i64,
        seed: u64,
        pq_niter: i64,
        pq_seed: u64,
        max_points_per_centroid: i64,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<String>> {
        let cp = coarse_params(niter, seed)?;
        let pp = pq_params(pq_niter, pq_seed, max_points_per_centroid)?;
        let x = f32_matrix(x, "x")?;
        check_dim(&x, self.inner.d(), "x")?;
        let xs = x.as_slice()?;
        let inner = &mut self.inner;
        run_released(py, progress, |ctl| inner.train(xs, &cp, &pp, ctl))
    }
}
