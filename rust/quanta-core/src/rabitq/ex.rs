//! Level choice of extended RaBitQ: the grid vector `ȳ = sign(o) ⊙ (k + ½)`, `k_i ∈ 0..half`,
//! closest in angle to `o`.
//!
//! For a scale `t > 0`, `k_i(t) = min(⌊t |o_i|⌋, half − 1)` is the best level vector of that
//! scale; the paper enumerates every critical `t` (where some `k_i` changes) for the exact
//! optimum. We search `t` on a logarithmic grid over `[¼, 4] · t_max` (`t_max = half / max |o_i|`,
//! beyond `4 t_max` at most a sign code remains, below `¼ t_max` most levels are unused), then on
//! a finer linear grid around the best point: 10 + 9 cosines, O(19·d) per vector. Measured on
//! 384-d Gaussian vectors (30 per `half` in 2, 4, 8, against the enumeration of every critical
//! scale) the cosine reached is within 4.9e-5 of the exact optimum on average (2.7e-4 at worst);
//! 20 + 13 points gave 8e-6 at 1.8× the cost. Either is far below the estimator's own error
//! (`≈ sqrt(1/t² − 1)/sqrt(d)`, about 3e-2 at 384-d): the encode time is what the grid decides.

/// Points of the coarse (log) grid.
const COARSE: usize = 10;
/// Points of the fine (linear) grid between the coarse neighbours of the best point.
const FINE: usize = 8;

/// cos(ȳ(t), |o|) for the levels of scale `t` (scale-free in `a`), at the current SIMD level.
/// The AVX2 build is the same code compiled for 256-bit registers (one register per 8-lane
/// accumulator): the same float operations in the same order, so the same bits.
#[inline]
fn cosine(a: &[f32], half: usize, t: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::level() >= crate::simd::SimdLevel::Avx2
        && crate::simd::detected() >= crate::simd::SimdLevel::Avx2
    {
        // SAFETY: AVX2 support checked through `detected()` just above.
        return unsafe { cosine_avx2(a, half, t) };
    }
    cosine_scalar(a, half, t)
}

/// [`cosine_scalar`] with AVX2 intrinsics: lane `j` of the two accumulators is the scalar
/// twin's `dot[j]` / `yy[j]`, every lane operation the same (mul then add, no FMA; `min` of
/// finite values), the tail and the lane sums the same code: bit-identical.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn cosine_avx2(a: &[f32], half: usize, t: f32) -> f64 {
    use std::arch::x86_64::*;
    let top = half as f32 - 0.5;
    let (vt, vtop) = (_mm256_set1_ps(t), _mm256_set1_ps(top));
    let (vh, vm) = (_mm256_set1_ps(0.5), _mm256_set1_ps(MAGIC));
    let (mut vd, mut vy) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut chunks = a.chunks_exact(8);
    for c in &mut chunks {
        // SAFETY: `c` holds 8 f32 (unaligned load).
        let x = unsafe { _mm256_loadu_ps(c.as_ptr()) };
        let y = _mm256_min_ps(_mm256_mul_ps(vt, x), vtop);
        let y = _mm256_add_ps(
            _mm256_sub_ps(_mm256_add_ps(_mm256_sub_ps(y, vh), vm), vm),
            vh,
        );
        vd = _mm256_add_ps(vd, _mm256_mul_ps(y, x));
        vy = _mm256_add_ps(vy, _mm256_mul_ps(y, y));
    }
    let (mut dot, mut yy) = ([0f32; 8], [0f32; 8]);
    // SAFETY: both arrays hold 8 f32.
    unsafe {
        _mm256_storeu_ps(dot.as_mut_ptr(), vd);
        _mm256_storeu_ps(yy.as_mut_ptr(), vy);
    }
    finish(chunks.remainder(), top, t, dot, yy)
}

/// The scalar twin of [`cosine`].
#[inline(always)]
fn cosine_scalar(a: &[f32], half: usize, t: f32) -> f64 {
    // min(⌊t v⌋, half − 1) = ⌊min(t v, half − ½)⌋, and ⌊x⌋ for 0 ≤ x < 2^22 as
    // round-to-nearest(x − ½) by adding and subtracting 1.5·2^23 (plain vector adds: floorf is a
    // libm call on the baseline x86-64 target, and a saturating float→int cast does not
    // vectorize). It differs from ⌊x⌋ only at exact integers (ties to even), which moves the
    // cosine of a candidate scale by a rounding error; the final levels use the exact floor.
    // Eight independent lanes: a single running sum is a chain of dependent adds.
    let top = half as f32 - 0.5;
    let (mut dot, mut yy) = ([0f32; 8], [0f32; 8]);
    let mut chunks = a.chunks_exact(8);
    for c in &mut chunks {
        for j in 0..8 {
            let y = (((t * c[j]).min(top) - 0.5) + MAGIC) - MAGIC + 0.5;
            dot[j] += y * c[j];
            yy[j] += y * y;
        }
    }
    finish(chunks.remainder(), top, t, dot, yy)
}

/// 1.5 · 2^23: ulp 1 on both sides, so x − ½ < 0 rounds too ([`cosine_scalar`]).
const MAGIC: f32 = 12_582_912.0;

/// The tail (fewer than 8 values, into lanes 0..) and the lane sums, shared by both levels.
#[inline(always)]
fn finish(rest: &[f32], top: f32, t: f32, mut dot: [f32; 8], mut yy: [f32; 8]) -> f64 {
    for (j, &v) in rest.iter().enumerate() {
        let y = (((t * v).min(top) - 0.5) + MAGIC) - MAGIC + 0.5;
        dot[j] += y * v;
        yy[j] += y * y;
    }
    let dot: f32 = dot.iter().sum();
    let yy: f32 = yy.iter().sum();
    dot as f64 / (yy as f64).sqrt()
}

/// Write the best levels `k_i` of `rr` (any scale; only |rr_i| matters) for `half = 2^(B−1)`
/// levels per sign into `k` (same length).
pub fn best_levels(rr: &[f32], half: usize, k: &mut [u8]) {
    debug_assert!((2..=128).contains(&half) && k.len() == rr.len());
    let a: Vec<f32> = rr.iter().map(|v| v.abs()).collect();
    let amax = a.iter().fold(0f32, |m, &v| m.max(v));
    if amax == 0.0 {
        k.fill(0);
        return;
    }
    let tmax = half as f32 / amax;
    let (lo, hi) = (0.25f32.ln(), 4f32.ln());
    let grid = |i: usize| tmax * (lo + (hi - lo) * i as f32 / (COARSE - 1) as f32).exp();
    let mut best = (f64::MIN, 0usize);
    for i in 0..COARSE {
        let c = cosine(&a, half, grid(i));
        if c > best.0 {
            best = (c, i);
        }
    }
    let (t0, t1) = (
        grid(best.1.saturating_sub(1)),
        grid((best.1 + 1).min(COARSE - 1)),
    );
    let mut t_best = grid(best.1);
    let mut c_best = best.0;
    for j in 0..=FINE {
        let t = t0 + (t1 - t0) * j as f32 / FINE as f32;
        let c = cosine(&a, half, t);
        if c > c_best {
            c_best = c;
            t_best = t;
        }
    }
    let top = half as f32 - 0.5;
    for (ki, &v) in k.iter_mut().zip(&a) {
        *ki = (t_best * v).min(top) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Exact optimum by enumerating every critical scale (the paper's algorithm, O(d·half·log)).
    fn exact_best(a: &[f32], half: usize) -> f64 {
        let mut ts: Vec<f32> = Vec::new();
        for &v in a {
            if v > 0.0 {
                for l in 1..half {
                    ts.push(l as f32 / v * 1.000_001);
                }
            }
        }
        ts.push(1e-6);
        ts.iter()
            .map(|&t| cosine(a, half, t))
            .fold(f64::MIN, f64::max)
    }

    #[test]
    fn grid_search_is_close_to_the_exact_optimum() {
        let mut r = Rng::new(5);
        for &half in &[2usize, 4, 8] {
            for _ in 0..5 {
                let x: Vec<f32> = (0..96).map(|_| r.normal() as f32).collect();
                let mut k = vec![0u8; x.len()];
                best_levels(&x, half, &mut k);
                let a: Vec<f32> = x.iter().map(|v| v.abs()).collect();
                let (mut dot, mut yy) = (0f64, 0f64);
                for (&ki, &v) in k.iter().zip(&a) {
                    let y = ki as f64 + 0.5;
                    dot += y * v as f64;
                    yy += y * y;
                }
                let got = dot / yy.sqrt();
                let want = exact_best(&a, half);
                assert!(
                    got <= want + 1e-4 && want - got < 2e-3 * want,
                    "{got} vs {want}"
                );
                assert!(k.iter().all(|&v| (v as usize) < half));
            }
        }
    }

    #[test]
    fn cosine_is_bit_identical_at_every_level() {
        let mut r = Rng::new(9);
        for len in [1usize, 7, 8, 9, 63, 384] {
            let a: Vec<f32> = (0..len).map(|_| (r.normal() as f32).abs()).collect();
            for half in [2usize, 8, 128] {
                let t = half as f32 / a.iter().fold(0f32, |m, &v| m.max(v)) * 0.7;
                let s = cosine_scalar(&a, half, t);
                assert_eq!(s.to_bits(), cosine(&a, half, t).to_bits());
                #[cfg(target_arch = "x86_64")]
                if crate::simd::detected() >= crate::simd::SimdLevel::Avx2 {
                    // SAFETY: AVX2 checked just above.
                    let v = unsafe { cosine_avx2(&a, half, t) };
                    assert_eq!(s.to_bits(), v.to_bits());
                }
            }
        }
    }

    #[test]
    fn zero_vector_gets_level_zero() {
        let mut k = vec![9u8; 8];
        best_levels(&[0.0; 8], 4, &mut k);
        assert_eq!(k, vec![0u8; 8]);
    }
}
