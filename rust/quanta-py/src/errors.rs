//! The single mapping from `quanta_core::Error` to Python exceptions.
//!
//! The exception classes are defined in Python (`quanta/exceptions.py`) because they subclass
//! both `QuantaError` and a builtin (`ValueError`, `TypeError`, `OSError`), which PyO3's
//! `create_exception!` cannot express. They are looked up once and cached.

use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyType;
use quanta_core::Error;

/// Exception classes of `quanta.exceptions`, by name.
#[derive(Clone, Copy)]
pub enum Kind {
    Shape,
    DType,
    Value,
    NotTrained,
    Format,
    Simd,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Kind::Shape => "ShapeError",
            Kind::DType => "DTypeError",
            Kind::Value => "InvalidArgumentError",
            Kind::NotTrained => "NotTrainedError",
            Kind::Format => "FormatError",
            Kind::Simd => "SimdUnavailableError",
        }
    }
}

fn class(py: Python<'_>, kind: Kind) -> PyResult<Bound<'_, PyType>> {
    static MODULE: GILOnceCell<Py<PyModule>> = GILOnceCell::new();
    let m = MODULE.get_or_try_init(py, || -> PyResult<_> {
        Ok(py.import("quanta.exceptions")?.unbind())
    })?;
    Ok(m.bind(py)
        .getattr(kind.class_name())?
        .downcast_into::<PyType>()?)
}

/// A Python exception of `kind` with `msg`.
pub fn new_err(kind: Kind, msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    Python::with_gil(|py| match class(py, kind) {
        Ok(cls) => PyErr::from_type(cls, msg),
        Err(e) => PyRuntimeError::new_err(format!(
            "{msg} (and quanta.exceptions failed to import: {e})"
        )),
    })
}

/// The one conversion from core errors to Python exceptions.
pub fn to_pyerr(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::InvalidArgument(_) => new_err(Kind::Value, msg),
        Error::Shape(_) => new_err(Kind::Shape, msg),
        Error::NonFinite { .. } => new_err(Kind::Value, msg),
        Error::NotTrained(_) => new_err(Kind::NotTrained, msg),
        Error::Format(_) => new_err(Kind::Format, msg),
        Error::Io { source, .. } => Python::with_gil(|py| {
            let os: PyErr = source.into();
            let err = new_err(Kind::Format, msg);
            err.set_cause(py, Some(os));
            err
        }),
        Error::SimdUnavailable(_) => new_err(Kind::Simd, msg),
        Error::Interrupted => PyKeyboardInterrupt::new_err("interrupted"),
    }
}

/// `.py()` on core results: `core_call().py()?`.
pub trait CoreResultExt<T> {
    /// Convert the error with [`to_pyerr`].
    fn py(self) -> PyResult<T>;
}

impl<T> CoreResultExt<T> for quanta_core::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_pyerr)
    }
}
