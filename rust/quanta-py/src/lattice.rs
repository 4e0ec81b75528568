//! Lattice codecs and `IndexLattice` (an `Index` subclass): thin wrappers, no algorithms.

use crate::arrays::{check_dim, exact_matrix, f32_matrix, matrix_f32, matrix_i64, matrix_of};
use crate::base::PyIndex;
use crate::errors::{new_err, CoreResultExt, Kind};
use crate::gil::run_released;
use numpy::{PyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use quanta_core::lattice::{E8Lattice, E8ShellCodec, IndexLattice, LatticeCodec, ZnSphereCodec};
use quanta_core::Metric;

fn check_cols(got: usize, want: usize, arg: &str) -> PyResult<()> {
    if got != want {
        return Err(new_err(
            Kind::Shape,
            format!("{arg} has {got} columns, expected code_size={want}"),
        ));
    }
    Ok(())
}

/// Spherical Zn codec (faiss ZnSphereCodec layout).
#[pyclass(name = "ZnSphereCodec", module = "quanta._core")]
pub struct PyZnSphereCodec {
    inner: ZnSphereCodec,
}

#[pymethods]
impl PyZnSphereCodec {
    #[new]
    fn new(py: Python<'_>, d: i64, r2: i64) -> PyResult<Self> {
        if d < 1 {
            return Err(new_err(Kind::Value, format!("d must be >= 1, got {d}")));
        }
        if !(1..=u32::MAX as i64).contains(&r2) {
            return Err(new_err(Kind::Value, format!("r2 must be >= 1, got {r2}")));
        }
        let inner = run_released(py, None, |_| ZnSphereCodec::new(d as usize, r2 as u32))?;
        Ok(PyZnSphereCodec { inner })
    }

    #[getter]
    fn d(&self) -> usize {
        self.inner.d()
    }

    #[getter]
    fn r2(&self) -> u32 {
        self.inner.r2()
    }

    #[getter]
    fn nv(&self) -> u128 {
        self.inner.nv()
    }

    #[getter]
    fn code_size(&self) -> usize {
        self.inner.code_size()
    }

    #[getter]
    fn nbits(&self) -> u32 {
        self.inner.nbits()
    }

    #[getter]
    fn natom(&self) -> usize {
        self.inner.natom()
    }

    /// The atoms, (natom, d) int64.
    fn atoms<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<i64>>> {
        let v = self.inner.atoms().iter().map(|&a| a as i64).collect();
        matrix_i64(py, v, self.inner.natom(), self.inner.d())
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
        let c = run_released(py, None, |ctl| inner.encode(xs, ctl))?;
        matrix_of(py, c, n, inner.code_size())
    }

    fn decode<'py>(
        &self,
        py: Python<'py>,
        codes: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let c = exact_matrix::<u8>(codes, "codes", "uint8")?;
        check_cols(c.shape()[1], self.inner.code_size(), "codes")?;
        let n = c.shape()[0];
        let cs = c.as_slice()?;
        let inner = &self.inner;
        let out = run_released(py, None, |ctl| inner.decode(cs, ctl))?;
        matrix_f32(py, out, n, inner.d())
    }

    fn quantize<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let x = f32_matrix(x, "x")?;
        check_dim(&x, self.inner.d(), "x")?;
        let n = x.shape()[0];
        let xs = x.as_slice()?;
        let inner = &self.inner;
        let out = run_released(py, None, |ctl| inner.quantize(xs, ctl))?;
        matrix_f32(py, out, n, inner.d())
    }
}

/// The E8 lattice scaled by `scale`.
#[pyclass(name = "E8Lattice", module = "quanta._core")]
pub struct PyE8Lattice {
    inner: E8Lattice,
}

#[pymethods]
impl PyE8Lattice {
    #[new]
    #[pyo3(signature = (scale=1.0))]
    fn new(scale: f64) -> PyResult<Self> {
        Ok(PyE8Lattice {
            inner: E8Lattice::new(scale as f32).py()?,
        })
    }

    #[getter]
    fn scale(&self) -> f32 {
        self.inner.scale()
    }

    fn nearest<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let x = f32_matrix(x, "x")?;
        let (n, d) = (x.shape()[0], x.shape()[1]);
        let xs = x.as_slice()?;
        let inner = &self.inner;
        let out = run_released(py, None, |ctl| inner.nearest(xs, d, ctl))?;
        matrix_f32(py, out, n, d)
    }

    fn encode<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<i32>>> {
        let x = f32_matrix(x, "x")?;
        let (n, d) = (x.shape()[0], x.shape()[1]);
        let xs = x.as_slice()?;
        let inner = &self.inner;
        let out = run_released(py, None, |ctl| inner.encode(xs, d, ctl))?;
        matrix_of(py, out, n, d)
    }

    fn decode<'py>(
        &self,
        py: Python<'py>,
        codes: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let c = exact_matrix::<i32>(codes, "codes", "int32")?;
        let (n, d) = (c.shape()[0], c.shape()[1]);
        let out = self.inner.decode(c.as_slice()?, d).py()?;
        matrix_f32(py, out, n, d)
    }
}

/// Spherical E8 shell codes on 8-dim blocks.
#[pyclass(name = "E8ShellCodec", module = "quanta._core")]
pub struct PyE8ShellCodec {
    inner: E8ShellCodec,
}

#[pymethods]
impl PyE8ShellCodec {
    #[new]
    #[pyo3(signature = (shells, d=8))]
    fn new(py: Python<'_>, shells: Vec<i64>, d: i64) -> PyResult<Self> {
        if d < 1 {
            return Err(new_err(Kind::Value, format!("d must be >= 1, got {d}")));
        }
        let mut sh = Vec::with_capacity(shells.len());
        for m in shells {
            if !(1..=u32::MAX as i64).contains(&m) {
                return Err(new_err(
                    Kind::Value,
                    format!("shells must be in 1..=8, got {m}"),
                ));
            }
            sh.push(m as u32);
        }
        let inner = run_released(py, None, |_| E8ShellCodec::new(d as usize, &sh))?;
        Ok(PyE8ShellCodec { inner })
    }

    #[getter]
    fn d(&self) -> usize {
        self.inner.d()
    }

    #[getter]
    fn shells(&self) -> Vec<u32> {
        self.inner.shells().to_vec()
    }

    #[getter]
    fn nv(&self) -> u128 {
        self.inner.nv()
    }

    #[getter]
    fn code_size(&self) -> usize {
        self.inner.code_size()
    }

    #[getter]
    fn nbits(&self) -> u32 {
        self.inner.nbits()
    }

    #[getter]
    fn points_per_block(&self) -> usize {
        self.inner.points_per_block()
    }

    /// Block codebook in doubled coordinates, (K, 8) int32.
    fn points<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<i32>>> {
        let v: Vec<i32> = self
            .inner
            .points()
            .iter()
            .flat_map(|p| p.map(|c| c as i32))
            .collect();
        matrix_of(py, v, self.inner.points_per_block(), 8)
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
        let c = run_released(py, None, |ctl| inner.encode(xs, ctl))?;
        matrix_of(py, c, n, inner.code_size())
    }

    fn decode<'py>(
        &self,
        py: Python<'py>,
        codes: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let c = exact_matrix::<u8>(codes, "codes", "uint8")?;
        check_cols(c.shape()[1], self.inner.code_size(), "codes")?;
        let n = c.shape()[0];
        let cs = c.as_slice()?;
        let inner = &self.inner;
        let out = run_released(py, None, |ctl| inner.decode(cs, ctl))?;
        matrix_f32(py, out, n, inner.d())
    }
}

/// Lattice codes with asymmetric search; the shared protocol is `Index`'s.
#[pyclass(extends = PyIndex, name = "IndexLattice", module = "quanta._core")]
pub struct PyIndexLattice;

#[pymethods]
impl PyIndexLattice {
    #[new]
    #[pyo3(signature = (codec, metric="l2"))]
    fn new(codec: &Bound<'_, PyAny>, metric: &str) -> PyResult<(Self, PyIndex)> {
        let c = if let Ok(z) = codec.downcast::<PyZnSphereCodec>() {
            LatticeCodec::Zn(z.borrow().inner.clone())
        } else if let Ok(e) = codec.downcast::<PyE8ShellCodec>() {
            LatticeCodec::E8Shell(e.borrow().inner.clone())
        } else {
            return Err(new_err(
                Kind::DType,
                "codec must be a ZnSphereCodec or an E8ShellCodec",
            ));
        };
        let inner = IndexLattice::new(c, Metric::parse(metric).py()?);
        Ok((
            PyIndexLattice,
            PyIndex {
                inner: Box::new(inner),
            },
        ))
    }

    #[getter]
    fn code_size(slf: PyRef<'_, Self>) -> PyResult<usize> {
        Ok(slf.as_super().concrete::<IndexLattice>()?.code_size())
    }

    /// Number of distinct codes of the codec.
    #[getter]
    fn nv(slf: PyRef<'_, Self>) -> PyResult<u128> {
        Ok(slf.as_super().concrete::<IndexLattice>()?.codec().nv())
    }

    /// `ceil(log2 nv)`: bits per code.
    #[getter]
    fn nbits(slf: PyRef<'_, Self>) -> PyResult<u32> {
        Ok(slf.as_super().concrete::<IndexLattice>()?.codec().nbits())
    }

    fn add_codes(mut slf: PyRefMut<'_, Self>, codes: &Bound<'_, PyAny>) -> PyResult<()> {
        let inner = slf.as_super().concrete_mut::<IndexLattice>()?;
        let c = exact_matrix::<u8>(codes, "codes", "uint8")?;
        check_cols(c.shape()[1], inner.code_size(), "codes")?;
        inner.add_codes(c.as_slice()?).py()
    }

    /// Stored codes, (ntotal, code_size) uint8 copy.
    fn codes<'py>(slf: PyRef<'py, Self>, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<u8>>> {
        let inner = slf.as_super().concrete::<IndexLattice>()?;
        matrix_of(
            py,
            inner.codes().to_vec(),
            inner.ntotal(),
            inner.code_size(),
        )
    }

    /// The codec: a ZnSphereCodec or an E8ShellCodec (a copy).
    #[getter]
    fn codec(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(match slf.as_super().concrete::<IndexLattice>()?.codec() {
            LatticeCodec::Zn(c) => Py::new(py, PyZnSphereCodec { inner: c.clone() })?.into_any(),
            LatticeCodec::E8Shell(c) => {
                Py::new(py, PyE8ShellCodec { inner: c.clone() })?.into_any()
            }
        })
    }
}
