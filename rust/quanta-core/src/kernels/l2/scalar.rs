//! Scalar twins: the reference semantics of every L2/IP kernel.
//!
//! Float sums use 8 independent accumulators combined pairwise, the same association the SIMD
//! versions use lane-wise, so results agree closely (not bit-exactly: FMA rounds once).

/// Squared Euclidean distance.
pub fn l2sqr(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        for l in 0..8 {
            let t = a[c * 8 + l] - b[c * 8 + l];
            acc[l] += t * t;
        }
    }
    let mut tail = 0.0f32;
    for i in chunks * 8..a.len() {
        let t = a[i] - b[i];
        tail += t * t;
    }
    reduce8(acc) + tail
}

/// Inner product.
pub fn inner_product(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        for l in 0..8 {
            acc[l] += a[c * 8 + l] * b[c * 8 + l];
        }
    }
    let mut tail = 0.0f32;
    for i in chunks * 8..a.len() {
        tail += a[i] * b[i];
    }
    reduce8(acc) + tail
}

#[inline]
fn reduce8(a: [f32; 8]) -> f32 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

/// Index and value of the smallest `base[j] - 2 * ip[j]` (lowest index on ties).
///
/// This is the k-means / coarse-quantizer reduction after the GEMM: `base` holds the centroid
/// norms, `ip` one row of inner products. `2 * ip` is exact, so the value has one rounding
/// whichever way it is computed and SIMD twins agree bit-exactly.
pub fn argmin_shifted(base: &[f32], ip: &[f32]) -> (usize, f32) {
    debug_assert_eq!(base.len(), ip.len());
    let mut best = f32::INFINITY;
    let mut arg = 0usize;
    for j in 0..base.len() {
        let v = base[j] - 2.0 * ip[j];
        if v < best {
            best = v;
            arg = j;
        }
    }
    (arg, best)
}

/// Like [`argmin_shifted`], also returning the second smallest value of the multiset
/// (equal to the smallest on a tie): `(index, best, second)`. `second` is `+inf` for one entry.
pub fn argmin2_shifted(base: &[f32], ip: &[f32]) -> (usize, f32, f32) {
    debug_assert_eq!(base.len(), ip.len());
    let (mut best, mut second, mut arg) = (f32::INFINITY, f32::INFINITY, 0usize);
    for j in 0..base.len() {
        let v = base[j] - 2.0 * ip[j];
        if v < best {
            second = best;
            best = v;
            arg = j;
        } else if v < second {
            second = v;
        }
    }
    (arg, best, second)
}

/// First index `j >= start` with `v[j] < thr`, or `v.len()`.
pub fn find_below(v: &[f32], start: usize, thr: f32) -> usize {
    let mut j = start;
    while j < v.len() {
        if v[j] < thr {
            return j;
        }
        j += 1;
    }
    v.len()
}

/// Position of the first non-finite value, if any.
pub fn first_non_finite(x: &[f32]) -> Option<usize> {
    x.iter().position(|v| !v.is_finite())
}

/// Append `(v, id0 + j)` for every `j` (increasing) with `v = base[j] - 2 ip[j] <= thr`.
pub fn collect_le_shifted(base: &[f32], ip: &[f32], thr: f32, id0: u32, out: &mut Vec<(f32, u32)>) {
    debug_assert_eq!(base.len(), ip.len());
    for j in 0..base.len() {
        let v = base[j] - 2.0 * ip[j];
        if v <= thr {
            out.push((v, id0 + j as u32));
        }
    }
}

/// `mins[j mod g] = min(mins[j mod g], base[j] - 2 ip[j])` with `g = mins.len()` (strided group
/// minima; `min(v, m)` keeps `m` unless `v < m`).
pub fn strided_min_shifted(base: &[f32], ip: &[f32], mins: &mut [f32]) {
    debug_assert_eq!(base.len(), ip.len());
    let g = mins.len();
    for (cb, ci) in base.chunks(g).zip(ip.chunks(g)) {
        for ((m, &b), &a) in mins.iter_mut().zip(cb).zip(ci) {
            let v = b - 2.0 * a;
            if v < *m {
                *m = v;
            }
        }
    }
}
