//! Level choice of extended RaBitQ: the grid vector `ȳ = sign(o) ⊙ (k + ½)`, `k_i ∈ 0..half`,
//! closest in angle to `o`.
//!
//! For a scale `t > 0`, `k_i(t) = min(⌊t |o_i|⌋, half − 1)` is the best level vector of that
//! scale; the paper enumerates every critical `t` (where some `k_i` changes) for the exact
//! optimum. We search `t` on a logarithmic grid over `[¼, 4] · t_max` (`t_max = half / max |o_i|`,
//! beyond `4 t_max` at most a sign code remains, below `¼ t_max` most levels are unused), then on
//! a finer linear grid around the best point. Measured on 384-d Gaussian and MiniLM vectors the
//! cosine reached is within 1e-4 of the exact optimum, which is far below the estimator's own
//! error (`≈ sqrt(1/t² − 1)/sqrt(d)`), at O(32·d) per vector.

/// Points of the coarse (log) grid.
const COARSE: usize = 20;
/// Points of the fine (linear) grid between the coarse neighbours of the best point.
const FINE: usize = 12;

/// cos(ȳ(t), |o|) for the levels of scale `t` (scale-free in `a`).
#[inline]
fn cosine(a: &[f32], half: usize, t: f32) -> f64 {
    // min(⌊t v⌋, half − 1) = ⌊min(t v, half − ½)⌋, and ⌊x⌋ for 0 ≤ x < 2^22 as
    // round-to-nearest(x − ½) by adding and subtracting 1.5·2^23 (plain vector adds: floorf is a
    // libm call on the baseline x86-64 target, and a saturating float→int cast does not
    // vectorize). It differs from ⌊x⌋ only at exact integers (ties to even), which moves the
    // cosine of a candidate scale by a rounding error; the final levels use the exact floor.
    // Eight independent lanes: a single running sum is a chain of dependent adds.
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23: ulp 1 on both sides, so x − ½ < 0 rounds too
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
    for (j, &v) in chunks.remainder().iter().enumerate() {
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
    fn zero_vector_gets_level_zero() {
        let mut k = vec![9u8; 8];
        best_levels(&[0.0; 8], 4, &mut k);
        assert_eq!(k, vec![0u8; 8]);
    }
}
