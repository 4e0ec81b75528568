//! Binary codes: IndexBinaryFlat, sign/LSH/ITQ encoders. Argument conversion only.

use crate::arrays::{check_code_size, check_dim, f32_matrix, matrix_f32, matrix_u8, u8_matrix};
use crate::binary_base::{stored_codes, PyIndexBinary};
use crate::errors::{new_err, CoreResultExt, Kind};
use crate::gil::run_released;
use crate::indexes::positive;
use numpy::{PyArray1, PyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use quanta_core::binary::{self, Itq, Lsh, Projection};
use quanta_core::index::IndexBinaryFlat;

/// Exhaustive Hamming search over packed uint8 codes (faiss IndexBinaryFlat).
#[pyclass(extends = PyIndexBinary, name = "IndexBinaryFlat", module = "quanta._core")]
pub struct PyIndexBinaryFlat;

#[pymethods]
impl PyIndexBinaryFlat {
    #[new]
    fn new(nbits: i64) -> PyResult<(Self, PyIndexBinary)> {
        if nbits < 8 || nbits % 8 != 0 {
            return Err(new_err(
                Kind::Value,
                format!("nbits must be a positive multiple of 8, got {nbits}"),
            ));
        }
        let inner = IndexBinaryFlat::new(nbits as usize).py()?;
        Ok((
            PyIndexBinaryFlat,
            PyIndexBinary {
                inner: Box::new(inner),
            },
        ))
    }

    /// Copy of the stored codes, (ntotal, code_size) uint8, in storage order.
    fn codes<'py>(slf: PyRef<'py, Self>, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<u8>>> {
        stored_codes(py, slf.as_super().concrete::<IndexBinaryFlat>()?)
    }

    /// Copy of the stored ids, in storage order.
    fn ids<'py>(slf: PyRef<'py, Self>, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let idx = slf.as_super().concrete::<IndexBinaryFlat>()?;
        Ok(PyArray1::from_vec(py, idx.ids().to_vec()))
    }
}

/// Sign binarization (bit = x > 0), packed LSB-first: (n, ceil(d / 8)) uint8.
#[pyfunction]
pub fn sign_encode<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray2<u8>>> {
    let x = f32_matrix(x, "x")?;
    let (n, d) = (x.shape()[0], x.shape()[1]);
    let xs = x.as_slice()?;
    let codes = run_released(py, None, |_| binary::sign_encode(xs, d))?;
    matrix_u8(py, codes, n, binary::code_size(d))
}

/// Packed codes to ±1 float32 (n, d) (faiss binary_to_real).
#[pyfunction]
pub fn unpack_pm1<'py>(
    py: Python<'py>,
    codes: &Bound<'py, PyAny>,
    d: i64,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let d = positive(d, "d")?;
    let c = u8_matrix(codes, "codes")?;
    check_code_size(&c, binary::code_size(d), "codes")?;
    let n = c.shape()[0];
    let v = binary::unpack_pm1(c.as_slice()?, d).py()?;
    matrix_f32(py, v, n, d)
}

/// Random-projection LSH encoder.
#[pyclass(name = "LSH", module = "quanta._core")]
pub struct PyLsh {
    inner: Lsh,
}

#[pymethods]
impl PyLsh {
    #[new]
    #[pyo3(signature = (d, nbits, *, seed=1234, projection="auto", center=true, train_thresholds=false))]
    fn new(
        d: i64,
        nbits: i64,
        seed: u64,
        projection: &str,
        center: bool,
        train_thresholds: bool,
    ) -> PyResult<Self> {
        let (d, nbits) = (positive(d, "d")?, positive(nbits, "nbits")?);
        let p = Projection::parse(projection, d, nbits).py()?;
        Ok(PyLsh {
            inner: Lsh::new(d, nbits, seed, p, center, train_thresholds).py()?,
        })
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
    fn projection(&self) -> &'static str {
        self.inner.projection().name()
    }
    #[getter]
    fn center(&self) -> bool {
        self.inner.center()
    }
    #[getter]
    fn train_thresholds(&self) -> bool {
        self.inner.train_thresholds()
    }
    #[getter]
    fn is_trained(&self) -> bool {
        self.inner.is_trained()
    }

    /// (nbits, d) projection directions.
    fn directions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (b, d) = (self.inner.nbits(), self.inner.d());
        matrix_f32(py, self.inner.directions().to_vec(), b, d)
    }
    fn mean<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        PyArray1::from_vec(py, self.inner.mean().to_vec())
    }
    fn thresholds<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        PyArray1::from_vec(py, self.inner.thresholds().to_vec())
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
        let codes = run_released(py, None, |_| inner.encode(xs))?;
        matrix_u8(py, codes, n, binary::code_size(self.inner.nbits()))
    }
}

/// ITQ encoder (PCA to nbits, then an iteratively learned rotation).
#[pyclass(name = "ITQ", module = "quanta._core")]
pub struct PyItq {
    inner: Itq,
}

#[pymethods]
impl PyItq {
    #[new]
    #[pyo3(signature = (d, nbits, *, niter=50, seed=123))]
    fn new(d: i64, nbits: i64, niter: i64, seed: u64) -> PyResult<Self> {
        let (d, nbits) = (positive(d, "d")?, positive(nbits, "nbits")?);
        if niter < 0 {
            return Err(new_err(
                Kind::Value,
                format!("niter must be >= 0, got {niter}"),
            ));
        }
        Ok(PyItq {
            inner: Itq::new(d, nbits, niter as usize, seed).py()?,
        })
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
    fn niter(&self) -> usize {
        self.inner.niter()
    }
    #[getter]
    fn is_trained(&self) -> bool {
        self.inner.is_trained()
    }

    /// Quantization loss before each iteration and after the last (niter + 1 values).
    fn losses<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_vec(py, self.inner.losses().to_vec())
    }
    fn eigenvalues<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_vec(py, self.inner.eigenvalues().to_vec())
    }
    fn mean<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        PyArray1::from_vec(py, self.inner.mean().to_vec())
    }
    /// (nbits, d) projection (P R)ᵀ; empty before training.
    fn projection<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let w = self.inner.projection().to_vec();
        let d = self.inner.d();
        let rows = w.len() / d;
        matrix_f32(py, w, rows, d)
    }

    /// Train; returns warnings.
    #[pyo3(signature = (x, progress=None))]
    fn train(
        &mut self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<String>> {
        let x = f32_matrix(x, "x")?;
        check_dim(&x, self.inner.d(), "x")?;
        let xs = x.as_slice()?;
        let inner = &mut self.inner;
        run_released(py, progress, |ctl| inner.train(xs, ctl))
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
        let codes = run_released(py, None, |_| inner.encode(xs))?;
        matrix_u8(py, codes, n, binary::code_size(self.inner.nbits()))
    }
}
