//! Per-call search parameters (faiss `SearchParameters`): one struct for every index, each
//! index reading the fields that apply to it and ignoring the others, so that generic code
//! (composites, the Python layer, a sharded search) passes one value through.

use super::IdSelector;
use crate::error::{Error, Result};
use crate::pq::SearchMode;

/// Search parameters; `None` fields take the index's own default (saved with it).
#[derive(Debug, Clone, Default)]
pub struct SearchParams {
    /// Inverted lists visited per query (IVF indexes).
    pub nprobe: Option<usize>,
    /// Candidates per result re-ranked with a finer distance (fast scan, refine).
    pub k_factor: Option<usize>,
    /// PQ distance: asymmetric (ADC) or symmetric (SDC) (`IndexPQ`).
    pub mode: Option<SearchMode>,
    /// SDC bias correction (`IndexPQ` with `mode = Sdc`).
    pub bias_correction: Option<bool>,
    /// Only ids this selector accepts are returned; applied inside the scan, so rejected
    /// entries never take a result slot.
    pub selector: Option<IdSelector>,
}

impl SearchParams {
    /// Parameters with only a selector.
    pub fn with_selector(selector: Option<IdSelector>) -> Self {
        SearchParams {
            selector,
            ..Default::default()
        }
    }

    /// `nprobe`, or `default`; an explicit 0 is an error.
    pub fn nprobe_or(&self, default: usize) -> Result<usize> {
        positive(self.nprobe, default, "nprobe")
    }

    /// `k_factor`, or `default`; an explicit 0 is an error.
    pub fn k_factor_or(&self, default: usize) -> Result<usize> {
        positive(self.k_factor, default, "k_factor")
    }

    /// Whether `id` may be returned.
    #[inline]
    pub fn accepts(&self, id: i64) -> bool {
        self.selector.as_ref().is_none_or(|s| s.accepts(id))
    }
}

fn positive(v: Option<usize>, default: usize, name: &str) -> Result<usize> {
    match v {
        Some(0) => Err(Error::invalid(format!("{name} must be >= 1, got 0"))),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}
