//! Top-k selection shared by every index.
//!
//! Keys are "smaller is better" (squared L2, or the negated score for inner product); ties are
//! broken by the lower id, so results do not depend on scan order, block size or thread count.
//! Small `k` uses a binary max-heap; large `k` a reservoir of `2k` candidates that is cut back
//! with a partial select (`select_nth_unstable`) when full.

use std::cmp::Ordering;

/// Heap/reservoir switch: above this `k` the reservoir wins (fewer log-k sift operations).
const HEAP_MAX_K: usize = 256;

/// Order of `less` as an `Ordering` (keys are never NaN; `-0.0 == +0.0` is a tie, broken by id).
#[inline]
fn cmp(a: (f32, i64), b: (f32, i64)) -> Ordering {
    if less(a, b) {
        Ordering::Less
    } else if less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

#[inline]
fn less(a: (f32, i64), b: (f32, i64)) -> bool {
    a.0 < b.0 || (a.0 == b.0 && a.1 < b.1)
}

/// Collects the `k` smallest `(key, id)` pairs.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    keys: Vec<f32>,
    ids: Vec<i64>,
    /// Reservoir mode: worst kept entry after the last cut (everything must beat it).
    cut: (f32, i64),
    heap: bool,
}

impl TopK {
    /// Empty collector for `k >= 1` results.
    pub fn new(k: usize) -> Self {
        Self::with_capacity_hint(k, usize::MAX)
    }

    /// Like [`TopK::new`], reserving room for at most `max_items` candidates (the number that
    /// can ever be offered), so a huge `k` over a small base allocates little.
    pub fn with_capacity_hint(k: usize, max_items: usize) -> Self {
        let heap = k <= HEAP_MAX_K;
        let cap = if heap { k } else { k.saturating_mul(2) }
            .min(max_items)
            .min(1 << 16);
        TopK {
            k,
            keys: Vec::with_capacity(cap),
            ids: Vec::with_capacity(cap),
            cut: (f32::INFINITY, i64::MAX),
            heap,
        }
    }

    /// A collector in reservoir mode whatever `k`: O(1) amortized pushes, for a shortlist
    /// whose threshold tightens slowly (many entries pass it before it settles).
    pub fn reservoir(k: usize) -> Self {
        let mut t = Self::new(k);
        t.heap = false;
        t
    }

    /// Number of results wanted.
    pub fn k(&self) -> usize {
        self.k
    }

    /// A key must be `< threshold()` to enter, or equal to it with a lower id than the worst kept.
    ///
    /// Scans that visit ids in increasing order may therefore skip every key `>= threshold()`.
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.heap {
            if self.keys.len() < self.k {
                f32::INFINITY
            } else {
                self.keys[0]
            }
        } else {
            self.cut.0
        }
    }

    /// Offer one candidate.
    #[inline]
    pub fn push(&mut self, key: f32, id: i64) {
        if self.heap {
            self.push_heap(key, id)
        } else {
            self.push_reservoir(key, id)
        }
    }

    fn push_heap(&mut self, key: f32, id: i64) {
        if self.keys.len() < self.k {
            self.keys.push(key);
            self.ids.push(id);
            self.sift_up(self.keys.len() - 1);
        } else if less((key, id), (self.keys[0], self.ids[0])) {
            self.keys[0] = key;
            self.ids[0] = id;
            self.sift_down(0);
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let p = (i - 1) / 2;
            if less((self.keys[p], self.ids[p]), (self.keys[i], self.ids[i])) {
                self.keys.swap(p, i);
                self.ids.swap(p, i);
                i = p;
            } else {
                break;
            }
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.keys.len();
        loop {
            let l = 2 * i + 1;
            if l >= n {
                break;
            }
            let r = l + 1;
            let mut m = l;
            if r < n && less((self.keys[l], self.ids[l]), (self.keys[r], self.ids[r])) {
                m = r;
            }
            if less((self.keys[i], self.ids[i]), (self.keys[m], self.ids[m])) {
                self.keys.swap(i, m);
                self.ids.swap(i, m);
                i = m;
            } else {
                break;
            }
        }
    }

    fn push_reservoir(&mut self, key: f32, id: i64) {
        if !less((key, id), self.cut) {
            return;
        }
        self.keys.push(key);
        self.ids.push(id);
        if self.keys.len() >= self.k.saturating_mul(2) {
            self.shrink();
        }
    }

    /// Keep the k best of the reservoir and remember the k-th as the new cut.
    fn shrink(&mut self) {
        let mut pairs: Vec<(f32, i64)> = self
            .keys
            .iter()
            .copied()
            .zip(self.ids.iter().copied())
            .collect();
        let k = self.k;
        pairs.select_nth_unstable_by(k - 1, |a, b| cmp(*a, *b));
        pairs.truncate(k);
        // after the select, pairs[k-1] is the worst kept entry: later ones must beat it
        self.cut = pairs[k - 1];
        for (p, (key, id)) in pairs.iter().enumerate() {
            self.keys[p] = *key;
            self.ids[p] = *id;
        }
        self.keys.truncate(k);
        self.ids.truncate(k);
    }

    /// Offer every candidate of another collector (thread-local results).
    pub fn merge(&mut self, other: &TopK) {
        for (&k, &i) in other.keys.iter().zip(other.ids.iter()) {
            self.push(k, i);
        }
    }

    /// Best-first results (at most `k`).
    pub fn into_sorted(self) -> Vec<(f32, i64)> {
        let k = self.k;
        let mut pairs: Vec<(f32, i64)> = self.keys.into_iter().zip(self.ids).collect();
        pairs.sort_unstable_by(|a, b| cmp(*a, *b));
        pairs.truncate(k);
        pairs
    }

    /// Write best-first results into `keys_out`/`ids_out` (len `k`), padding with
    /// `(pad_key, -1)`, and apply `f` to every written key (e.g. add the query norm).
    pub fn write_into(
        self,
        keys_out: &mut [f32],
        ids_out: &mut [i64],
        pad_key: f32,
        f: impl Fn(f32) -> f32,
    ) {
        let sorted = self.into_sorted();
        // `sorted` holds at most k entries; `keys_out` may be longer (k clamped to ntotal)
        for (j, (ko, io)) in keys_out.iter_mut().zip(ids_out.iter_mut()).enumerate() {
            match sorted.get(j) {
                Some(&(key, id)) => {
                    *ko = f(key);
                    *io = id;
                }
                None => {
                    *ko = pad_key;
                    *io = -1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn brute(keys: &[f32], k: usize) -> Vec<(f32, i64)> {
        let mut v: Vec<(f32, i64)> = keys
            .iter()
            .enumerate()
            .map(|(i, &x)| (x, i as i64))
            .collect();
        v.sort_by(|a, b| cmp(*a, *b));
        v.truncate(k);
        v
    }

    #[test]
    fn heap_and_reservoir_match_sort_with_ties() {
        let mut rng = Rng::new(5);
        for &k in &[1usize, 3, 10, 256, 257, 600] {
            for &n in &[0usize, 1, 5, 300, 2000] {
                // few distinct values: lots of ties
                let keys: Vec<f32> = (0..n).map(|_| rng.below(7) as f32).collect();
                // push in a shuffled order: result must not depend on it
                let order = rng.sample_indices(n, n);
                let mut t = TopK::new(k);
                for &i in &order {
                    t.push(keys[i], i as i64);
                }
                assert_eq!(t.into_sorted(), brute(&keys, k), "k={k} n={n}");
            }
        }
    }

    #[test]
    fn merge_equals_single_pass() {
        let mut rng = Rng::new(9);
        let keys: Vec<f32> = (0..1000).map(|_| rng.below(50) as f32).collect();
        for &k in &[4usize, 300] {
            let mut a = TopK::new(k);
            let mut b = TopK::new(k);
            for (i, &x) in keys.iter().enumerate() {
                if i % 3 == 0 {
                    a.push(x, i as i64)
                } else {
                    b.push(x, i as i64)
                }
            }
            a.merge(&b);
            assert_eq!(a.into_sorted(), brute(&keys, k));
        }
    }

    #[test]
    fn padding() {
        let mut t = TopK::new(4);
        t.push(2.0, 7);
        let mut k = [0.0; 4];
        let mut i = [0i64; 4];
        t.write_into(&mut k, &mut i, f32::INFINITY, |x| x);
        assert_eq!(i, [7, -1, -1, -1]);
        assert_eq!(k[0], 2.0);
        assert!(k[1].is_infinite());
    }
}
