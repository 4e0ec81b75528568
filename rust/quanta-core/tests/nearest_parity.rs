//! The nearest-centroid kernels added for issue 15 × every SIMD level this CPU runs: the panel
//! micro-kernel (float: close to the scalar twin) over every row count 1..=MR and inner
//! dimensions 1..=PANEL_MAX_D; the candidate-selection passes (bit-exact) over tail lengths;
//! and `nearest2_block` against a float64 brute force.

use quanta_core::distance::{nearest2_block, Nearest2};
use quanta_core::kernels::{l2, panel};
use quanta_core::rng::Rng;
use quanta_core::SimdLevel;

fn levels() -> Vec<SimdLevel> {
    let lv = SimdLevel::available();
    for l in [SimdLevel::Avx2, SimdLevel::Avx512] {
        if !lv.contains(&l) {
            eprintln!("SKIPPED: SIMD level {} not supported by this CPU", l.name());
        }
    }
    lv
}

fn vecf(n: usize, r: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| (r.normal() * 3.0) as f32).collect()
}

#[test]
fn panel_kernel_matches_scalar() {
    let mut r = Rng::new(21);
    for lvl in levels() {
        for d in (1..=40).chain([63, 64, 65, 127, 128, 200, 256]) {
            for k in [1usize, 15, 16, 17, 40] {
                let c = vecf(k * d, &mut r);
                let p = panel::Panels::pack(&c, d);
                assert_eq!(p.len(), k.div_ceil(panel::NR));
                for rows in 1..=panel::MR {
                    let x = vecf(rows * d, &mut r);
                    let ldo = panel::NR + 3;
                    for q in 0..p.len() {
                        let mut want = vec![f32::NAN; rows * ldo];
                        let mut got = vec![f32::NAN; rows * ldo];
                        panel::scalar::ip_rows_panel(&x, rows, d, p.panel(q), &mut want, ldo);
                        panel::ip_rows_panel_with(lvl, &x, rows, d, p.panel(q), &mut got, ldo);
                        for rr in 0..rows {
                            for cc in 0..panel::NR {
                                let j = q * panel::NR + cc;
                                let (a, b) = (want[rr * ldo + cc], got[rr * ldo + cc]);
                                let exact: f64 = if j < k {
                                    (0..d)
                                        .map(|t| x[rr * d + t] as f64 * c[j * d + t] as f64)
                                        .sum()
                                } else {
                                    0.0 // padding columns are zero
                                };
                                let scale = 1e-5 * (d as f64) * 9.0;
                                assert!(
                                    (a as f64 - exact).abs() <= scale
                                        && (b as f64 - exact).abs() <= scale,
                                    "{lvl:?} d={d} k={k} rows={rows} col={j}: {a} {b} vs {exact}"
                                );
                            }
                            // columns past NR in a row are not touched
                            assert!(got[rr * ldo + panel::NR].is_nan());
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn selection_passes_match_scalar_exactly() {
    let mut r = Rng::new(22);
    for lvl in levels() {
        for n in (0..=67).chain([255, 256, 257, 1000]) {
            // integer values: many exact ties and values equal to the threshold
            let base: Vec<f32> = (0..n).map(|_| r.below(6) as f32).collect();
            let ip: Vec<f32> = (0..n).map(|_| r.below(4) as f32 - 1.0).collect();
            for thr in [-10.0f32, -1.0, 0.0, 2.0, 100.0] {
                let (mut want, mut got) = (Vec::new(), Vec::new());
                l2::scalar::collect_le_shifted(&base, &ip, thr, 5, &mut want);
                l2::collect_le_shifted_with(lvl, &base, &ip, thr, 5, &mut got);
                assert_eq!(got, want, "{lvl:?} n={n} thr={thr}");
            }
            for g in [1usize, 7, 8, 16, 64, 70] {
                let mut want = vec![f32::INFINITY; g];
                let mut got = vec![f32::INFINITY; g];
                l2::scalar::strided_min_shifted(&base, &ip, &mut want);
                l2::strided_min_shifted_with(lvl, &base, &ip, &mut got);
                assert_eq!(got, want, "{lvl:?} n={n} g={g}");
            }
        }
    }
}

#[test]
fn nearest2_block_matches_brute_force_at_every_level() {
    let mut r = Rng::new(23);
    for lvl in levels() {
        quanta_core::simd::set_level(lvl).unwrap();
        for (rows, k, d) in [
            (37usize, 50usize, 20usize),
            (13, 300, 64),
            (6, 17, 256),
            (9, 40, 300),
        ] {
            let x = vecf(rows * d, &mut r);
            let c = vecf(k * d, &mut r);
            let xn: Vec<f32> = x.chunks(d).map(|v| v.iter().map(|a| a * a).sum()).collect();
            let cn: Vec<f32> = c.chunks(d).map(|v| v.iter().map(|a| a * a).sum()).collect();
            let mut out = vec![Nearest2::default(); rows];
            nearest2_block(&x, &xn, &c, &cn, d, &mut out);
            for (i, o) in out.iter().enumerate() {
                let mut dist: Vec<(f64, usize)> = (0..k)
                    .map(|j| {
                        let s: f64 = (0..d)
                            .map(|t| (x[i * d + t] as f64 - c[j * d + t] as f64).powi(2))
                            .sum();
                        (s, j)
                    })
                    .collect();
                dist.sort_by(|a, b| a.0.total_cmp(&b.0));
                let tol = 1e-4 * (xn[i] as f64 + cn.iter().cloned().fold(0f32, f32::max) as f64);
                let (best, second) = (dist[0].0, dist[1].0);
                assert!(
                    (o.d1 as f64 - best).abs() <= tol,
                    "{lvl:?} d={d} row {i}: d1 {} vs {best}",
                    o.d1
                );
                assert!(
                    (o.d2 as f64 - second).abs() <= tol,
                    "{lvl:?} d={d} row {i}: d2 {} vs {second}",
                    o.d2
                );
                // the label is the nearest one unless two centroids are tied within rounding
                let lab = o.label as usize;
                assert!(
                    dist.iter().find(|p| p.1 == lab).unwrap().0 - best <= tol,
                    "{lvl:?} d={d} row {i}"
                );
            }
        }
    }
    quanta_core::simd::set_level(quanta_core::simd::detected()).unwrap();
}
