//! Indexes: store vectors or codes + ids and search them. Codecs live elsewhere.

pub mod flat;

pub use flat::IndexFlat;

use crate::error::{Error, Result};

/// Validate a `(n × d)` float batch given as a flat slice: length multiple of `d`, finite values.
pub fn check_batch(x: &[f32], d: usize, arg: &'static str) -> Result<usize> {
    if d == 0 {
        return Err(Error::invalid("d must be >= 1"));
    }
    if !x.len().is_multiple_of(d) {
        return Err(Error::shape(format!(
            "{arg} has {} values, not a multiple of d={d}",
            x.len()
        )));
    }
    crate::distance::check_finite(x, d, arg)?;
    Ok(x.len() / d)
}

/// Validate `k` for a search.
pub fn check_k(k: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::invalid("k must be >= 1"));
    }
    Ok(())
}
