//! Indexes: store vectors or codes + ids and search them. Codecs live elsewhere.

pub mod binary;
pub mod flat;
pub mod pq;
pub mod pq_fastscan;

pub use binary::IndexBinaryFlat;
pub use flat::{IndexFlat, SearchResult};
pub use pq::IndexPQ;
pub use pq_fastscan::IndexPQFastScan;

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

/// Largest `k` a search accepts (results are `nq × k`; beyond this it is a typo, not a query).
pub const MAX_K: usize = (1 << 31) - 1;

/// Validate `k` for a search.
pub fn check_k(k: usize) -> Result<()> {
    if k == 0 || k > MAX_K {
        return Err(Error::invalid(format!("k must be in 1..={MAX_K}, got {k}")));
    }
    Ok(())
}
