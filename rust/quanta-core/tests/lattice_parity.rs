//! Lattice kernels × every SIMD level this CPU runs: bit-identical to the scalar twin (the SIMD
//! code performs the same IEEE operations per lane, without FMA), every codebook size 1..=67
//! and block boundaries, with ties.

use quanta_core::kernels::lattice::{self, scalar};
use quanta_core::lattice::zn::ZnSphereCodec;
use quanta_core::rng::Rng;
use quanta_core::SimdLevel;

fn levels() -> Vec<SimdLevel> {
    let lv = SimdLevel::available();
    if !lv.contains(&SimdLevel::Avx2) {
        eprintln!("SKIPPED: SIMD level avx2 not supported by this CPU");
    }
    lv
}

#[test]
fn score_argmax_matches_scalar_exactly() {
    let mut r = Rng::new(21);
    for lvl in levels() {
        for n in (1..=67).chain([127, 128, 129, 255, 256, 257, 2091]) {
            for k in [1usize, 3, 8, 24] {
                // small integers: many exact ties, exercising the lowest-index rule
                let t: Vec<f32> = (0..n * k).map(|_| r.below(4) as f32).collect();
                let x: Vec<f32> = (0..k).map(|_| r.below(3) as f32 * 0.5).collect();
                let (mut s0, mut s1) = (vec![0f32; n], vec![0f32; n]);
                let a = scalar::score_argmax(&t, &x, &mut s0);
                let b = lattice::score_argmax_with(lvl, &t, &x, &mut s1);
                assert_eq!(a, b, "{lvl:?} n={n} k={k}");
                assert_eq!(s0, s1, "{lvl:?} n={n} k={k}");
                let xf: Vec<f32> = (0..k).map(|_| r.normal() as f32).collect();
                let a = scalar::score_argmax(&t, &xf, &mut s0);
                let b = lattice::score_argmax_with(lvl, &t, &xf, &mut s1);
                assert_eq!((a, &s0), (b, &s1), "{lvl:?} n={n} k={k} float");
            }
        }
    }
}

#[test]
fn e8_nearest_matches_scalar_exactly() {
    let mut r = Rng::new(22);
    for lvl in levels() {
        for blocks in [0usize, 1, 2, 7, 64] {
            let mut x: Vec<f32> = (0..blocks * 8).map(|_| (r.normal() * 4.0) as f32).collect();
            for v in x.iter_mut().step_by(3) {
                *v = (*v * 2.0).round() * 0.5; // ties
            }
            let (mut a, mut b) = (vec![0f32; x.len()], vec![0f32; x.len()]);
            scalar::e8_nearest(&x, &mut a);
            lattice::e8_nearest_with(lvl, &x, &mut b);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "{lvl:?} blocks={blocks}");
        }
    }
}

#[test]
fn zn_unrank_matches_scalar_exactly() {
    // every level against the scalar twin, on codecs of many dimensions up to the plan's 64
    // (mask words, 4- and 8-lane count chunks, 16-lane row stores and their tails) and on
    // batches of every small length
    let mut r = Rng::new(22);
    let mut tried = 0;
    for d in [
        1usize, 2, 3, 5, 8, 15, 16, 17, 23, 24, 31, 32, 33, 40, 47, 48, 63, 64,
    ] {
        for r2 in [1u32, 2, 3, 5, 9, 17, 36, 79, 200] {
            let Ok(c) = ZnSphereCodec::new(d, r2) else {
                continue;
            };
            let Some(plan) = c.decode_plan() else {
                continue;
            };
            tried += 1;
            let nv = c.nv();
            for n in (0..=5).chain([257]) {
                let codes: Vec<u64> = (0..n)
                    .map(|i| match i {
                        0 => (nv - 1) as u64,
                        _ => ((r.next_u64() as u128 * nv) >> 64) as u64,
                    })
                    .collect();
                let mut want = vec![f32::NAN; n * d];
                scalar::zn_unrank(plan, &codes, &mut want);
                for lvl in levels() {
                    let mut got = vec![f32::NAN; n * d];
                    lattice::zn_unrank_with(lvl, plan, &codes, &mut got);
                    let same = got
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{lvl:?} d={d} r2={r2} n={n}");
                }
            }
        }
    }
    assert!(tried > 80, "{tried} codecs");
}
