//! The one error type of the core. Every fallible public function returns [`Result`].
//!
//! Messages name the offending argument so that the Python layer can pass them through
//! verbatim; the binding maps each variant to one Python exception class.

use std::fmt;

/// Result alias used across the core.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in quanta-core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value is out of its allowed range (k <= 0, niter == 0, unknown option, ...).
    #[error("{0}")]
    InvalidArgument(String),
    /// Array shapes do not fit together (d mismatch, wrong length, empty input).
    #[error("{0}")]
    Shape(String),
    /// Input data contains NaN or +-Inf.
    #[error("{arg} contains a non-finite value (NaN or Inf) at row {row}, column {col}")]
    NonFinite {
        /// Name of the argument, as the user wrote it.
        arg: &'static str,
        /// Row of the first offending value.
        row: usize,
        /// Column of the first offending value.
        col: usize,
    },
    /// The object must be trained before this call.
    #[error("{0} is not trained: call train() first")]
    NotTrained(&'static str),
    /// A file is truncated, corrupted, foreign or of an unsupported version.
    #[error("{0}")]
    Format(String),
    /// An I/O error from the operating system.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The requested SIMD level is not supported by this CPU or build.
    #[error("{0}")]
    SimdUnavailable(String),
    /// The computation was cancelled (Ctrl-C in Python).
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(msg: impl fmt::Display) -> Self {
        Error::InvalidArgument(msg.to_string())
    }

    /// Shorthand for [`Error::Shape`].
    pub fn shape(msg: impl fmt::Display) -> Self {
        Error::Shape(msg.to_string())
    }
}
