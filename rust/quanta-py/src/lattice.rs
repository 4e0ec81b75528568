//! Lattice codecs and `IndexLattice`: thin wrappers, no algorithms.

use crate::arrays::{check_dim, exact_matrix, f32_matrix, matrix_f32, matrix_i64, matrix_of};
use crate::errors::{new_err, CoreResultExt, Kind};
use crate::gil::run_released;
use crate::indexes::{positive_k, SearchOut};
use numpy::{PyArray1, PyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use quanta_core::io::Persist;
use quanta_core::lattice::{E8Lattice, E8ShellCodec, IndexLattice, LatticeCodec, ZnSphereCodec};
use quanta_core::Metric;
use std::path::PathBuf;

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

/// Lattice codes with asymmetric search.
#[pyclass(name = "IndexLattice", module = "quanta._core")]
pub struct PyIndexLattice {
    inner: IndexLattice,
}

#[pymethods]
impl PyIndexLattice {
    #[new]
    #[pyo3(signature = (codec, metric="ip"))]
    fn new(codec: &Bound<'_, PyAny>, metric: &str) -> PyResult<Self> {
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
        Ok(PyIndexLattice {
            inner: IndexLattice::new(c, Metric::parse(metric).py()?),
        })
    }

    #[getter]
    fn d(&self) -> usize {
        self.inner.d()
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
    fn code_size(&self) -> usize {
        self.inner.code_size()
    }

    fn add(&mut self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let x = f32_matrix(x, "x")?;
        check_dim(&x, self.inner.d(), "x")?;
        let xs = x.as_slice()?;
        let inner = &mut self.inner;
        run_released(py, None, |ctl| inner.add(xs, ctl))
    }

    fn add_codes(&mut self, codes: &Bound<'_, PyAny>) -> PyResult<()> {
        let c = exact_matrix::<u8>(codes, "codes", "uint8")?;
        check_cols(c.shape()[1], self.inner.code_size(), "codes")?;
        self.inner.add_codes(c.as_slice()?).py()
    }

    /// Stored codes, (ntotal, code_size) uint8 copy.
    fn codes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<u8>>> {
        matrix_of(
            py,
            self.inner.codes().to_vec(),
            self.inner.ntotal(),
            self.inner.code_size(),
        )
    }

    #[pyo3(signature = (queries, k, progress=None))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: i64,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<SearchOut<'py>> {
        let k = positive_k(k)?;
        let q = f32_matrix(queries, "queries")?;
        check_dim(&q, self.inner.d(), "queries")?;
        let nq = q.shape()[0];
        let qs = q.as_slice()?;
        let inner = &self.inner;
        let (d, i) = run_released(py, progress, |ctl| inner.search(qs, k, ctl))?;
        Ok((matrix_f32(py, d, nq, k)?, matrix_i64(py, i, nq, k)?))
    }

    fn reconstruct<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyArray1<f32>>> {
        Ok(PyArray1::from_vec(py, self.inner.reconstruct(id).py()?))
    }

    /// The codec: a ZnSphereCodec or an E8ShellCodec (a copy).
    #[getter]
    fn codec(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(match self.inner.codec() {
            LatticeCodec::Zn(c) => Py::new(py, PyZnSphereCodec { inner: c.clone() })?.into_any(),
            LatticeCodec::E8Shell(c) => {
                Py::new(py, PyE8ShellCodec { inner: c.clone() })?.into_any()
            }
        })
    }

    /// Save to `path` (atomic: temporary file, fsync, rename).
    fn write(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let inner = &self.inner;
        run_released(py, None, |_| inner.write(&path))
    }

    /// Load from `path` (`mmap` maps the file while reading; the codes are copied).
    #[staticmethod]
    #[pyo3(signature = (path, mmap=false))]
    fn read(py: Python<'_>, path: PathBuf, mmap: bool) -> PyResult<Self> {
        let inner = run_released(py, None, |_| IndexLattice::read(&path, mmap))?;
        Ok(PyIndexLattice { inner })
    }

    fn reset(&mut self) {
        self.inner.reset()
    }

    fn __len__(&self) -> usize {
        self.inner.ntotal()
    }
}
