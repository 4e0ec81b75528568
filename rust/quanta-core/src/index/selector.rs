//! Id selectors: which ids a search may return (faiss `IDSelector`), honoured by every index
//! inside its scan, and which ids `remove_ids` removes.

/// A set of ids: a bitmap when the ids are dense enough, else a sorted array.
#[derive(Debug, Clone)]
pub enum IdSet {
    /// Bit `id` of the words (LSB first) is set for members; ids past the end are not members.
    Bitmap(Vec<u64>),
    /// Sorted, deduplicated ids (binary search).
    Sorted(Vec<i64>),
}

impl IdSet {
    /// The set of `ids` (any order, duplicates allowed). Stored as a bitmap when every id is
    /// non-negative and the bitmap is at most about 8 bytes per id (+ 8 KiB), else sorted.
    pub fn from_ids(ids: &[i64]) -> Self {
        let max = ids.iter().copied().max().unwrap_or(-1);
        let min = ids.iter().copied().min().unwrap_or(0);
        if min >= 0 && (max as u64) / 64 <= ids.len() as u64 + 1024 {
            let mut words = vec![0u64; (max + 1) as usize / 64 + 1];
            for &id in ids {
                words[id as usize / 64] |= 1 << (id % 64);
            }
            IdSet::Bitmap(words)
        } else {
            let mut v = ids.to_vec();
            v.sort_unstable();
            v.dedup();
            IdSet::Sorted(v)
        }
    }

    /// The set `{i : mask[i]}`.
    pub fn from_mask(mask: &[bool]) -> Self {
        let mut words = vec![0u64; mask.len().div_ceil(64)];
        for (i, _) in mask.iter().enumerate().filter(|(_, &b)| b) {
            words[i / 64] |= 1 << (i % 64);
        }
        IdSet::Bitmap(words)
    }

    /// Whether `id` is a member.
    #[inline]
    pub fn contains(&self, id: i64) -> bool {
        match self {
            IdSet::Bitmap(w) => {
                id >= 0
                    && w.get(id as usize / 64)
                        .is_some_and(|x| x >> (id % 64) & 1 == 1)
            }
            IdSet::Sorted(v) => v.binary_search(&id).is_ok(),
        }
    }
}

/// Which ids a filtered search may return.
#[derive(Debug, Clone)]
pub enum IdSelector {
    /// Only these ids.
    Allow(IdSet),
    /// Every id except these.
    Deny(IdSet),
}

impl IdSelector {
    /// Positions `0..n` this selector does not accept (what a positional index keeps on
    /// `remove_ids`, in order), or `None` when it accepts none of them (nothing to remove).
    pub fn kept_positions(&self, n: usize) -> Option<Vec<usize>> {
        let keep: Vec<usize> = (0..n).filter(|&i| !self.accepts(i as i64)).collect();
        (keep.len() < n).then_some(keep)
    }

    /// New position of each of the positions `0..n` once the ones the selector accepts are
    /// removed (their own entries are -1): position `i` moves down by the number of removed
    /// positions below it, as a positional index renumbers.
    pub fn renumbered_positions(&self, n: usize) -> Vec<i64> {
        let mut next = 0i64;
        (0..n)
            .map(|i| {
                if self.accepts(i as i64) {
                    -1
                } else {
                    next += 1;
                    next - 1
                }
            })
            .collect()
    }

    /// Whether `id` may be returned.
    #[inline]
    pub fn accepts(&self, id: i64) -> bool {
        match self {
            IdSelector::Allow(s) => s.contains(id),
            IdSelector::Deny(s) => !s.contains(id),
        }
    }
}

/// Rows `keep` (each `row` values long) of `data`, in order: what a positional index keeps.
pub fn gather_rows<T: Copy>(data: &[T], row: usize, keep: &[usize]) -> Vec<T> {
    let mut out = Vec::with_capacity(keep.len() * row);
    for &i in keep {
        out.extend_from_slice(&data[i * row..(i + 1) * row]);
    }
    out
}
