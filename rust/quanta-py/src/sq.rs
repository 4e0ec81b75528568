//! `IndexScalarQuantizer` (an `Index` subclass): constructor and getters, no algorithms.

use crate::base::PyIndex;
use crate::errors::CoreResultExt;
use crate::indexes::dim;
use pyo3::prelude::*;
use quanta_core::index::IndexScalarQuantizer;
use quanta_core::sq::{QuantizerType, ScalarQuantizer};
use quanta_core::Metric;

/// Flat scan over scalar-quantized codes (faiss IndexScalarQuantizer).
#[pyclass(extends = PyIndex, name = "IndexScalarQuantizer", module = "quanta._core")]
pub struct PyIndexScalarQuantizer;

#[pymethods]
impl PyIndexScalarQuantizer {
    #[new]
    #[pyo3(signature = (d, qtype="8bit", metric="l2", seed=1234))]
    fn new(d: i64, qtype: &str, metric: &str, seed: u64) -> PyResult<(Self, PyIndex)> {
        let sq =
            ScalarQuantizer::with_seed(dim(d)?, QuantizerType::parse(qtype).py()?, seed).py()?;
        let inner = IndexScalarQuantizer::from_sq(sq, Metric::parse(metric).py()?);
        Ok((
            PyIndexScalarQuantizer,
            PyIndex {
                inner: Box::new(inner),
            },
        ))
    }

    /// Code type name ("8bit", "4bit", "fp16", "bf16", "lm2", "lm3", "lm4").
    #[getter]
    fn qtype(slf: PyRef<'_, Self>) -> PyResult<&'static str> {
        Ok(slf
            .as_super()
            .concrete::<IndexScalarQuantizer>()?
            .sq()
            .qtype()
            .name())
    }

    /// Bytes per stored vector.
    #[getter]
    fn code_size(slf: PyRef<'_, Self>) -> PyResult<usize> {
        Ok(slf
            .as_super()
            .concrete::<IndexScalarQuantizer>()?
            .code_size())
    }
}
