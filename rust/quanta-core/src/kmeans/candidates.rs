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
//! difference on Gaussian, SIFT and Fashion-MNIST data (benches/results/intel-sapphire-rapids/compare_faiss_kmeans.md). The distances
//! that are reported are exact distances to the chosen centroid, so the objective never flatters.
//!
//! Determinism: every point is handled on its own, so results do not depend on the thread count.

use crate::control::Control;
use crate::distance::{ip_tile, panels_beat_gemm, QUERY_TILE};
use crate::error::Result;
use crate::kernels::{l2, panel};
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
        let panels = (d <= panel::PANEL_MAX_D && panels_beat_gemm(lvl))
            .then(|| panel::Panels::pack(centroids, d));
        c.ids
            .par_chunks_mut(QUERY_TILE * l)
            .zip(c.labels.par_chunks_mut(QUERY_TILE))
            .zip(c.d1.par_chunks_mut(QUERY_TILE))
            .enumerate()
            .try_for_each(|(blk, ((ids, lab), d1))| -> Result<()> {
                ctl.check()?;
                let r0 = blk * QUERY_TILE;
                let rows = lab.len();
                let mut sel = Selector::new(l);
                let mut pick = |r: usize, ip: &[f32]| {
                    let (j, v) = sel.select(lvl, ip, c_norms, &mut ids[r * l..(r + 1) * l]);
                    lab[r] = j;
                    d1[r] = (x_norms[r0 + r] + v).max(0.0);
                };
                if let Some(p) = &panels {
                    // MR rows at a time against every panel: the tile (MR × k) stays in L1/L2
                    let width = p.len() * panel::NR;
                    let mut tile = vec![0f32; panel::MR * width];
                    for g0 in (0..rows).step_by(panel::MR) {
                        let mr = panel::MR.min(rows - g0);
                        let xs = &x[(r0 + g0) * d..(r0 + g0 + mr) * d];
                        for q in 0..p.len() {
                            let o = &mut tile[q * panel::NR..];
                            panel::ip_rows_panel_with(lvl, xs, mr, d, p.panel(q), o, width);
                        }
                        for r in 0..mr {
                            pick(g0 + r, &tile[r * width..r * width + k]);
                        }
                    }
                } else {
                    // GEMM over as many rows as keep the tile near 1 MiB
                    let sub = ((1 << 18) / k).clamp(1, rows);
                    let mut tile = vec![0f32; sub * k];
                    for g0 in (0..rows).step_by(sub) {
                        let m = sub.min(rows - g0);
                        let xs = &x[(r0 + g0) * d..(r0 + g0 + m) * d];
                        ip_tile(lvl, xs, centroids, d, &mut tile[..m * k]);
                        for r in 0..m {
                            pick(g0 + r, &tile[r * k..(r + 1) * k]);
                        }
                    }
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

/// Selection of the `l` smallest (value, id) of one row of shifted distances
/// `c_norms[j] - 2 <x, c_j>` (the squared distance minus ‖x‖²): a valid threshold first (at
/// least `l` values are <= it: the l-th smallest minimum of 4 l strided groups), then one SIMD
/// pass collects the values <= it (about 1.1 l of them at k = 512, l = 16, whatever the
/// iteration), then a partial sort of those few. The kept set is the `l` smallest by (value,
/// id) whatever the threshold. Buffers are reused from row to row.
///
/// (A threshold from the point's previous candidates, the largest of their new values, looked
/// cheaper but admits ~6 l values right after the first update, when centroids move most.)
struct Selector {
    l: usize,
    buf: Vec<(f32, u32)>,
    keys: Vec<u64>,
    mins: Vec<f32>,
    min_keys: Vec<u32>,
}

/// Strided groups for the threshold without previous lists: about 4 l groups, so the l-th
/// smallest group minimum is tight (at k = 512 and l = 16: 64 groups of 8 values).
fn group_count(row_len: usize, l: usize) -> usize {
    (4 * l).clamp(l, row_len.max(l))
}

impl Selector {
    fn new(l: usize) -> Self {
        Selector {
            l,
            buf: Vec::with_capacity(4 * l),
            keys: Vec::with_capacity(4 * l),
            mins: Vec::new(),
            min_keys: Vec::new(),
        }
    }

    /// Write the ids of the `l` smallest values of the row (`ip` holds the inner products) into
    /// `out` and return the smallest (id, value), ties to the lower id.
    fn select(
        &mut self,
        lvl: crate::simd::SimdLevel,
        ip: &[f32],
        c_norms: &[f32],
        out: &mut [u32],
    ) -> (u32, f32) {
        let l = self.l;
        let thr = self.group_threshold(lvl, ip, c_norms);
        self.buf.clear();
        l2::collect_le_shifted_with(lvl, c_norms, ip, thr, 0, &mut self.buf);
        debug_assert!(
            self.buf.len() >= l,
            "threshold admitted fewer than l values"
        );
        // (value, id) order as one integer key: the partial sort compares single u64s
        self.keys.clear();
        self.keys.extend(
            self.buf
                .iter()
                .map(|&(v, j)| (order_key(v) as u64) << 32 | j as u64),
        );
        if self.keys.len() > l {
            self.keys.select_nth_unstable(l - 1);
            self.keys.truncate(l);
        }
        let mut best = u64::MAX;
        for (o, &key) in out.iter_mut().zip(&self.keys) {
            *o = key as u32;
            best = best.min(key);
        }
        let j = best as u32;
        (j, c_norms[j as usize] - 2.0 * ip[j as usize])
    }

    /// The l-th smallest minimum of `group_count` strided groups (`j mod G`): each of the l groups
    /// with the smallest minima holds a value <= it.
    fn group_threshold(&mut self, lvl: crate::simd::SimdLevel, ip: &[f32], c_norms: &[f32]) -> f32 {
        let g = group_count(ip.len(), self.l);
        self.mins.clear();
        self.mins.resize(g, f32::INFINITY);
        l2::strided_min_shifted_with(lvl, c_norms, ip, &mut self.mins);
        self.min_keys.clear();
        self.min_keys
            .extend(self.mins.iter().map(|&v| order_key(v)));
        let (_, t, _) = self.min_keys.select_nth_unstable(self.l - 1);
        from_order_key(*t)
    }
}

/// A u32 whose unsigned order is the float order (finite values and ±inf): flip every bit of a
/// negative float, only the sign bit of a positive one. -0 is read as +0 first, so that the two
/// zeros tie (and go to the lower id) as they compare equal.
fn order_key(v: f32) -> u32 {
    let b = (v + 0.0).to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | 0x8000_0000
    }
}

fn from_order_key(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7fff_ffff } else { !k })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn select_brute(ip: &[f32], cn: &[f32], l: usize) -> (Vec<u32>, u32) {
        let mut all: Vec<(f32, u32)> = (0..ip.len())
            .map(|j| (cn[j] - 2.0 * ip[j], j as u32))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut ids: Vec<u32> = all[..l].iter().map(|p| p.1).collect();
        ids.sort_unstable();
        (ids, all[0].1)
    }

    #[test]
    fn selector_keeps_the_l_smallest() {
        let mut r = crate::rng::Rng::new(3);
        for lvl in crate::simd::SimdLevel::available() {
            for (k, l) in [(256usize, 8usize), (300, 16), (1024, 32), (512, 16)] {
                // quantized values: many exact ties, which must go to the lower id
                let ip: Vec<f32> = (0..k).map(|_| (r.normal() * 4.0).round() as f32).collect();
                let cn: Vec<f32> = (0..k)
                    .map(|_| (r.normal() * 2.0).round().abs() as f32)
                    .collect();
                let (want, best) = select_brute(&ip, &cn, l);
                let mut sel = Selector::new(l);
                let mut out = vec![0u32; l];
                let (j, _) = sel.select(lvl, &ip, &cn, &mut out);
                out.sort_unstable();
                assert_eq!((out, j), (want, best), "{lvl:?} k={k} l={l}");
            }
        }
    }

    #[test]
    fn order_keys_sort_like_floats() {
        let v = [
            f32::NEG_INFINITY,
            -3.5,
            -0.0,
            0.0,
            1e-30,
            2.0,
            f32::INFINITY,
        ];
        for w in v.windows(2) {
            assert!(order_key(w[0]) <= order_key(w[1]), "{w:?}");
        }
        for &x in &v {
            assert_eq!(from_order_key(order_key(x)), x);
        }
        assert_eq!(order_key(-0.0), order_key(0.0));
    }

    #[test]
    fn full_iterations_are_early_and_sparse() {
        let full: Vec<usize> = (0..20).filter(|&i| is_full_iteration(i)).collect();
        assert_eq!(full, vec![0, 1, 3, 7, 15]);
    }
}
