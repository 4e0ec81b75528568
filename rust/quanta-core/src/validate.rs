//! Argument checks shared by codecs and indexes, so neither depends on the other for them.
//!
//! Every public entry point checks its inputs once, here, before any kernel runs; kernels
//! below assume well-formed input.

use crate::error::{Error, Result};

/// Validate a `(n × d)` float batch given as a flat slice: length multiple of `d`, finite values.
/// Returns `n`.
pub fn check_batch(x: &[f32], d: usize, arg: &'static str) -> Result<usize> {
    let n = check_shape(x, d, arg)?;
    crate::distance::check_finite(x, d, arg)?;
    Ok(n)
}

/// Like [`check_batch`] without the NaN/Inf pass (for data already checked by the caller).
pub fn check_shape(x: &[f32], d: usize, arg: &'static str) -> Result<usize> {
    if d == 0 {
        return Err(Error::invalid("d must be >= 1"));
    }
    if !x.len().is_multiple_of(d) {
        return Err(Error::shape(format!(
            "{arg} has {} values, not a multiple of d={d}",
            x.len()
        )));
    }
    Ok(x.len() / d)
}

/// Largest `k` a search accepts (results are `nq × k`; beyond this it is a typo, not a query).
pub const MAX_K: usize = (1 << 31) - 1;

/// Validate `k` for a search.
pub fn check_k(k: usize) -> Result<()> {
    if k == 0 || k > MAX_K {
        return Err(Error::invalid(format!("k must be in 1..={MAX_K}, got {k}")));
    }
    Ok(())
}

/// Validate that `ids` has one entry per row of an `n`-row batch.
pub fn check_ids(ids: &[i64], n: usize) -> Result<()> {
    if ids.len() != n {
        return Err(Error::shape(format!(
            "ids has {} entries, x has {n} rows",
            ids.len()
        )));
    }
    Ok(())
}

/// Validate a range-search radius: finite (a NaN radius would silently return nothing).
pub fn check_radius(radius: f32) -> Result<()> {
    if !radius.is_finite() {
        return Err(Error::invalid(format!(
            "radius must be finite, got {radius}"
        )));
    }
    Ok(())
}

/// Validate the id of a positional index (ids are positions `0..n`); returns it as a position.
pub fn check_position(id: i64, n: usize) -> Result<usize> {
    if id < 0 || id as usize >= n {
        return Err(Error::invalid(format!("id {id} is out of range [0, {n})")));
    }
    Ok(id as usize)
}
