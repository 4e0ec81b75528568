use super::*;
use crate::rng::Rng;

fn gaussian(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n * d).map(|_| r.normal() as f32).collect()
}

/// Normalised errors `(est − true)/(‖r‖‖q'‖)` and how many exceed ε₀ · bound, over all pairs.
fn errors(nbits: usize, eps: f32) -> (Vec<f64>, usize, usize) {
    let (d, n, nq) = (96, 1500, 20);
    let x = gaussian(n, d, 1);
    let q = gaussian(nq, d, 2);
    let mut c = RaBitQ::new(d, nbits, Metric::L2, 3).unwrap();
    c.train(&x).unwrap();
    let e = c.encode_unchecked(&x, &Control::new()).unwrap();
    let (m, nf, eb) = (c.m(), c.nf(), c.ex_bytes());
    let mut errs = Vec::new();
    let mut outside = 0;
    let mut scratch = Vec::new();
    for qi in q.chunks(d) {
        let qt = c.query_terms(qi, &mut scratch);
        for i in 0..n {
            let (est, bound) = c.estimate_ip(
                &qt,
                &e.signs[i * m..(i + 1) * m],
                &e.ex[i * eb..(i + 1) * eb],
                &e.factors[i * nf..(i + 1) * nf],
            );
            let xi = &x[i * d..(i + 1) * d];
            let truth: f64 = (0..d)
                .map(|j| (xi[j] - c.centroid()[j]) as f64 * (qi[j] - c.centroid()[j]) as f64)
                .sum();
            let rn = (e.factors[i * nf] as f64).sqrt();
            let err = est as f64 - truth;
            errs.push(err / (rn * qt.norm as f64));
            if err.abs() > (eps * bound) as f64 {
                outside += 1;
            }
        }
    }
    let total = errs.len();
    (errs, outside, total)
}

#[test]
fn estimator_is_unbiased() {
    for nbits in [1, 2, 4] {
        let (errs, _, n) = errors(nbits, 1.9);
        let mean = errs.iter().sum::<f64>() / n as f64;
        let var = errs.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / n as f64;
        // CLT: the mean of n (nearly independent) errors has std sqrt(var / n); 5 σ
        assert!(
            mean.abs() < 5.0 * (var / n as f64).sqrt(),
            "nbits={nbits}: mean {mean}, std {}",
            var.sqrt()
        );
    }
}

#[test]
fn more_bits_smaller_error() {
    let std = |nbits| {
        let (e, _, n) = errors(nbits, 1.9);
        (e.iter().map(|v| v * v).sum::<f64>() / n as f64).sqrt()
    };
    let (s1, s2, s4) = (std(1), std(2), std(4));
    assert!(s2 < 0.7 * s1 && s4 < 0.4 * s2, "{s1} {s2} {s4}");
}

#[test]
fn error_bound_holds_with_its_stated_probability() {
    for nbits in [1, 3] {
        for eps in [1.9f32, 3.0] {
            let (_, outside, n) = errors(nbits, eps);
            let p = failure_probability(eps as f64);
            let frac = outside as f64 / n as f64;
            // the pairs share 20 queries, so count them as 20 × (n/20) with a generous 4 σ
            let slack = 4.0 * (p * (1.0 - p) / n as f64).sqrt() * (20f64).sqrt();
            assert!(
                frac <= p + slack,
                "nbits={nbits} eps={eps}: {frac} > {p} + {slack}"
            );
        }
    }
}

#[test]
fn failure_probability_matches_the_normal_tail() {
    assert!((failure_probability(1.96) - 0.05).abs() < 1e-3);
    assert!((failure_probability(3.0) - 0.0027).abs() < 1e-4);
}

#[test]
fn flat_codes_round_trip_and_decode_is_close() {
    let d = 30; // not a multiple of 4 or 8
    let x = gaussian(50, d, 9);
    for nbits in [1, 2, 5] {
        let mut c = RaBitQ::new(d, nbits, Metric::InnerProduct, 1).unwrap();
        c.train(&x).unwrap();
        let e = c.encode_unchecked(&x, &Control::new()).unwrap();
        let flat = c.to_flat(&e);
        assert_eq!(flat.len(), 50 * c.code_size());
        let back = c.from_flat(&flat).unwrap();
        assert_eq!(back.signs, e.signs);
        assert_eq!(back.ex, e.ex);
        assert_eq!(back.factors, e.factors);
        // reconstruction error shrinks with bits
        let (m, nf, eb) = (c.m(), c.nf(), c.ex_bytes());
        let mut err = 0f64;
        let mut out = vec![0f32; d];
        for i in 0..50 {
            c.decode_one(
                &e.signs[i * m..(i + 1) * m],
                &e.ex[i * eb..(i + 1) * eb],
                &e.factors[i * nf..(i + 1) * nf],
                &mut out,
            );
            err += (0..d)
                .map(|j| ((out[j] - x[i * d + j]) as f64).powi(2))
                .sum::<f64>();
        }
        let total: f64 = x.iter().map(|v| (*v as f64).powi(2)).sum();
        let rel = err / total;
        let want = match nbits {
            1 => 0.45,
            2 => 0.15,
            _ => 0.01,
        };
        assert!(rel < want, "nbits={nbits}: relative error {rel}");
    }
    let c = RaBitQ::new(d, 2, Metric::L2, 1).unwrap();
    assert!(c.from_flat(&[0u8; 3]).is_err());
    let mut bad = vec![0u8; c.code_size()];
    let at = c.code_size() - 4;
    bad[at..].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(c.from_flat(&bad).is_err());
}

#[test]
fn rejects_bad_parameters() {
    assert!(RaBitQ::new(0, 1, Metric::L2, 0).is_err());
    assert!(RaBitQ::new(8, 0, Metric::L2, 0).is_err());
    assert!(RaBitQ::new(8, 9, Metric::L2, 0).is_err());
    let mut c = RaBitQ::new(8, 1, Metric::L2, 0).unwrap();
    assert!(c.require_trained().is_err());
    assert!(c.train(&[]).is_err());
    assert!(c.train(&[f32::NAN; 8]).is_err());
}
