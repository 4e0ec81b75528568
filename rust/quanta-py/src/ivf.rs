//! Inverted-file classes: `IndexIVFFlat`, `IndexIVFPQ`, `IndexIVFPQFastScan`,
//! `IndexIVFRaBitQ`, `IndexIVFScalarQuantizer`. Each extends `Index` (`base.rs`, which carries add / search /
//! range_search / remove_ids / files) and adds only its constructors, its `train` with the k-means settings as keywords, and its getters.

use crate::arrays::{check_dim, f32_matrix, matrix_f32, matrix_u8};
use crate::base::{positive, PyIndex};
use crate::errors::{new_err, CoreResultExt, Kind};
use crate::gil::run_released;
use crate::indexes::dim;
use crate::pq::PyProductQuantizer;
use numpy::{PyArray1, PyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::PyClassInitializer;
use quanta_core::index::Index;
use quanta_core::ivf::{
    IndexIVFFlat, IndexIVFPQ, IndexIVFPQFastScan, IndexIVFRaBitQ, IndexIVFScalarQuantizer,
    IvfTrainParams,
};
use quanta_core::pq::PqTrainParams;
use quanta_core::sq::QuantizerType;
use quanta_core::Metric;

/// The Python object of subclass `sub` around the core index `inner`.
fn new_object<S>(py: Python<'_>, sub: S, inner: impl Index) -> PyResult<Py<S>>
where
    S: pyo3::PyClass<BaseType = PyIndex>,
{
    let init = PyClassInitializer::from(PyIndex {
        inner: Box::new(inner),
    })
    .add_subclass(sub);
    Py::new(py, init)
}

/// `defaults` with the coarse k-means keywords given to `train` applied.
fn coarse_params(
    defaults: &IvfTrainParams,
    niter: Option<i64>,
    seed: Option<u64>,
) -> PyResult<IvfTrainParams> {
    let mut p = defaults.clone();
    if let Some(n) = niter {
        p.niter = positive(n, "niter")?;
    }
    if let Some(s) = seed {
        p.seed = s;
    }
    Ok(p)
}

/// `defaults` with the PQ k-means keywords given to `train` applied.
fn pq_params(
    defaults: &PqTrainParams,
    niter: Option<i64>,
    seed: Option<u64>,
    max_points_per_centroid: Option<i64>,
) -> PyResult<PqTrainParams> {
    let mut p = defaults.clone();
    if let Some(n) = niter {
        p.niter = positive(n, "pq_niter")?;
    }
    if let Some(s) = seed {
        p.seed = s;
    }
    if let Some(m) = max_points_per_centroid {
        p.max_points_per_centroid = positive(m, "max_points_per_centroid")?;
    }
    Ok(p)
}

fn list_number(l: i64, nlist: usize) -> PyResult<usize> {
    if l < 0 || l as u64 >= nlist as u64 {
        return Err(new_err(
            Kind::Value,
            format!("list number {l} is out of range [0, {nlist})"),
        ));
    }
    Ok(l as usize)
}

/// The getters every IVF class has (one `#[pymethods]` block per class); `@pq` adds those of
/// the two IVFPQ classes (same core API): `from_parts`, `train` with the PQ keywords, `M`,
/// `nbits`, `code_size`, `by_residual`, `pq`, `list_codes`.
macro_rules! ivf_methods {
    (@coarse_coded $py:ident, $core:ty, $($extra:tt)*) => {
        ivf_methods! {
            @coarse
            $py,
            $core,
            /// Bytes per stored code.
            #[getter]
            fn code_size(slf: PyRef<'_, Self>) -> PyResult<usize> {
                Ok(slf.as_super().concrete::<$core>()?.code_size())
            }

            /// Codes of list `l` `(size, code_size)` (a copy).
            fn list_codes<'py>(
                slf: PyRef<'py, Self>,
                py: Python<'py>,
                l: i64,
            ) -> PyResult<Bound<'py, PyArray2<u8>>> {
                let il = slf.as_super().concrete::<$core>()?.invlists();
                let l = list_number(l, il.nlist())?;
                matrix_u8(py, il.codes(l).to_vec(), il.list_len(l), il.code_len())
            }

            $($extra)*
        }
    };
    (@coarse $py:ident, $core:ty, $($extra:tt)*) => {
        ivf_methods! {
            $py,
            $core,
            /// Train the coarse quantizer (then the codec, where it needs training, on what
            /// the index codes); keywords left out keep the index's defaults. Returns the
            /// training warnings.
            #[pyo3(signature = (x, *, niter=None, seed=None, progress=None))]
            fn train(
                mut slf: PyRefMut<'_, Self>,
                py: Python<'_>,
                x: &Bound<'_, PyAny>,
                niter: Option<i64>,
                seed: Option<u64>,
                progress: Option<Py<PyAny>>,
            ) -> PyResult<Vec<String>> {
                let idx = slf.as_super().concrete_mut::<$core>()?;
                let p = coarse_params(idx.train_params(), niter, seed)?;
                let x = f32_matrix(x, "x")?;
                check_dim(&x, idx.d(), "x")?;
                let xs = x.as_slice()?;
                run_released(py, progress, |ctl| idx.train(xs, &p, ctl))
            }

            $($extra)*
        }
    };
    (@pq $py:ident, $core:ty, $($extra:tt)*) => {
        ivf_methods! {
            $py,
            $core,
            /// Trained, empty index from coarse centroids `(nlist, d)` and a trained quantizer.
            #[staticmethod]
            #[pyo3(signature = (centroids, pq, metric="l2", by_residual=true))]
            fn from_parts(
                py: Python<'_>,
                centroids: &Bound<'_, PyAny>,
                pq: &PyProductQuantizer,
                metric: &str,
                by_residual: bool,
            ) -> PyResult<Py<Self>> {
                let c = f32_matrix(centroids, "centroids")?;
                check_dim(&c, pq.inner.d(), "centroids")?;
                let nlist = c.shape()[0];
                let metric = Metric::parse(metric).py()?;
                let inner =
                    <$core>::from_parts(c.as_slice()?, nlist, pq.inner.clone(), metric, by_residual)
                        .py()?;
                new_object(py, $py, inner)
            }

            /// Train the coarse quantizer, then the PQ (on the residuals with `by_residual`);
            /// keywords left out keep the index's defaults. Returns the k-means warnings.
            #[pyo3(signature = (x, *, niter=None, seed=None, pq_niter=None, pq_seed=None,
                max_points_per_centroid=None, progress=None))]
            #[allow(clippy::too_many_arguments)]
            fn train(
                mut slf: PyRefMut<'_, Self>,
                py: Python<'_>,
                x: &Bound<'_, PyAny>,
                niter: Option<i64>,
                seed: Option<u64>,
                pq_niter: Option<i64>,
                pq_seed: Option<u64>,
                max_points_per_centroid: Option<i64>,
                progress: Option<Py<PyAny>>,
            ) -> PyResult<Vec<String>> {
                let idx = slf.as_super().concrete_mut::<$core>()?;
                let cp = coarse_params(idx.train_params(), niter, seed)?;
                let mp = max_points_per_centroid;
                let pp = pq_params(idx.pq_train_params(), pq_niter, pq_seed, mp)?;
                let x = f32_matrix(x, "x")?;
                check_dim(&x, idx.d(), "x")?;
                let xs = x.as_slice()?;
                run_released(py, progress, |ctl| idx.train(xs, &cp, &pp, ctl))
            }

            #[getter(M)]
            fn m(slf: PyRef<'_, Self>) -> PyResult<usize> {
                Ok(slf.as_super().concrete::<$core>()?.pq().m())
            }

            #[getter]
            fn nbits(slf: PyRef<'_, Self>) -> PyResult<usize> {
                Ok(slf.as_super().concrete::<$core>()?.pq().nbits())
            }

            /// Bytes per stored code (one per sub-quantizer).
            #[getter]
            fn code_size(slf: PyRef<'_, Self>) -> PyResult<usize> {
                Ok(slf.as_super().concrete::<$core>()?.code_size())
            }

            #[getter]
            fn by_residual(slf: PyRef<'_, Self>) -> PyResult<bool> {
                Ok(slf.as_super().concrete::<$core>()?.by_residual())
            }

            /// A copy of the codec.
            #[getter]
            fn pq(slf: PyRef<'_, Self>) -> PyResult<PyProductQuantizer> {
                let inner = slf.as_super().concrete::<$core>()?.pq().clone();
                Ok(PyProductQuantizer { inner })
            }

            /// Codes of list `l` `(size, code_size)`, one sub-code per byte (a copy).
            fn list_codes<'py>(
                slf: PyRef<'py, Self>,
                py: Python<'py>,
                l: i64,
            ) -> PyResult<Bound<'py, PyArray2<u8>>> {
                let il = slf.as_super().concrete::<$core>()?.invlists();
                let l = list_number(l, il.nlist())?;
                matrix_u8(py, il.codes(l).to_vec(), il.list_len(l), il.code_len())
            }

            $($extra)*
        }
    };
    ($py:ident, $core:ty, $($extra:tt)*) => {
        #[pymethods]
        impl $py {
            /// Number of inverted lists.
            #[getter]
            fn nlist(slf: PyRef<'_, Self>) -> PyResult<usize> {
                Ok(slf.as_super().concrete::<$core>()?.nlist())
            }

            /// Lists probed per query when `search` gets no `nprobe` (saved with the index).
            #[getter]
            fn nprobe(slf: PyRef<'_, Self>) -> PyResult<usize> {
                Ok(slf.as_super().concrete::<$core>()?.nprobe())
            }

            #[setter]
            fn set_nprobe(mut slf: PyRefMut<'_, Self>, v: i64) -> PyResult<()> {
                let n = positive(v, "nprobe")?;
                slf.as_super().concrete_mut::<$core>()?.set_nprobe(n).py()
            }

            /// Coarse centroids `(nlist, d)` (a copy; 0 rows before training).
            #[getter]
            fn centroids<'py>(
                slf: PyRef<'py, Self>,
                py: Python<'py>,
            ) -> PyResult<Bound<'py, PyArray2<f32>>> {
                let idx = slf.as_super().concrete::<$core>()?;
                let (c, d) = (idx.centroids(), idx.d());
                matrix_f32(py, c.to_vec(), c.len() / d, d)
            }

            /// Number of entries of every list, int64 `(nlist,)`.
            fn list_sizes<'py>(
                slf: PyRef<'py, Self>,
                py: Python<'py>,
            ) -> PyResult<Bound<'py, PyArray1<i64>>> {
                let il = slf.as_super().concrete::<$core>()?.invlists();
                let s: Vec<i64> = il.sizes().iter().map(|&v| v as i64).collect();
                Ok(PyArray1::from_vec(py, s))
            }

            /// faiss `imbalance_factor` of the list sizes (1.0 = balanced).
            fn imbalance_factor(slf: PyRef<'_, Self>) -> PyResult<f64> {
                Ok(slf.as_super().concrete::<$core>()?.invlists().imbalance_factor())
            }

            /// Ids of list `l` (a copy).
            fn list_ids<'py>(
                slf: PyRef<'py, Self>,
                py: Python<'py>,
                l: i64,
            ) -> PyResult<Bound<'py, PyArray1<i64>>> {
                let il = slf.as_super().concrete::<$core>()?.invlists();
                let l = list_number(l, il.nlist())?;
                Ok(PyArray1::from_vec(py, il.ids(l).to_vec()))
            }

            $($extra)*
        }
    };
}

/// Inverted file over raw vectors (faiss IndexIVFFlat).
#[pyclass(extends = PyIndex, name = "IndexIVFFlat", module = "quanta._core")]
pub struct PyIndexIVFFlat;

ivf_methods! {
    @coarse
    PyIndexIVFFlat,
    IndexIVFFlat,
    #[new]
    #[pyo3(signature = (d, nlist, metric="l2"))]
    fn new(d: i64, nlist: i64, metric: &str) -> PyResult<(Self, PyIndex)> {
        let metric = Metric::parse(metric).py()?;
        let inner = IndexIVFFlat::new(dim(d)?, positive(nlist, "nlist")?, metric).py()?;
        Ok((PyIndexIVFFlat, PyIndex { inner: Box::new(inner) }))
    }

    /// Trained, empty index around coarse centroids `(nlist, d)`.
    #[staticmethod]
    #[pyo3(signature = (centroids, metric="l2"))]
    fn from_centroids(
        py: Python<'_>,
        centroids: &Bound<'_, PyAny>,
        metric: &str,
    ) -> PyResult<Py<Self>> {
        let c = f32_matrix(centroids, "centroids")?;
        let d = c.shape()[1];
        let metric = Metric::parse(metric).py()?;
        let inner = IndexIVFFlat::from_centroids(c.as_slice()?, d, metric).py()?;
        new_object(py, PyIndexIVFFlat, inner)
    }

}

/// Inverted file with PQ-encoded residuals (faiss IndexIVFPQ).
#[pyclass(extends = PyIndex, name = "IndexIVFPQ", module = "quanta._core")]
pub struct PyIndexIVFPQ;

ivf_methods! {
    @pq
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
    ) -> PyResult<(Self, PyIndex)> {
        let inner = IndexIVFPQ::new(
            dim(d)?,
            positive(nlist, "nlist")?,
            positive(M, "M")?,
            positive(nbits, "nbits")?,
            Metric::parse(metric).py()?,
            by_residual,
        )
        .py()?;
        Ok((PyIndexIVFPQ, PyIndex { inner: Box::new(inner) }))
    }
}

/// IVFPQ with 4-bit codes scanned by the fast-scan kernel (faiss IndexIVFPQFastScan).
#[pyclass(extends = PyIndex, name = "IndexIVFPQFastScan", module = "quanta._core")]
pub struct PyIndexIVFPQFastScan;

ivf_methods! {
    @pq
    PyIndexIVFPQFastScan,
    IndexIVFPQFastScan,
    #[new]
    #[pyo3(signature = (d, nlist, M, metric="l2", by_residual=true))]
    #[allow(non_snake_case)]
    fn new(
        d: i64,
        nlist: i64,
        M: i64,
        metric: &str,
        by_residual: bool,
    ) -> PyResult<(Self, PyIndex)> {
        let inner = IndexIVFPQFastScan::new(
            dim(d)?,
            positive(nlist, "nlist")?,
            positive(M, "M")?,
            Metric::parse(metric).py()?,
            by_residual,
        )
        .py()?;
        Ok((PyIndexIVFPQFastScan, PyIndex { inner: Box::new(inner) }))
    }

    /// Candidates per result re-ranked by float ADC when `search` gets no `k_factor`
    /// (1 = no re-ranking; saved with the index).
    #[getter]
    fn k_factor(slf: PyRef<'_, Self>) -> PyResult<usize> {
        Ok(slf.as_super().concrete::<IndexIVFPQFastScan>()?.k_factor)
    }

    #[setter]
    fn set_k_factor(mut slf: PyRefMut<'_, Self>, v: i64) -> PyResult<()> {
        let kf = positive(v, "k_factor")?;
        slf.as_super()
            .concrete_mut::<IndexIVFPQFastScan>()?
            .set_k_factor(kf)
            .py()
    }
}

/// Inverted file over RaBitQ codes, each vector coded around its list centroid (faiss
/// IndexIVFRaBitQ, `nbits` 1..=8).
#[pyclass(extends = PyIndex, name = "IndexIVFRaBitQ", module = "quanta._core")]
pub struct PyIndexIVFRaBitQ;

ivf_methods! {
    @coarse_coded
    PyIndexIVFRaBitQ,
    IndexIVFRaBitQ,
    #[new]
    #[pyo3(signature = (d, nlist, nbits=1, metric="l2", seed=1234))]
    fn new(d: i64, nlist: i64, nbits: i64, metric: &str, seed: u64) -> PyResult<(Self, PyIndex)> {
        let metric = Metric::parse(metric).py()?;
        let nbits = positive(nbits, "nbits")?;
        let inner = IndexIVFRaBitQ::new(dim(d)?, positive(nlist, "nlist")?, nbits, metric, seed)
            .py()?;
        Ok((PyIndexIVFRaBitQ, PyIndex { inner: Box::new(inner) }))
    }

    /// Trained, empty index around coarse centroids `(nlist, d)`.
    #[staticmethod]
    #[pyo3(signature = (centroids, nbits=1, metric="l2", seed=1234))]
    fn from_centroids(
        py: Python<'_>,
        centroids: &Bound<'_, PyAny>,
        nbits: i64,
        metric: &str,
        seed: u64,
    ) -> PyResult<Py<Self>> {
        let c = f32_matrix(centroids, "centroids")?;
        let d = c.shape()[1];
        let metric = Metric::parse(metric).py()?;
        let nbits = positive(nbits, "nbits")?;
        let inner = IndexIVFRaBitQ::from_centroids(c.as_slice()?, d, nbits, metric, seed).py()?;
        new_object(py, PyIndexIVFRaBitQ, inner)
    }

    #[getter]
    fn nbits(slf: PyRef<'_, Self>) -> PyResult<usize> {
        Ok(slf.as_super().concrete::<IndexIVFRaBitQ>()?.nbits())
    }

    /// ε₀ of the multi-bit pruning bound (saved with the index).
    #[getter]
    fn epsilon(slf: PyRef<'_, Self>) -> PyResult<f32> {
        Ok(slf.as_super().concrete::<IndexIVFRaBitQ>()?.epsilon())
    }

    #[setter(epsilon)]
    fn set_epsilon(mut slf: PyRefMut<'_, Self>, v: f32) -> PyResult<()> {
        slf.as_super().concrete_mut::<IndexIVFRaBitQ>()?.set_epsilon(v).py()
    }

}

/// Inverted file over scalar-quantized codes, residuals to the list centroid by default
/// (faiss IndexIVFScalarQuantizer).
#[pyclass(extends = PyIndex, name = "IndexIVFScalarQuantizer", module = "quanta._core")]
pub struct PyIndexIVFScalarQuantizer;

ivf_methods! {
    @coarse_coded
    PyIndexIVFScalarQuantizer,
    IndexIVFScalarQuantizer,
    #[new]
    #[pyo3(signature = (d, nlist, qtype="8bit", metric="l2", by_residual=true, seed=1234))]
    fn new(
        d: i64,
        nlist: i64,
        qtype: &str,
        metric: &str,
        by_residual: bool,
        seed: u64,
    ) -> PyResult<(Self, PyIndex)> {
        let metric = Metric::parse(metric).py()?;
        let qtype = QuantizerType::parse(qtype).py()?;
        let nlist = positive(nlist, "nlist")?;
        let inner =
            IndexIVFScalarQuantizer::new(dim(d)?, nlist, qtype, metric, by_residual, seed).py()?;
        Ok((PyIndexIVFScalarQuantizer, PyIndex { inner: Box::new(inner) }))
    }

    /// Code type (`"8bit"`, `"4bit"`, `"fp16"`, `"bf16"`, `"lm2"`, `"lm3"`, `"lm4"`).
    #[getter]
    fn qtype(slf: PyRef<'_, Self>) -> PyResult<&'static str> {
        Ok(slf.as_super().concrete::<IndexIVFScalarQuantizer>()?.sq().qtype().name())
    }

    #[getter]
    fn by_residual(slf: PyRef<'_, Self>) -> PyResult<bool> {
        Ok(slf.as_super().concrete::<IndexIVFScalarQuantizer>()?.by_residual())
    }

}
