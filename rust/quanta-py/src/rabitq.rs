//! RaBitQ bindings: the `RaBitQ` codec and `IndexRaBitQ`, an `Index` subclass.

use crate::arrays::{check_dim, f32_matrix, matrix_f32, matrix_i64, matrix_u8, u8_matrix};
use crate::base::PyIndex;
use crate::errors::{new_err, CoreResultExt, Kind};
use crate::gil::run_released;
use crate::pq::nonneg;
use numpy::{PyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use quanta_core::index::IndexRaBitQ;
use quanta_core::rabitq::RaBitQ;
use quanta_core::Metric;

type F32Array<'py> = Bound<'py, PyArray2<f32>>;

fn epsilon_arg(e: f32) -> PyResult<f32> {
    if e.is_finite() && (0.0..=100.0).contains(&e) {
        Ok(e)
    } else {
        Err(new_err(
            Kind::Value,
            format!("epsilon must be in [0, 100], got {e}"),
        ))
    }
}

/// RaBitQ codec: random rotation, centroid, 1..8 bits per dimension with correction factors.
#[pyclass(name = "RaBitQ", module = "quanta._core")]
pub struct PyRaBitQ {
    pub inner: RaBitQ,
}

#[pymethods]
impl PyRaBitQ {
    #[new]
    #[pyo3(signature = (d, nbits=1, metric="l2", seed=1234))]
    fn new(d: i64, nbits: i64, metric: &str, seed: u64) -> PyResult<Self> {
        let inner = RaBitQ::new(
            nonneg(d, "d")?,
            nonneg(nbits, "nbits")?,
            Metric::parse(metric).py()?,
            seed,
        )
        .py()?;
        Ok(PyRaBitQ { inner })
    }
    #[getter]
    fn d(&self) -> usize {
        self.inner.d()
    }
    #[getter]
    fn nbits(&self) -> usize {
        self.inner.nbits()
    }
    #[getter]
    fn metric(&self) -> &'static str {
        self.inner.metric().name()
    }
    #[getter]
    fn code_size(&self) -> usize {
        self.inner.code_size()
    }
    #[getter]
    fn is_trained(&self) -> bool {
        self.inner.is_trained()
    }
    #[getter]
    fn seed(&self) -> u64 {
        self.inner.rotation().seed()
    }
    /// The centroid (1-D float32 array of d).
    #[getter]
    fn centroid(&self) -> Vec<f32> {
        self.inner.centroid().to_vec()
    }
    /// The rotation matrix (d × d, rows orthonormal).
    #[getter]
    fn rotation<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let d = self.inner.d();
        matrix_f32(py, self.inner.rotation().matrix().to_vec(), d, d)
    }
    fn train(&mut self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let x = f32_matrix(x, "x")?;
        check_dim(&x, self.inner.d(), "x")?;
        let xs = x.as_slice()?;
        let inner = &mut self.inner;
        run_released(py, None, |_| inner.train(xs))
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
        let (n, cs) = (c.shape()[0], c.shape()[1]);
        if cs != self.inner.code_size() {
            return Err(new_err(
                Kind::Shape,
                format!(
                    "codes has {cs} columns, expected code_size={}",
                    self.inner.code_size()
                ),
            ));
        }
        let cs = c.as_slice()?;
        let inner = &self.inner;
        let x = run_released(py, None, |_| inner.decode(cs))?;
        matrix_f32(py, x, n, inner.d())
    }
    /// `(estimates, bounds)`, both nq × n: estimated distances (L2: squared; IP: similarity)
    /// and their error bounds at `epsilon`.
    #[pyo3(signature = (queries, codes, *, epsilon=1.9))]
    fn estimate<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        codes: &Bound<'py, PyAny>,
        epsilon: f32,
    ) -> PyResult<(F32Array<'py>, F32Array<'py>)> {
        let epsilon = epsilon_arg(epsilon)?;
        let q = f32_matrix(queries, "queries")?;
        check_dim(&q, self.inner.d(), "queries")?;
        let c = u8_matrix(codes, "codes")?;
        let (n, cs) = (c.shape()[0], c.shape()[1]);
        if cs != self.inner.code_size() {
            return Err(new_err(
                Kind::Shape,
                format!(
                    "codes has {cs} columns, expected code_size={}",
                    self.inner.code_size()
                ),
            ));
        }
        let nq = q.shape()[0];
        let (qs, cs) = (q.as_slice()?, c.as_slice()?);
        let inner = &self.inner;
        let (e, b) = run_released(py, None, |_| inner.estimate(qs, cs, epsilon))?;
        Ok((matrix_f32(py, e, nq, n)?, matrix_f32(py, b, nq, n)?))
    }
}

/// RaBitQ index: sign plane scanned with fast-scan kernels, bound-pruned exact rescoring.
#[pyclass(extends = PyIndex, name = "IndexRaBitQ", module = "quanta._core")]
pub struct PyIndexRaBitQ;

#[pymethods]
impl PyIndexRaBitQ {
    #[new]
    #[pyo3(signature = (d, nbits=1, metric="l2", seed=1234))]
    fn new(d: i64, nbits: i64, metric: &str, seed: u64) -> PyResult<(Self, PyIndex)> {
        let inner = IndexRaBitQ::new(
            nonneg(d, "d")?,
            nonneg(nbits, "nbits")?,
            Metric::parse(metric).py()?,
            seed,
        )
        .py()?;
        Ok((
            PyIndexRaBitQ,
            PyIndex {
                inner: Box::new(inner),
            },
        ))
    }
    #[getter]
    fn nbits(slf: PyRef<'_, Self>) -> PyResult<usize> {
        Ok(slf.as_super().concrete::<IndexRaBitQ>()?.codec().nbits())
    }
    #[getter]
    fn code_size(slf: PyRef<'_, Self>) -> PyResult<usize> {
        Ok(slf.as_super().concrete::<IndexRaBitQ>()?.code_size())
    }
    /// ε₀ of the pruning bound (and of `search_with_bounds`); saved with the index.
    #[getter]
    fn epsilon(slf: PyRef<'_, Self>) -> PyResult<f32> {
        Ok(slf.as_super().concrete::<IndexRaBitQ>()?.epsilon)
    }
    #[setter(epsilon)]
    fn set_epsilon(mut slf: PyRefMut<'_, Self>, v: f32) -> PyResult<()> {
        let v = epsilon_arg(v)?;
        slf.as_super().concrete_mut::<IndexRaBitQ>()?.epsilon = v;
        Ok(())
    }
    /// Shortlist size per result (0: the bound-pruned search); saved with the index.
    #[getter]
    fn k_factor(slf: PyRef<'_, Self>) -> PyResult<usize> {
        Ok(slf.as_super().concrete::<IndexRaBitQ>()?.k_factor())
    }
    #[setter(k_factor)]
    fn set_k_factor(mut slf: PyRefMut<'_, Self>, v: i64) -> PyResult<()> {
        let v = nonneg(v, "k_factor")?;
        slf.as_super()
            .concrete_mut::<IndexRaBitQ>()?
            .set_k_factor(v)
            .py()
    }
    /// Bit planes the shortlist scan reads (1..=nbits); saved with the index.
    #[getter]
    fn scan_planes(slf: PyRef<'_, Self>) -> PyResult<usize> {
        Ok(slf.as_super().concrete::<IndexRaBitQ>()?.scan_planes())
    }
    #[setter(scan_planes)]
    fn set_scan_planes(mut slf: PyRefMut<'_, Self>, v: i64) -> PyResult<()> {
        let v = nonneg(v, "scan_planes")?;
        slf.as_super()
            .concrete_mut::<IndexRaBitQ>()?
            .set_scan_planes(v)
            .py()
    }
    /// A copy of the codec.
    #[getter]
    fn codec(slf: PyRef<'_, Self>) -> PyResult<PyRaBitQ> {
        Ok(PyRaBitQ {
            inner: slf.as_super().concrete::<IndexRaBitQ>()?.codec().clone(),
        })
    }
    /// `(D, I, bounds)`: the search plus each distance's ε₀ error bound.
    fn search_with_bounds<'py>(
        slf: PyRef<'py, Self>,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: i64,
    ) -> PyResult<(F32Array<'py>, Bound<'py, PyArray2<i64>>, F32Array<'py>)> {
        let k = crate::base::positive(k, "k")?;
        let base = slf.as_super();
        let ix = base.concrete::<IndexRaBitQ>()?;
        let q = f32_matrix(queries, "queries")?;
        check_dim(&q, ix.d(), "queries")?;
        let nq = q.shape()[0];
        let qs = q.as_slice()?;
        let (d, i, b) = run_released(py, None, |ctl| ix.search_with_bounds(qs, k, None, ctl))?;
        Ok((
            matrix_f32(py, d, nq, k)?,
            matrix_i64(py, i, nq, k)?,
            matrix_f32(py, b, nq, k)?,
        ))
    }
}
