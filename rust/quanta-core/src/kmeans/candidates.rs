//! Candidate-list assignment: most Lloyd iterations compare each point with a few centroids only.
//!
//! Why: at k = 1024 a full assignment is an n × k × d GEMM, and both quanta and faiss already run
//! it near the core's peak, so plain Lloyd cannot get much faster. But once the centroids settle,
//! a point's nearest centroid is almost always among the few that were nearest to it at its last
//! full search. So a *full search* (GEMM + argmin) also keeps each point's `l` nearest centroids,
//! and the iterations in between only compute exact distances to those `l` (l ≪ k).
//!
//! Full searches run at iterations 0, 1, 3, 7, 15, … (iteration + 1 a power of two: early, while
//! the centroids still move a lot) and after any empty-cluster split (a new centroid is in nobody's
//! list). This is an approximation of Lloyd — a point whose true nearest centroid has left its list
//! keeps a slightly worse one until the next full search — measured at ≤ 0.02 % objective
//! difference on Gaussian, SIFT and Fashion-MNIST data (benches/results/compare_faiss_kmeans.md). The distances
//! that are reported are exact distances to the chosen centroid, so the objective never flatters.
//!
//! Determinism: every point is handled on its own, so results do not depend on the thread count.

use crate::control::Control;
use crate::distance::{ip_tile, BASE_TILE, QUERY_TILE};
use crate::error::Result;
use crate::kernels::l2;
use crate::simd::level;
use rayon::prelude::*;

/// Iteration `it` (0-based) runs a full search in candidate mode.
pub(super) fn is_full_iteration(it: usize) -> bool {
    (it + 1).is_power_of_two()
}

/// Per-point candidate lists plus the current assignment.
pub(super) struct Candidates {
    /// List length.
    l: usize,
    /// n × l centroid ids (unordered), from each point's last full search.
    ids: Vec<u32>,
    /// Nearest centroid (among the list, or overall right after a full search).
    pub labels: Vec<u32>,
    /// Exact squared distance to it.
    pub d1: Vec<f32>,
}

impl Candidates {
    /// Full search: exact nearest centroid of every point, keeping its `l` nearest (`l < k`).
    pub fn full(
        x: &[f32],
        x_norms: &[f32],
        centroids: &[f32],
        c_norms: &[f32],
        d: usize,
        l: usize,
        ctl: &Control,
    ) -> Result<Self> {
        let n = x_norms.len();
        let k = c_norms.len();
        debug_assert!(l >= 1 && l < k);
        let mut c = Candidates {
            l,
            ids: vec![0; n * l],
            labels: vec![0; n],
            d1: vec![0.0; n],
        };
        let lvl = level();
        let ct = k.min(BASE_TILE * 4);
        c.ids
            .par_chunks_mut(QUERY_TILE * l)
            .zip(c.labels.par_chunks_mut(QUERY_TILE))
            .zip(c.d1.par_chunks_mut(QUERY_TILE))
            .enumerate()
            .try_for_each(|(blk, ((ids, lab), d1))| -> Result<()> {
                ctl.check()?;
                let r0 = blk * QUERY_TILE;
                let rows = lab.len();
                let xb = &x[r0 * d..(r0 + rows) * d];
                let mut tile = vec![0f32; rows * ct];
                let mut sel: Vec<TopL> = (0..rows).map(|_| TopL::new(l)).collect();
                for c0 in (0..k).step_by(ct) {
                    let c1 = (c0 + ct).min(k);
                    let nc = c1 - c0;
                    let t = &mut tile[..rows * nc];
                    ip_tile(lvl, xb, &centroids[c0 * d..c1 * d], d, t);
                    for (row, s) in t.chunks_exact_mut(nc).zip(sel.iter_mut()) {
                        // ||c||² − 2<x, c>: the squared distance minus ||x||²
                        for (v, &cn) in row.iter_mut().zip(&c_norms[c0..c1]) {
                            *v = cn - 2.0 * *v;
                        }
                        s.offer_row(row, c0 as u32);
                    }
                }
                for (r, s) in sel.iter_mut().enumerate() {
                    let (j, v) = s.finish(&mut ids[r * l..(r + 1) * l]);
                    lab[r] = j;
                    d1[r] = (x_norms[r0 + r] + v).max(0.0);
                }
                Ok(())
            })?;
        Ok(c)
    }

    /// Between full searches: nearest centroid of every point among its list (exact distances).
    pub fn step(&mut self, x: &[f32], centroids: &[f32], d: usize, ctl: &Control) -> Result<()> {
        let l = self.l;
        let lvl = level();
        self.ids
            .par_chunks(QUERY_TILE * l)
            .zip(self.labels.par_chunks_mut(QUERY_TILE))
            .zip(self.d1.par_chunks_mut(QUERY_TILE))
            .enumerate()
            .try_for_each(|(blk, ((ids, lab), d1))| -> Result<()> {
                ctl.check()?;
                let r0 = blk * QUERY_TILE;
                for (r, (cand, (lab, d1))) in ids
                    .chunks_exact(l)
                    .zip(lab.iter_mut().zip(d1.iter_mut()))
                    .enumerate()
                {
                    let xi = &x[(r0 + r) * d..(r0 + r + 1) * d];
                    let (mut bj, mut bv) = (u32::MAX, f32::INFINITY);
                    for &j in cand {
                        let c = &centroids[j as usize * d..(j as usize + 1) * d];
                        let v = l2::l2sqr_with(lvl, xi, c);
                        // ties go to the lower centroid id, as in a full search
                        if v < bv || (v == bv && j < bj) {
                            bv = v;
                            bj = j;
                        }
                    }
                    *lab = bj;
                    *d1 = bv;
                }
                Ok(())
            })
    }
}

/// The `l` smallest (value, id) pairs of a stream, with a running threshold so that most values
/// are skipped by a SIMD scan; the threshold starts from the chunk minima.
struct TopL {
    l: usize,
    buf: Vec<(f32, u32)>,
    /// Values `> thr` cannot enter the `l` smallest any more.
    thr: f32,
    /// Chunk minima of the current row (selected in place).
    mins: Vec<f32>,
}

/// Chunk length for the threshold: about 4 l chunks per row, so the l-th smallest chunk minimum
/// is tight (at k = 1024 and l = 32: 8-value chunks, about 36 values end up below it).
fn chunk_len(row_len: usize, l: usize) -> usize {
    (row_len / (4 * l)).clamp(1, 16)
}

fn chunk_min(ch: &[f32]) -> f32 {
    // four independent lanes and `if` instead of f32::min (inputs are checked finite): the
    // compiler turns this into packed minimums
    let mut m = [f32::INFINITY; 4];
    let mut quads = ch.chunks_exact(4);
    for q in &mut quads {
        for i in 0..4 {
            m[i] = if q[i] < m[i] { q[i] } else { m[i] };
        }
    }
    for &v in quads.remainder() {
        m[0] = if v < m[0] { v } else { m[0] };
    }
    let a = if m[1] < m[0] { m[1] } else { m[0] };
    let b = if m[3] < m[2] { m[3] } else { m[2] };
    if b < a {
        b
    } else {
        a
    }
}

impl TopL {
    fn new(l: usize) -> Self {
        TopL {
            l,
            buf: Vec::with_capacity(2 * l),
            thr: f32::INFINITY,
            mins: Vec::new(),
        }
    }

    fn offer_row(&mut self, row: &[f32], id0: u32) {
        let l = self.l;
        self.mins.clear();
        self.mins
            .extend(row.chunks(chunk_len(row.len(), l)).map(chunk_min));
        if self.mins.len() >= l {
            // l chunks each hold a value <= the l-th smallest chunk minimum: a valid threshold
            // before the scan, so the buffer rarely has to be pruned
            self.mins.select_nth_unstable_by(l - 1, f32::total_cmp);
            self.thr = self.thr.min(self.mins[l - 1]);
        }
        // SIMD scan for the next value <= thr (`find_below` is strict, hence next_up)
        let lvl = level();
        let mut thr = self.thr;
        let mut j = l2::find_below_with(lvl, row, 0, thr.next_up());
        while j < row.len() {
            self.buf.push((row[j], id0 + j as u32));
            if self.buf.len() >= 2 * l {
                self.prune();
                thr = self.thr;
            }
            j = l2::find_below_with(lvl, row, j + 1, thr.next_up());
        }
    }

    /// Keep the `l` smallest by (value, id); the threshold becomes the largest kept value.
    fn prune(&mut self) {
        let l = self.l;
        self.buf
            .select_nth_unstable_by(l - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        self.buf.truncate(l);
        self.thr = self.buf[l - 1].0;
    }

    /// Write the kept ids into `out` (length `l`) and return the smallest (id, value).
    fn finish(&mut self, out: &mut [u32]) -> (u32, f32) {
        if self.buf.len() > self.l {
            self.prune();
        }
        debug_assert_eq!(self.buf.len(), self.l, "TopL saw fewer than l values");
        let mut best = (u32::MAX, f32::INFINITY);
        for (o, &(v, j)) in out.iter_mut().zip(&self.buf) {
            *o = j;
            if v < best.1 || (v == best.1 && j < best.0) {
                best = (j, v);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topl_keeps_the_smallest() {
        let vals: Vec<f32> = (0..1000).map(|i| ((i * 7919) % 1000) as f32).collect();
        let mut t = TopL::new(10);
        t.offer_row(&vals[..500], 0);
        t.offer_row(&vals[500..], 500);
        let mut out = vec![0u32; 10];
        let (j, v) = t.finish(&mut out);
        let mut got: Vec<f32> = out.iter().map(|&i| vals[i as usize]).collect();
        got.sort_by(f32::total_cmp);
        assert_eq!(got, (0..10).map(|v| v as f32).collect::<Vec<_>>());
        assert_eq!(v, 0.0);
        assert_eq!(vals[j as usize], 0.0);
    }

    #[test]
    fn topl_ties_prefer_lower_ids() {
        let vals = vec![1.0f32; 40];
        let mut t = TopL::new(5);
        t.offer_row(&vals, 100);
        let mut out = vec![0u32; 5];
        let (j, _) = t.finish(&mut out);
        out.sort();
        assert_eq!(out, vec![100, 101, 102, 103, 104]);
        assert_eq!(j, 100);
    }

    #[test]
    fn full_iterations_are_early_and_sparse() {
        let full: Vec<usize> = (0..20).filter(|&i| is_full_iteration(i)).collect();
        assert_eq!(full, vec![0, 1, 3, 7, 15]);
    }
}
