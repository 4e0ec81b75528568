//! Product-quantization bindings: `ProductQuantizer` (codec), `IndexPQ` (an `Index` subclass)
//! and `OPQMatrix`.

use crate::arrays::{
    check_dim, f32_matrix, f32_tensor3, matrix_f32, matrix_u8, tensor3_f32, u8_matrix,
};
use crate::base::PyIndex;
use crate::errors::{new_err, CoreResultExt, Kind};
use crate::gil::run_released;
use numpy::{PyArray2, PyArray3, PyUntypedArrayMethods};
use pyo3::prelude::*;
use quanta_core::index::IndexPQ;
use quanta_core::kmeans::Init;
use quanta_core::pq::{
    OpqInit, OpqMatrix, PqTrainParams, PqTrainReport, ProductQuantizer, SearchMode,
};
use quanta_core::Control;
use quanta_core::Metric;

pub(crate) fn nonneg(v: i64, arg: &str) -> PyResult<usize> {
    usize::try_from(v).map_err(|_| new_err(Kind::Value, format!("{arg} must be >= 0, got {v}")))
}

pub(crate) fn train_params(
    niter: i64,
    seed: u64,
    init: &str,
    mppc: i64,
) -> PyResult<PqTrainParams> {
    if niter < 1 {
        return Err(new_err(
            Kind::Value,
            format!("niter must be >= 1, got {niter}"),
        ));
    }
    if mppc < 1 {
        return Err(new_err(
            Kind::Value,
            format!("max_points_per_centroid must be >= 1, got {mppc}"),
        ));
    }
    Ok(PqTrainParams {
        niter: niter as usize,
        seed,
        init: Init::parse(init).py()?,
        max_points_per_centroid: mppc as usize,
        warm_start: false,
    })
}

/// The shared body of the PQ `train` bindings: parameters checked, `x` converted and checked
/// against `d`, then `train` run with the GIL released. Returns (objectives, warnings).
#[allow(clippy::too_many_arguments)]
pub(crate) fn train_released<F>(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    d: usize,
    niter: i64,
    seed: u64,
    init: &str,
    max_points_per_centroid: i64,
    progress: Option<Py<PyAny>>,
    train: F,
) -> PyResult<(Vec<f64>, Vec<String>)>
where
    F: FnOnce(&[f32], &PqTrainParams, &Control) -> quanta_core::Result<PqTrainReport> + Send,
{
    let params = train_params(niter, seed, init, max_points_per_centroid)?;
    let x = f32_matrix(x, "x")?;
    check_dim(&x, d, "x")?;
    let xs = x.as_slice()?;
    let r = run_released(py, progress, |ctl| train(xs, &params, ctl))?;
    Ok((r.objectives, r.warnings))
}

/// Product quantizer codec.
#[pyclass(name = "ProductQuantizer", module = "quanta._core")]
#[derive(Clone)]
pub struct PyProductQuantizer {
    pub inner: ProductQuantizer,
}

#[pymethods]
impl PyProductQuantizer {
    #[new]
    #[pyo3(signature = (d, M, nbits=8))]
    #[allow(non_snake_case)]
    fn new(d: i64, M: i64, nbits: i64) -> PyResult<Self> {
        Ok(PyProductQuantizer {
            inner: ProductQuantizer::new(nonneg(d, "d")?, nonneg(M, "M")?, nonneg(nbits, "nbits")?)
                .py()?,
        })
    }

    /// Quantizer from codebooks `(M, ksub, dsub)` float32.
    #[staticmethod]
    fn from_centroids(centroids: &Bound<'_, PyAny>) -> PyResult<Self> {
        let c = f32_tensor3(centroids, "centroids")?;
        let s = c.shape();
        Ok(PyProductQuantizer {
            inner: ProductQuantizer::from_centroids(s[0], s[1], s[2], c.as_slice()?).py()?,
        })
    }

    #[getter]
    fn d(&self) -> usize {
        self.inner.d()
    }
    #[getter(M)]
    fn m(&self) -> usize {
        self.inner.m()
    }
    #[getter]
    fn nbits(&self) -> usize {
        self.inner.nbits()
    }
    #[getter]
    fn ksub(&self) -> usize {
        self.inner.ksub()
    }
    #[getter]
    fn dsub(&self) -> usize {
        self.inner.dsub()
    }
    #[getter]
    fn code_size(&self) -> usize {
        self.inner.code_size()
    }
    #[getter]
    fn is_trained(&self) -> bool {
        self.inner.is_trained()
    }

    /// Codebooks `(M, ksub, dsub)` (a copy).
    #[getter]
    fn centroids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let p = &self.inner;
        tensor3_f32(py, p.centroids().to_vec(), p.m(), p.ksub(), p.dsub())
    }

    /// Per-centroid mean squared quantization error `(M, ksub)` (a copy).
    #[getter]
    fn bias<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let p = &self.inner;
        matrix_f32(py, p.bias().to_vec(), p.m(), p.ksub())
    }

    #[setter(bias)]
    fn set_bias(&mut self, bias: &Bound<'_, PyAny>) -> PyResult<()> {
        let b = f32_matrix(bias, "bias")?;
        self.inner.set_bias(b.as_slice()?).py()
    }

    /// Train; returns (per-sub-quantizer objectives, warnings).
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

    fn encode<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<u8>>> {
        let x = f32_matrix(x, "x")?;
        check_dim(&x, self.inner.d(), "x")?;
        let n = x.shape()[0];
        let xs = x.as_slice()?;
        let inner = &self.inner;
        let codes = run_released(py, None, |ctl| inner.encode(xs, ctl))?;
        matrix_u8(py, codes, n, inner.code_size())
    }

    fn decode<'py>(
        &self,
        py: Python<'py>,
        codes: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let c = u8_matrix(codes, "codes")?;
        let cs = self.inner.code_size();
        if c.shape()[1] != cs {
            return Err(new_err(
                Kind::Shape,
                format!(
                    "codes has {} columns, expected code_size={cs}",
                    c.shape()[1]
                ),
            ));
        }
        let n = c.shape()[0];
        let s = c.as_slice()?;
        let inner = &self.inner;
        let out = run_released(py, None, |_| inner.decode(s))?;
        matrix_f32(py, out, n, inner.d())
    }

    /// ADC tables `(nq, M, ksub)`: squared L2 distances or inner products.
    #[pyo3(signature = (queries, metric="l2"))]
    fn compute_distance_tables<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        metric: &str,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let metric = Metric::parse(metric).py()?;
        let q = f32_matrix(queries, "queries")?;
        check_dim(&q, self.inner.d(), "queries")?;
        let nq = q.shape()[0];
        let qs = q.as_slice()?;
        let inner = &self.inner;
        let t = run_released(py, None, |_| inner.compute_distance_tables(qs, metric))?;
        tensor3_f32(py, t, nq, inner.m(), inner.ksub())
    }

    /// Symmetric tables `(M, ksub, ksub)` of squared centroid distances.
    fn sdc_tables<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let inner = &self.inner;
        let t = run_released(py, None, |_| inner.sdc_tables())?;
        tensor3_f32(py, t, inner.m(), inner.ksub(), inner.ksub())
    }

    /// Mean squared reconstruction error of `x`.
    fn quantization_mse(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<f64> {
        let x = f32_matrix(x, "x")?;
        check_dim(&x, self.inner.d(), "x")?;
        let xs = x.as_slice()?;
        let inner = &self.inner;
        run_released(py, None, |ctl| inner.quantization_mse(xs, ctl))
    }
}

/// Exhaustive search over PQ codes (faiss `IndexPQ`); the shared protocol is `Index`'s.
#[pyclass(extends = PyIndex, name = "IndexPQ", module = "quanta._core")]
pub struct PyIndexPQ;

fn pq_base(inner: IndexPQ) -> PyIndex {
    PyIndex {
        inner: Box::new(inner),
    }
}

#[pymethods]
impl PyIndexPQ {
    #[new]
    #[pyo3(signature = (d, M, nbits=8, metric="l2"))]
    #[allow(non_snake_case)]
    fn new(d: i64, M: i64, nbits: i64, metric: &str) -> PyResult<(Self, PyIndex)> {
        let inner = IndexPQ::new(
            nonneg(d, "d")?,
            nonneg(M, "M")?,
            nonneg(nbits, "nbits")?,
            Metric::parse(metric).py()?,
        )
        .py()?;
        Ok((PyIndexPQ, pq_base(inner)))
    }

    /// Empty index around a copy of an existing quantizer.
    #[staticmethod]
    #[pyo3(signature = (pq, metric="l2"))]
    fn from_pq(py: Python<'_>, pq: &PyProductQuantizer, metric: &str) -> PyResult<Py<PyAny>> {
        let inner = IndexPQ::from_pq(pq.inner.clone(), Metric::parse(metric).py()?);
        crate::base::wrap(py, Box::new(inner))
    }

    #[getter(M)]
    fn m(slf: PyRef<'_, Self>) -> PyResult<usize> {
        Ok(slf.as_super().concrete::<IndexPQ>()?.pq().m())
    }
    #[getter]
    fn nbits(slf: PyRef<'_, Self>) -> PyResult<usize> {
        Ok(slf.as_super().concrete::<IndexPQ>()?.pq().nbits())
    }
    #[getter]
    fn code_size(slf: PyRef<'_, Self>) -> PyResult<usize> {
        Ok(slf.as_super().concrete::<IndexPQ>()?.code_size())
    }

    /// A copy of the codec.
    #[getter]
    fn pq(slf: PyRef<'_, Self>) -> PyResult<PyProductQuantizer> {
        Ok(PyProductQuantizer {
            inner: slf.as_super().concrete::<IndexPQ>()?.pq().clone(),
        })
    }

    /// Estimator of searches that pass no `mode` ("adc" or "sdc"); saved with the index.
    #[getter]
    fn mode(slf: PyRef<'_, Self>) -> PyResult<&'static str> {
        Ok(match slf.as_super().concrete::<IndexPQ>()?.mode {
            SearchMode::Adc => "adc",
            SearchMode::Sdc => "sdc",
        })
    }
    #[setter(mode)]
    fn set_mode(mut slf: PyRefMut<'_, Self>, mode: &str) -> PyResult<()> {
        let mode = SearchMode::parse(mode).py()?;
        slf.as_super().concrete_mut::<IndexPQ>()?.mode = mode;
        Ok(())
    }

    /// Bias correction of searches that pass none (L2 only); saved with the index.
    #[getter]
    fn bias_correction(slf: PyRef<'_, Self>) -> PyResult<bool> {
        Ok(slf.as_super().concrete::<IndexPQ>()?.bias_correction())
    }
    #[setter(bias_correction)]
    fn set_bias_correction(mut slf: PyRefMut<'_, Self>, on: bool) -> PyResult<()> {
        slf.as_super()
            .concrete_mut::<IndexPQ>()?
            .set_bias_correction(on)
            .py()
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
        let inner = slf.as_super().concrete_mut::<IndexPQ>()?;
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

    /// Append precomputed codes `(n, code_size)` uint8.
    fn add_codes(mut slf: PyRefMut<'_, Self>, codes: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let inner = slf.as_super().concrete_mut::<IndexPQ>()?;
        let c = u8_matrix(codes, "codes")?;
        let cs = inner.code_size();
        if c.shape()[1] != cs {
            return Err(new_err(
                Kind::Shape,
                format!(
                    "codes has {} columns, expected code_size={cs}",
                    c.shape()[1]
                ),
            ));
        }
        let s = c.as_slice()?;
        run_released(py, None, |_| inner.add_codes(s))
    }

    /// Stored codes `(ntotal, code_size)` (a copy).
    fn codes<'py>(slf: PyRef<'py, Self>, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<u8>>> {
        let inner = slf.as_super().concrete::<IndexPQ>()?;
        matrix_u8(
            py,
            inner.codes().to_vec(),
            inner.ntotal(),
            inner.code_size(),
        )
    }
}

/// Learned orthogonal rotation for PQ (faiss `OPQMatrix`).
#[pyclass(name = "OPQMatrix", module = "quanta._core")]
pub struct PyOpqMatrix {
    pub(crate) inner: OpqMatrix,
}

#[pymethods]
impl PyOpqMatrix {
    #[new]
    #[pyo3(signature = (d, M, niter=50, d_out=None, niter_pq=4, niter_pq_0=40, max_train_points=65536, seed=123, init="eigen"))]
    #[allow(non_snake_case, clippy::too_many_arguments)]
    fn new(
        d: i64,
        M: i64,
        niter: i64,
        d_out: Option<i64>,
        niter_pq: i64,
        niter_pq_0: i64,
        max_train_points: i64,
        seed: u64,
        init: &str,
    ) -> PyResult<Self> {
        let init = OpqInit::parse(init).py()?;
        let mut inner = OpqMatrix::new(
            nonneg(d, "d")?,
            nonneg(M, "M")?,
            d_out.map(|v| nonneg(v, "d_out")).transpose()?,
        )
        .py()?;
        inner.niter = nonneg(niter, "niter")?;
        inner.niter_pq = nonneg(niter_pq, "niter_pq")?;
        inner.niter_pq_0 = nonneg(niter_pq_0, "niter_pq_0")?;
        inner.max_train_points = nonneg(max_train_points, "max_train_points")?.max(1);
        inner.seed = seed;
        inner.init = init;
        Ok(PyOpqMatrix { inner })
    }

    #[getter]
    fn d_in(&self) -> usize {
        self.inner.d_in()
    }
    #[getter]
    fn d_out(&self) -> usize {
        self.inner.d_out()
    }
    #[getter(M)]
    fn m(&self) -> usize {
        self.inner.m()
    }
    #[getter]
    fn is_trained(&self) -> bool {
        self.inner.is_trained()
    }
    /// Initial rotation: "eigen" (parametric OPQ) or "random" (faiss).
    #[getter]
    fn init(&self) -> &'static str {
        self.inner.init.name()
    }

    /// The rotation `(d_out, d_in)` (a copy; empty before training).
    #[getter]
    fn matrix<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let rows = if self.inner.is_trained() {
            self.inner.d_out()
        } else {
            0
        };
        matrix_f32(py, self.inner.matrix().to_vec(), rows, self.inner.d_in())
    }

    /// Set the rotation `(d_out, d_in)` (rows orthonormal).
    fn set_matrix(&mut self, a: &Bound<'_, PyAny>) -> PyResult<()> {
        let a = f32_matrix(a, "matrix")?;
        self.inner.set_matrix(a.as_slice()?).py()
    }

    /// Learn the rotation; returns the PQ reconstruction MSE after each alternation.
    #[pyo3(signature = (x, progress=None))]
    fn train(
        &mut self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<f64>> {
        let x = f32_matrix(x, "x")?;
        check_dim(&x, self.inner.d_in(), "x")?;
        let xs = x.as_slice()?;
        let inner = &mut self.inner;
        run_released(py, progress, |ctl| inner.train(xs, ctl))
    }

    fn apply<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let x = f32_matrix(x, "x")?;
        check_dim(&x, self.inner.d_in(), "x")?;
        let n = x.shape()[0];
        let xs = x.as_slice()?;
        let inner = &self.inner;
        let y = run_released(py, None, |_| inner.apply(xs))?;
        matrix_f32(py, y, n, inner.d_out())
    }

    fn reverse<'py>(
        &self,
        py: Python<'py>,
        y: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let y = f32_matrix(y, "y")?;
        check_dim(&y, self.inner.d_out(), "y")?;
        let n = y.shape()[0];
        let ys = y.as_slice()?;
        let inner = &self.inner;
        let x = run_released(py, None, |_| inner.reverse(ys))?;
        matrix_f32(py, x, n, inner.d_in())
    }
}
