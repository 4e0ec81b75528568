//! Lloyd-Max quantizers of the standard normal distribution, computed numerically once.
//!
//! Why numerically and not a table: the centroids follow from two conditions (each boundary is
//! the midpoint of its neighbours, each centroid the conditional mean of its cell), so a few
//! hundred Lloyd iterations reproduce Max's (1960) tables to 1e-9 from first principles and any
//! bit width gets the same treatment. The conditional mean has a closed form,
//! `E[X | a < X < b] = (φ(a) − φ(b)) / (Φ(b) − Φ(a))`; only the cell mass `Φ(b) − Φ(a)` is
//! integrated (Simpson's rule; Rust's std has no `erf`).

use std::sync::OnceLock;

/// Centroids (ascending, `2^bits` of them) and the `2^bits − 1` inner boundaries.
#[derive(Debug, Clone, PartialEq)]
pub struct Codebook {
    /// Reconstruction levels.
    pub centroids: Vec<f64>,
    /// Decision thresholds: a value maps to the cell of the number of boundaries `<=` it.
    pub boundaries: Vec<f64>,
    /// Mean squared error `E[(X − q(X))²]` for `X ~ N(0, 1)`.
    pub distortion: f64,
}

/// Integration range: the mass of N(0, 1) beyond ±12 is below 1e-32.
const LIMIT: f64 = 12.0;

fn pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// `∫_a^b f` by composite Simpson's rule on a grid fine enough for 1e-12 on smooth `f`.
fn simpson(a: f64, b: f64, f: impl Fn(f64) -> f64) -> f64 {
    if b <= a {
        return 0.0;
    }
    let n = (((b - a) * 200.0).ceil() as usize).max(2) * 2;
    let h = (b - a) / n as f64;
    let mut s = f(a) + f(b);
    for i in 1..n {
        s += f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    s * h / 3.0
}

fn compute(bits: u32) -> Codebook {
    let k = 1usize << bits;
    // start from equal-width cells over ±3σ; Lloyd's iteration converges from any ordered start
    let mut c: Vec<f64> = (0..k)
        .map(|j| -3.0 + 6.0 * (j as f64 + 0.5) / k as f64)
        .collect();
    let mut t = vec![0f64; k - 1];
    for _ in 0..1000 {
        for j in 0..k - 1 {
            t[j] = 0.5 * (c[j] + c[j + 1]);
        }
        let mut moved = 0f64;
        for j in 0..k {
            let a = if j == 0 { -LIMIT } else { t[j - 1] };
            let b = if j == k - 1 { LIMIT } else { t[j] };
            let mass = simpson(a, b, pdf);
            let next = (pdf(a) - pdf(b)) / mass;
            moved = moved.max((next - c[j]).abs());
            c[j] = next;
        }
        if moved < 1e-13 {
            break;
        }
    }
    for j in 0..k - 1 {
        t[j] = 0.5 * (c[j] + c[j + 1]);
    }
    let distortion = (0..k)
        .map(|j| {
            let a = if j == 0 { -LIMIT } else { t[j - 1] };
            let b = if j == k - 1 { LIMIT } else { t[j] };
            simpson(a, b, |x| (x - c[j]) * (x - c[j]) * pdf(x))
        })
        .sum();
    Codebook {
        centroids: c,
        boundaries: t,
        distortion,
    }
}

/// The Lloyd-Max codebook of N(0, 1) at `bits` (1..=4) bits, computed on first use.
pub fn codebook(bits: u32) -> &'static Codebook {
    static BOOKS: [OnceLock<Codebook>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    assert!(
        (1..=4).contains(&bits),
        "lloyd_max: bits {bits} not in 1..=4"
    );
    BOOKS[bits as usize - 1].get_or_init(|| compute(bits))
}

impl Codebook {
    /// Index of the cell of `v` (the number of boundaries below it; ties go up).
    #[inline]
    pub fn cell(&self, v: f32) -> usize {
        let v = v as f64;
        self.boundaries.iter().take_while(|&&t| t <= v).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_max_1960() {
        // Max (1960), Table I: distortion of the optimal quantizer of N(0, 1)
        for (bits, want) in [(1, 0.3634), (2, 0.1175), (3, 0.03454), (4, 0.009497)] {
            let cb = codebook(bits);
            assert!(
                (cb.distortion - want).abs() < 1e-4 * want.max(0.01) * 10.0,
                "{bits}: {}",
                cb.distortion
            );
            // symmetric about 0
            let k = cb.centroids.len();
            for j in 0..k {
                assert!((cb.centroids[j] + cb.centroids[k - 1 - j]).abs() < 1e-9);
            }
        }
        assert!((codebook(1).centroids[1] - (2.0 / std::f64::consts::PI).sqrt()).abs() < 1e-9);
        assert!((codebook(2).centroids[3] - 1.5104).abs() < 1e-3);
        assert_eq!((codebook(2).cell(-0.01), codebook(2).cell(0.01)), (1, 2));
        assert_eq!(codebook(2).cell(-5.0), 0);
        assert_eq!(codebook(2).cell(5.0), 3);
    }
}
