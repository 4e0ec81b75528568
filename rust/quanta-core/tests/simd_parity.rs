//! Every kernel × every SIMD level this CPU runs × every tail length 0..=67 and block boundaries.
//!
//! Float kernels: within 1e-5·(|ref| + scale) of the scalar twin. Kernels whose result is an index
//! or a comparison (argmin, find_below, non-finite scan) must match bit-exactly.
//! A level compiled in but not supported by this CPU is reported as skipped on stderr, never
//! silently passed.

use quanta_core::kernels::l2;
use quanta_core::rng::Rng;
use quanta_core::SimdLevel;

fn lengths() -> impl Iterator<Item = usize> {
    (0..=67).chain([127, 128, 129, 255, 256, 257, 1000])
}

fn vecf(n: usize, r: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| (r.normal() * 3.0) as f32).collect()
}

fn levels() -> Vec<SimdLevel> {
    let lv = SimdLevel::available();
    for l in [SimdLevel::Avx2, SimdLevel::Avx512] {
        if !lv.contains(&l) {
            eprintln!("SKIPPED: SIMD level {} not supported by this CPU", l.name());
        }
    }
    lv
}

fn close(a: f32, b: f32, scale: f32) -> bool {
    (a - b).abs() <= 1e-5 * (a.abs().max(b.abs()) + scale)
}

#[test]
fn l2sqr_and_ip_match_scalar() {
    let mut r = Rng::new(11);
    for lvl in levels() {
        for n in lengths() {
            let a = vecf(n, &mut r);
            let b = vecf(n, &mut r);
            let scale: f32 = a.iter().chain(&b).map(|v| v * v).sum();
            let (rl, ri) = (l2::scalar::l2sqr(&a, &b), l2::scalar::inner_product(&a, &b));
            let (gl, gi) = (
                l2::l2sqr_with(lvl, &a, &b),
                l2::inner_product_with(lvl, &a, &b),
            );
            assert!(close(rl, gl, scale), "{lvl:?} n={n} l2 {rl} vs {gl}");
            assert!(close(ri, gi, scale), "{lvl:?} n={n} ip {ri} vs {gi}");
        }
    }
}

#[test]
fn argmin_matches_scalar_exactly_with_ties() {
    let mut r = Rng::new(12);
    for lvl in levels() {
        for n in lengths().filter(|&n| n > 0) {
            // small integer values: many exact ties, exercising the lowest-index rule
            let base: Vec<f32> = (0..n).map(|_| r.below(4) as f32).collect();
            let ip: Vec<f32> = (0..n).map(|_| r.below(3) as f32).collect();
            assert_eq!(
                l2::scalar::argmin_shifted(&base, &ip),
                l2::argmin_shifted_with(lvl, &base, &ip),
                "{lvl:?} n={n}"
            );
            let base = vecf(n, &mut r);
            let ip = vecf(n, &mut r);
            assert_eq!(
                l2::scalar::argmin_shifted(&base, &ip),
                l2::argmin_shifted_with(lvl, &base, &ip)
            );
        }
    }
}

#[test]
fn argmin2_matches_scalar_exactly_with_ties() {
    let mut r = Rng::new(13);
    for lvl in levels() {
        for n in lengths().filter(|&n| n > 0) {
            // small integer values: ties for the minimum (lowest index wins, and the second
            // smallest of the multiset equals the smallest) in every lane arrangement
            let base: Vec<f32> = (0..n).map(|_| r.below(4) as f32).collect();
            let ip: Vec<f32> = (0..n).map(|_| r.below(3) as f32).collect();
            assert_eq!(
                l2::scalar::argmin2_shifted(&base, &ip),
                l2::argmin2_shifted_with(lvl, &base, &ip),
                "{lvl:?} n={n} (ties)"
            );
            let base = vecf(n, &mut r);
            let ip = vecf(n, &mut r);
            assert_eq!(
                l2::scalar::argmin2_shifted(&base, &ip),
                l2::argmin2_shifted_with(lvl, &base, &ip),
                "{lvl:?} n={n}"
            );
        }
    }
}

#[test]
fn find_below_matches_scalar() {
    let mut r = Rng::new(13);
    for lvl in levels() {
        for n in lengths() {
            let v = vecf(n, &mut r);
            for start in [0, 1, 7, 8, 9, 16, n / 2, n] {
                for thr in [-4.0f32, -1.0, 0.0, 2.0, f32::INFINITY] {
                    let start = start.min(n);
                    assert_eq!(
                        l2::scalar::find_below(&v, start, thr),
                        l2::find_below_with(lvl, &v, start, thr),
                        "{lvl:?} n={n} start={start} thr={thr}"
                    );
                }
            }
        }
    }
}

#[test]
fn non_finite_scan_matches_scalar() {
    let mut r = Rng::new(14);
    for lvl in levels() {
        for n in lengths() {
            let mut v = vecf(n, &mut r);
            assert_eq!(l2::first_non_finite_with(lvl, &v), None);
            if n > 0 {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let p = r.below(n);
                    let old = v[p];
                    v[p] = bad;
                    assert_eq!(l2::first_non_finite_with(lvl, &v), Some(p), "{lvl:?} n={n}");
                    assert_eq!(l2::scalar::first_non_finite(&v), Some(p));
                    v[p] = old;
                }
            }
        }
    }
}

#[test]
fn gemm_tile_matches_scalar_tile() {
    let mut r = Rng::new(15);
    for lvl in levels() {
        for &(na, nb, d) in &[
            (1, 1, 1),
            (3, 5, 7),
            (17, 33, 67),
            (64, 129, 128),
            (5, 1024, 31),
        ] {
            let a = vecf(na * d, &mut r);
            let b = vecf(nb * d, &mut r);
            let mut want = vec![0f32; na * nb];
            let mut got = vec![0f32; na * nb];
            quanta_core::distance::ip_tile(SimdLevel::Scalar, &a, &b, d, &mut want);
            quanta_core::distance::ip_tile(lvl, &a, &b, d, &mut got);
            for (x, y) in want.iter().zip(&got) {
                assert!(
                    close(*x, *y, 9.0 * d as f32),
                    "{lvl:?} {na}x{nb}x{d}: {x} vs {y}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hamming kernels: integer results, bit-exact against the scalar twin.

use quanta_core::kernels::hamming;

fn hamming_levels() -> Vec<SimdLevel> {
    let lv = levels();
    for &l in &lv {
        let eff = hamming::effective_level(l);
        if eff != l {
            eprintln!(
                "SKIPPED: hamming kernel at level {} runs as {} (missing VPOPCNTDQ/POPCNT)",
                l.name(),
                eff.name()
            );
        }
    }
    lv
}

fn bytes(n: usize, r: &mut Rng) -> Vec<u8> {
    (0..n).map(|_| r.next_u64() as u8).collect()
}

#[test]
fn hamming_pair_matches_scalar_all_tails() {
    let mut r = Rng::new(21);
    for lvl in hamming_levels() {
        for n in lengths().chain([511, 512, 513]) {
            let a = bytes(n, &mut r);
            let b = bytes(n, &mut r);
            assert_eq!(
                hamming::scalar::hamming(&a, &b),
                hamming::hamming_with(lvl, &a, &b),
                "{lvl:?} n={n}"
            );
            // extremes: all bits differ / none
            let c: Vec<u8> = a.iter().map(|x| !x).collect();
            assert_eq!(hamming::hamming_with(lvl, &a, &c), 8 * n as u32);
            assert_eq!(hamming::hamming_with(lvl, &a, &a), 0);
        }
    }
}

#[test]
fn hamming_many_matches_scalar_every_width_and_count() {
    let mut r = Rng::new(22);
    for lvl in hamming_levels() {
        // every code size 0..=67 bytes (tails) plus the specialised 8/16/32/64 and wide ones
        for cs in (0..=67).chain([96, 128, 256]) {
            // code counts around every unroll (4 / 8 codes per vector) boundary
            for n in [0usize, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 100] {
                let q = bytes(cs, &mut r);
                let codes = bytes(cs * n, &mut r);
                let mut want = vec![0u32; n];
                let mut got = vec![u32::MAX; n];
                hamming::scalar::hamming_many(&q, &codes, &mut want);
                hamming::hamming_many_with(lvl, &q, &codes, &mut got);
                assert_eq!(want, got, "{lvl:?} code_size={cs} n={n}");
                for (j, c) in codes.chunks_exact(cs.max(1)).enumerate().take(n) {
                    if cs > 0 {
                        assert_eq!(want[j], hamming::scalar::hamming(&q, c));
                    }
                }
            }
        }
    }
}

#[test]
fn find_below_u32_matches_scalar() {
    let mut r = Rng::new(23);
    for lvl in hamming_levels() {
        for n in lengths() {
            let v: Vec<u32> = (0..n).map(|_| r.below(40) as u32).collect();
            for start in [0, 1, 7, 8, 9, 16, n / 2, n] {
                for thr in [0u32, 1, 5, 20, 39, 40, u32::MAX] {
                    let start = start.min(n);
                    assert_eq!(
                        hamming::scalar::find_below_u32(&v, start, thr),
                        hamming::find_below_u32_with(lvl, &v, start, thr),
                        "{lvl:?} n={n} start={start} thr={thr}"
                    );
                }
            }
        }
    }
}

// ------------------------------------------------------------------ scalar-quantizer kernels

mod sq_kernels {
    use super::{close, lengths, levels, vecf};
    use quanta_core::kernels::sq;
    use quanta_core::rng::Rng;
    use quanta_core::sq::half;

    const CODES: usize = 5;

    fn codes(cs: usize, r: &mut Rng) -> Vec<u8> {
        (0..CODES * cs).map(|_| r.next_u64() as u8).collect()
    }

    /// Codes holding `n` halves of random normals (the rest of each code random bytes).
    fn half_codes(n: usize, cs: usize, enc: fn(f32) -> u16, r: &mut Rng) -> Vec<u8> {
        let mut c = codes(cs, r);
        for code in c.chunks_exact_mut(cs) {
            for h in code[..2 * n].chunks_exact_mut(2) {
                h.copy_from_slice(&enc((r.normal() * 3.0) as f32).to_le_bytes());
            }
        }
        c
    }

    /// Compare `run(level)` with `run(Scalar)` per code, scale = Σ |terms| from `terms`.
    fn check(
        what: &str,
        n: usize,
        run: impl Fn(quanta_core::SimdLevel, &mut [f32]),
        scale: impl Fn(usize) -> f32,
    ) {
        let mut want = [0f32; CODES];
        run(quanta_core::SimdLevel::Scalar, &mut want);
        for lvl in levels() {
            let mut got = [0f32; CODES];
            run(lvl, &mut got);
            for j in 0..CODES {
                assert!(
                    close(want[j], got[j], scale(j)),
                    "{what} {lvl:?} n={n} code {j}: {} vs {}",
                    want[j],
                    got[j]
                );
            }
        }
    }

    #[test]
    fn u8_kernels_match_scalar_all_tails() {
        let mut r = Rng::new(31);
        for n in lengths() {
            let (qp, s, w) = (vecf(n, &mut r), vecf(n, &mut r), vecf(n, &mut r));
            let cs = n + 3; // a stride larger than the code: kernels must not assume cs == d
            let c = codes(cs, &mut r);
            let sc = |j: usize| -> f32 {
                (0..n)
                    .map(|i| {
                        let x = s[i] * c[j * cs + i] as f32;
                        qp[i] * qp[i] + x * x + (w[i] * c[j * cs + i] as f32).abs()
                    })
                    .sum()
            };
            check("l2_u8", n, |l, o| sq::l2_u8_with(l, &qp, &s, &c, cs, o), sc);
            check("dot_u8", n, |l, o| sq::dot_u8_with(l, &w, &c, cs, o), sc);
        }
    }

    #[test]
    fn packed_kernels_match_scalar_all_tails_and_widths() {
        let mut r = Rng::new(32);
        let lut: [f32; 16] = std::array::from_fn(|_| (r.normal() * 2.0) as f32);
        for bits in [2usize, 3, 4] {
            for n in lengths() {
                let (qp, s, w) = (vecf(n, &mut r), vecf(n, &mut r), vecf(n, &mut r));
                let cs = (n * bits).div_ceil(8) + 1;
                let c = codes(cs, &mut r);
                let sc = |j: usize| -> f32 {
                    (0..n)
                        .map(|i| {
                            let v = lut[sq::scalar::packed_index(&c[j * cs..], bits, i)];
                            qp[i] * qp[i] + (s[i] * v).powi(2) + (w[i] * v).abs()
                        })
                        .sum()
                };
                check(
                    &format!("l2_packed{bits}"),
                    n,
                    |l, o| sq::l2_packed_with(l, bits, &qp, &s, &lut, &c, cs, o),
                    sc,
                );
                check(
                    &format!("dot_packed{bits}"),
                    n,
                    |l, o| sq::dot_packed_with(l, bits, &w, &lut, &c, cs, o),
                    sc,
                );
            }
        }
    }

    #[test]
    fn half_kernels_match_scalar_all_tails() {
        let mut r = Rng::new(33);
        for n in lengths() {
            let (q, w) = (vecf(n, &mut r), vecf(n, &mut r));
            let cs = 2 * n + 2;
            type Pair = (fn(f32) -> u16, fn(u16) -> f32);
            let f16: Pair = (half::f32_to_f16, sq::scalar::f16_to_f32);
            let bf16: Pair = (half::f32_to_bf16, sq::scalar::bf16_to_f32);
            for (name, (enc, dec)) in [("f16", f16), ("bf16", bf16)] {
                let c = half_codes(n, cs, enc, &mut r);
                let sc = |j: usize| -> f32 {
                    (0..n)
                        .map(|i| {
                            let p = j * cs + 2 * i;
                            let v = dec(u16::from_le_bytes([c[p], c[p + 1]]));
                            q[i] * q[i] + v * v + (w[i] * v).abs()
                        })
                        .sum()
                };
                if name == "f16" {
                    check("l2_f16", n, |l, o| sq::l2_f16_with(l, &q, &c, cs, o), sc);
                    check("dot_f16", n, |l, o| sq::dot_f16_with(l, &w, &c, cs, o), sc);
                } else {
                    check("l2_bf16", n, |l, o| sq::l2_bf16_with(l, &q, &c, cs, o), sc);
                    check(
                        "dot_bf16",
                        n,
                        |l, o| sq::dot_bf16_with(l, &w, &c, cs, o),
                        sc,
                    );
                }
            }
        }
    }
}
