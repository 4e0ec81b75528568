//! Every Hamming variant this CPU can run, bit-exact against the scalar twins: the per-code
//! kernels ([`Kernel`]) over every code size and code count around their unroll boundaries,
//! and the bit-sliced tile scan over code sizes, tile fill levels, thresholds and both query
//! forms (set-bit and clear-bit plane lists). Variants the CPU lacks are reported as skipped
//! on stderr, never silently passed.

use quanta_core::kernels::hamming::select::{plan, Override};
use quanta_core::kernels::hamming::sliced::{lane_mask, SlicedQuery, Tile, LANES};
use quanta_core::kernels::hamming::{self, Kernel};
use quanta_core::rng::Rng;
use quanta_core::SimdLevel;

fn bytes(n: usize, r: &mut Rng) -> Vec<u8> {
    (0..n).map(|_| r.next_u64() as u8).collect()
}

fn kernels() -> Vec<Kernel> {
    let top = *SimdLevel::available().last().unwrap();
    let ks = Kernel::available(top);
    for k in Kernel::ALL {
        if !ks.contains(&k) {
            eprintln!(
                "SKIPPED: Hamming kernel {} not supported by this CPU",
                k.name()
            );
        }
    }
    ks
}

#[test]
fn every_kernel_matches_scalar_every_code_size_and_count() {
    let mut r = Rng::new(31);
    for k in kernels() {
        for cs in (0..=67).chain([72, 96, 128, 160, 256]) {
            for n in [0usize, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100] {
                let q = bytes(cs, &mut r);
                let codes = bytes(cs * n, &mut r);
                let mut want = vec![0u32; n];
                let mut got = vec![u32::MAX; n];
                hamming::scalar::hamming_many(&q, &codes, &mut want);
                hamming::hamming_many_kernel(k, &q, &codes, &mut got);
                assert_eq!(want, got, "{} code_size={cs} n={n}", k.name());
            }
        }
    }
}

#[test]
fn kernel_availability_respects_the_level_cap() {
    for lvl in SimdLevel::available() {
        let ks = Kernel::available(lvl);
        assert!(ks.contains(&Kernel::Scalar));
        if lvl < SimdLevel::Avx512 {
            assert!(!ks.contains(&Kernel::Vpopcnt), "{lvl:?}");
        }
        if lvl < SimdLevel::Avx2 {
            assert!(!ks.contains(&Kernel::Lut), "{lvl:?}");
        }
        // the measured plan only ever picks a runnable variant
        for cs in [1usize, 8, 16, 24, 32, 64, 200] {
            let p = plan(lvl, cs);
            assert!(p.kernel.runs_at(lvl), "{lvl:?} cs={cs}: {p:?}");
            assert!(p.sliced_min_queries >= 1);
        }
    }
}

#[test]
fn override_names_parse() {
    assert_eq!(Override::parse("auto"), Ok(None));
    assert_eq!(Override::parse(""), Ok(None));
    assert_eq!(Override::parse(" Sliced "), Ok(Some(Override::Sliced)));
    for k in Kernel::ALL {
        assert_eq!(Override::parse(k.name()), Ok(Some(Override::Kernel(k))));
        assert_eq!(Kernel::parse(&k.name().to_uppercase()), Some(k));
    }
    assert!(Override::parse("avx9").is_err());
}

fn sliced_levels() -> Vec<SimdLevel> {
    let lv = SimdLevel::available();
    if !lv.contains(&SimdLevel::Avx2) {
        eprintln!("SKIPPED: bit-sliced AVX2 variant not supported by this CPU");
    }
    lv
}

/// Bit `l` of the mask of codes with distance < thr, by brute force.
fn brute_mask(q: &[u8], codes: &[u8], cs: usize, thr: u32) -> [u64; 4] {
    let mut m = [0u64; 4];
    for (l, c) in codes.chunks_exact(cs).enumerate() {
        if hamming::scalar::hamming(q, c) < thr {
            m[l / 64] |= 1 << (l % 64);
        }
    }
    m
}

#[test]
fn sliced_tile_scan_matches_brute_force() {
    let mut r = Rng::new(32);
    for lvl in sliced_levels() {
        for cs in [1usize, 2, 3, 5, 7, 8, 9, 16, 24, 32, 40, 64, 72, 128] {
            let nbits = 8 * cs as u32;
            let mut tile = Tile::new(cs);
            let mut scratch = Vec::new();
            for n in [1usize, 2, 31, 32, 33, 100, 255, LANES] {
                let codes = bytes(n * cs, &mut r);
                tile.load_with(lvl, &codes, cs);
                // random queries, plus extremes that take the set-bit / clear-bit forms, and a
                // stored code (distance 0)
                let mut qs: Vec<Vec<u8>> = (0..3).map(|_| bytes(cs, &mut r)).collect();
                qs.push(vec![0; cs]);
                qs.push(vec![0xff; cs]);
                qs.push(vec![0x01; cs]);
                qs.push(codes[(n / 2) * cs..(n / 2 + 1) * cs].to_vec());
                for q in &qs {
                    let sq = SlicedQuery::new(q);
                    for thr in [
                        0,
                        1,
                        2,
                        nbits / 3,
                        nbits / 2,
                        nbits / 2 + 1,
                        nbits,
                        nbits + 1,
                        u32::MAX,
                    ] {
                        let want = brute_mask(q, &codes, cs, thr);
                        let got = tile.below_with(lvl, &sq, thr, &mut scratch);
                        assert_eq!(got, want, "{lvl:?} cs={cs} n={n} thr={thr} q={q:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn lane_masks() {
    assert_eq!(lane_mask(0), [0; 4]);
    assert_eq!(lane_mask(1), [1, 0, 0, 0]);
    assert_eq!(lane_mask(64), [u64::MAX, 0, 0, 0]);
    assert_eq!(lane_mask(65), [u64::MAX, 1, 0, 0]);
    assert_eq!(lane_mask(LANES), [u64::MAX; 4]);
}
