//! Fast-scan kernels × every SIMD level × tail lengths: accumulators bit-identical to the
//! scalar twin and to a plain reference sum, for random tables (including the extreme 0 / 255
//! entries) and codes; the candidate filter and the run scan identical at every level.

use quanta_core::fastscan::{
    n_blocks, pack_codes, packed_len, padded_m, scan_blocks, BlockSink, QuantizedLuts, BBS,
};
use quanta_core::kernels::fastscan::{accumulate_with, filter_le_with, lut_stride, quantize_with};
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

/// Random u8 table rows for `m` sub-quantizers, padded as the kernels expect; a third of the
/// entries are 255 so the sums reach the top of the u16 range for large M.
fn random_luts(r: &mut Rng, nq: usize, m: usize) -> Vec<u8> {
    let m2 = padded_m(m);
    let stride = lut_stride(m2);
    let mut luts = vec![0u8; nq * stride];
    for q in 0..nq {
        for e in &mut luts[q * stride..q * stride + 16 * m] {
            *e = match r.below(3) {
                0 => 255,
                _ => r.below(256) as u8,
            };
        }
    }
    luts
}

fn random_codes(r: &mut Rng, n: usize, m: usize) -> Vec<u8> {
    (0..n * m).map(|_| r.below(16) as u8).collect()
}

#[test]
fn accumulate_matches_reference_at_every_level() {
    let mut r = Rng::new(5);
    for m in [
        1usize, 2, 3, 4, 5, 7, 8, 15, 16, 17, 24, 32, 33, 48, 64, 127, 256,
    ] {
        let m2 = padded_m(m);
        for nb in [0usize, 1, 2, 3, 5] {
            let n = nb * BBS;
            let codes = random_codes(&mut r, n, m);
            let mut blocks = vec![0u8; packed_len(n, m)];
            pack_codes(&codes, m, 0, &mut blocks);
            for nq in 1..=4 {
                let luts = random_luts(&mut r, nq, m);
                let stride = lut_stride(m2);
                // reference: the plain sum over the unpacked codes
                let mut want = vec![0u16; nq * n];
                for q in 0..nq {
                    for i in 0..n {
                        let s: u32 = (0..m)
                            .map(|j| luts[q * stride + 16 * j + codes[i * m + j] as usize] as u32)
                            .sum();
                        want[q * n + i] = u16::try_from(s).expect("sum fits u16");
                    }
                }
                for &lvl in &levels() {
                    let mut got = vec![7u16; nq * n];
                    accumulate_with(lvl, &luts, nq, m2, &blocks, &mut got);
                    assert_eq!(got, want, "level {} m={m} nb={nb} nq={nq}", lvl.name());
                }
            }
        }
    }
}

#[test]
fn filter_matches_scalar_for_every_length() {
    let mut r = Rng::new(8);
    for len in 0..=67usize {
        let d: Vec<u16> = (0..len).map(|_| r.below(1000) as u16).collect();
        for thr in [0u16, 1, 250, 500, 999, u16::MAX] {
            let mut want = vec![0u32; len];
            let nw = filter_le_with(SimdLevel::Scalar, &d, thr, &mut want);
            let expect: Vec<u32> = (0..len as u32).filter(|&i| d[i as usize] <= thr).collect();
            assert_eq!(&want[..nw], &expect[..]);
            for &lvl in &levels() {
                let mut got = vec![0u32; len];
                let ng = filter_le_with(lvl, &d, thr, &mut got);
                assert_eq!(&got[..ng], &expect[..], "level {} len={len}", lvl.name());
            }
        }
    }
}

/// Collects every offer above nothing: the full accumulator row.
struct All(Vec<(usize, u16)>);
impl BlockSink for All {
    fn threshold(&self) -> u16 {
        u16::MAX
    }
    fn push(&mut self, i: usize, acc: u16) {
        self.0.push((i, acc));
    }
}

#[test]
fn scan_blocks_every_tail_length() {
    let mut r = Rng::new(13);
    for m in [1usize, 3, 8, 16, 31, 32] {
        for n in 0..=67usize {
            let codes = random_codes(&mut r, n, m);
            let mut blocks = vec![0u8; packed_len(n, m)];
            pack_codes(&codes, m, 0, &mut blocks);
            assert_eq!(blocks.len(), n_blocks(n) * 16 * padded_m(m));
            let nq = 1 + r.below(6);
            let tables: Vec<f32> = (0..nq * m * 16).map(|_| r.normal() as f32).collect();
            let luts = QuantizedLuts::new(&tables, nq, m, 16);
            let mut want: Option<Vec<Vec<(usize, u16)>>> = None;
            for &lvl in &levels() {
                let mut sinks: Vec<All> = (0..nq).map(|_| All(Vec::new())).collect();
                scan_blocks(lvl, &luts, 0, &blocks, n, &mut sinks);
                let got: Vec<Vec<(usize, u16)>> = sinks.into_iter().map(|s| s.0).collect();
                for (q, g) in got.iter().enumerate() {
                    assert_eq!(g.len(), n);
                    for &(i, acc) in g {
                        let s: u32 = (0..m)
                            .map(|j| luts.lut(q)[16 * j + codes[i * m + j] as usize] as u32)
                            .sum();
                        assert_eq!(acc as u32, s, "m={m} n={n} q={q} i={i}");
                    }
                }
                match &want {
                    None => want = Some(got),
                    Some(w) => assert_eq!(&got, w, "level {}", lvl.name()),
                }
            }
        }
    }
}

#[test]
fn quantize_matches_the_spec_at_every_level() {
    // every row count up to 67 and the largest, both row strides, with and without the added
    // term and coarse key, and tables with constant rows, ties and signed zeros
    let mut r = Rng::new(21);
    let mut ms: Vec<usize> = (1..=67).collect();
    ms.extend([128, 255, 256]);
    for &m in &ms {
        for stride in [16usize, 256] {
            for case in 0..4 {
                let gen = |r: &mut Rng| -> f32 {
                    match case {
                        0 => (r.normal() * 30.0) as f32,
                        1 => r.below(3) as f32 - 1.0,
                        2 => [0.0f32, -0.0, 1.5][r.below(3)],
                        _ => 7.25,
                    }
                };
                let t: Vec<f32> = (0..m * stride).map(|_| gen(&mut r)).collect();
                let p: Vec<f32> = (0..m * stride).map(|_| gen(&mut r)).collect();
                for (pt, key0) in [(None, 0.0f32), (Some(&p[..]), 0.0), (Some(&p[..]), -3.5)] {
                    // the spec: build the float table, then round_uint8_per_column
                    let f: Vec<f32> = (0..m * 16)
                        .map(|e| {
                            let (mm, j) = (e / 16, e % 16);
                            let i = mm * stride + j;
                            let v = pt.map_or(t[i], |p| t[i] + p[i]);
                            if mm == 0 {
                                v + key0
                            } else {
                                v
                            }
                        })
                        .collect();
                    let mins: Vec<f32> = f
                        .chunks(16)
                        .map(|row| row.iter().copied().fold(f32::INFINITY, f32::min))
                        .collect();
                    let span = f
                        .chunks(16)
                        .zip(&mins)
                        .map(|(row, &lo)| {
                            row.iter().copied().fold(f32::NEG_INFINITY, f32::max) - lo
                        })
                        .fold(0f32, f32::max);
                    let a = if span > 0.0 { 255.0 / span } else { 1.0 };
                    let b = mins.iter().fold(0f32, |s, &v| s + v);
                    let want: Vec<u8> = (0..m * 16)
                        .map(|e| ((f[e] - mins[e / 16]) * a + 0.5).floor().min(255.0) as u8)
                        .collect();
                    for lvl in std::iter::once(SimdLevel::Scalar).chain(levels()) {
                        let mut lut = vec![9u8; 16 * m + 5];
                        let (ga, gb) = quantize_with(lvl, &t, pt, key0, stride, &mut lut);
                        let tag = format!("level {} m={m} stride={stride} case={case}", lvl.name());
                        assert_eq!(&lut[..16 * m], &want[..], "{tag}");
                        assert_eq!(&lut[16 * m..], &[9u8; 5], "{tag}: wrote past the rows");
                        assert_eq!(ga.to_bits(), a.to_bits(), "{tag}");
                        assert_eq!(gb.to_bits(), b.to_bits(), "{tag}");
                    }
                }
            }
        }
    }
}

/// Row `m` of table `q` gets the maximum `cap_m` with `Σ_m cap_m = 65535` (the top of the u16
/// range: the first `65535 mod m` rows one more), other entries random below it: the tables
/// the quantizer builds past 256 sub-quantizers never exceed this (row-maximum sum <= 65535).
fn fitted_luts(r: &mut Rng, nq: usize, m: usize) -> Vec<u8> {
    let stride = lut_stride(padded_m(m));
    let mut luts = vec![0u8; nq * stride];
    let (base, extra) = (65535 / m, 65535 % m);
    for q in 0..nq {
        for j in 0..m {
            let cap = (base + (j < extra) as usize).min(255);
            let row = &mut luts[q * stride + 16 * j..q * stride + 16 * j + 16];
            for e in row.iter_mut() {
                *e = r.below(cap + 1) as u8;
            }
            row[r.below(16)] = cap as u8;
        }
    }
    luts
}

#[test]
fn accumulate_past_256_subquantizers_is_exact_at_every_level() {
    let mut r = Rng::new(6);
    for m in [257usize, 258, 383, 384, 512, 767, 768, 1536, 4096] {
        let m2 = padded_m(m);
        let stride = lut_stride(m2);
        for nb in [0usize, 1, 2, 3] {
            let n = nb * BBS;
            for nq in 1..=4 {
                let luts = fitted_luts(&mut r, nq, m);
                let mut codes = random_codes(&mut r, n, m);
                // vector 1 takes every row's maximum: the sum 65535 itself
                if n > 1 {
                    for j in 0..m {
                        let row = &luts[16 * j..16 * j + 16];
                        let best = (0..16).max_by_key(|&c| row[c]).unwrap();
                        codes[m + j] = best as u8;
                    }
                }
                let mut blocks = vec![0u8; packed_len(n, m)];
                pack_codes(&codes, m, 0, &mut blocks);
                let mut want = vec![0u16; nq * n];
                for q in 0..nq {
                    for i in 0..n {
                        let s: u32 = (0..m)
                            .map(|j| luts[q * stride + 16 * j + codes[i * m + j] as usize] as u32)
                            .sum();
                        want[q * n + i] = u16::try_from(s).expect("sum fits u16");
                    }
                }
                if n > 1 && m <= 65535 / 255 * 300 {
                    assert_eq!(want[1], 65535, "m={m}");
                }
                for &lvl in &levels() {
                    let mut got = vec![7u16; nq * n];
                    accumulate_with(lvl, &luts, nq, m2, &blocks, &mut got);
                    assert_eq!(got, want, "level {} m={m} nb={nb} nq={nq}", lvl.name());
                }
            }
        }
    }
}

#[test]
fn quantize_past_256_rows_fits_u16_and_matches_the_spec_at_every_level() {
    // the spec: round_uint8_per_column, with `a` lowered by (65535 − m) / sum while the table's
    // row-maximum sum exceeds 65535 (only possible past 256 rows)
    let mut r = Rng::new(22);
    for m in [257usize, 258, 300, 384, 512, 768, 1536, 4096] {
        for stride in [16usize, 256] {
            if stride == 256 && m > 1536 {
                continue;
            }
            // 0: every row as wide (the fit lowers a); 1: one wide row, the others narrow (a
            // stays 255 / span); 2: small integers with ties; 3: constant
            for case in 0..4 {
                let gen = |r: &mut Rng, mm: usize| -> f32 {
                    match case {
                        0 => r.below(16) as f32 * 2.0 + (r.normal() * 0.01) as f32,
                        1 if mm == 5 => (r.normal() * 100.0) as f32,
                        1 => (r.normal() * 0.5) as f32,
                        2 => r.below(3) as f32 - 1.0,
                        _ => 7.25,
                    }
                };
                let t: Vec<f32> = (0..m * stride).map(|i| gen(&mut r, i / stride)).collect();
                let p: Vec<f32> = (0..m * stride).map(|i| gen(&mut r, i / stride)).collect();
                for (pt, key0) in [(None, 0.0f32), (Some(&p[..]), -3.5)] {
                    let f: Vec<f32> = (0..m * 16)
                        .map(|e| {
                            let (mm, j) = (e / 16, e % 16);
                            let i = mm * stride + j;
                            let v = pt.map_or(t[i], |p| t[i] + p[i]);
                            if mm == 0 {
                                v + key0
                            } else {
                                v
                            }
                        })
                        .collect();
                    let mins: Vec<f32> = f
                        .chunks(16)
                        .map(|row| row.iter().copied().fold(f32::INFINITY, f32::min))
                        .collect();
                    let spans: Vec<f32> = f
                        .chunks(16)
                        .zip(&mins)
                        .map(|(row, &lo)| {
                            row.iter().copied().fold(f32::NEG_INFINITY, f32::max) - lo
                        })
                        .collect();
                    let span = spans.iter().copied().fold(0f32, f32::max);
                    let mut a = if span > 0.0 { 255.0 / span } else { 1.0 };
                    loop {
                        let sum: u32 = spans
                            .iter()
                            .map(|&s| (s * a + 0.5).floor().min(255.0) as u32)
                            .sum();
                        if sum <= 65535 {
                            break;
                        }
                        a *= (65535 - m) as f32 / sum as f32;
                    }
                    if case == 0 && m >= 384 {
                        assert!(a < 255.0 / span, "m={m}: the fit should lower a");
                    }
                    if case == 1 && m <= 768 {
                        assert_eq!(a, 255.0 / span, "m={m}: narrow rows need no fit");
                    }
                    let b = mins.iter().fold(0f32, |s, &v| s + v);
                    let want: Vec<u8> = (0..m * 16)
                        .map(|e| ((f[e] - mins[e / 16]) * a + 0.5).floor().min(255.0) as u8)
                        .collect();
                    let rms: u32 = want
                        .chunks(16)
                        .map(|row| *row.iter().max().unwrap() as u32)
                        .sum();
                    assert!(rms <= 65535, "m={m} case={case}: row-maximum sum {rms}");
                    for lvl in std::iter::once(SimdLevel::Scalar).chain(levels()) {
                        let mut lut = vec![9u8; 16 * m + 5];
                        let (ga, gb) = quantize_with(lvl, &t, pt, key0, stride, &mut lut);
                        let tag = format!("level {} m={m} stride={stride} case={case}", lvl.name());
                        assert_eq!(&lut[..16 * m], &want[..], "{tag}");
                        assert_eq!(&lut[16 * m..], &[9u8; 5], "{tag}: wrote past the rows");
                        assert_eq!(ga.to_bits(), a.to_bits(), "{tag}");
                        assert_eq!(gb.to_bits(), b.to_bits(), "{tag}");
                    }
                }
            }
        }
    }
}

#[test]
fn scan_blocks_past_256_subquantizers_every_tail_length() {
    // quantized tables (fitted to u16) of random float tables, the whole row offered at every
    // level, equal to the plain sum of the table entries
    let mut r = Rng::new(14);
    for m in [257usize, 384, 768, 1536] {
        for n in (0..=67usize).chain([100, 1000]) {
            if m > 384 && n % 7 != 0 {
                continue;
            }
            let codes = random_codes(&mut r, n, m);
            let mut blocks = vec![0u8; packed_len(n, m)];
            pack_codes(&codes, m, 0, &mut blocks);
            let nq = 1 + r.below(6);
            let tables: Vec<f32> = (0..nq * m * 16).map(|_| r.normal() as f32).collect();
            let luts = QuantizedLuts::new(&tables, nq, m, 16);
            let mut want: Option<Vec<Vec<(usize, u16)>>> = None;
            for &lvl in &levels() {
                let mut sinks: Vec<All> = (0..nq).map(|_| All(Vec::new())).collect();
                scan_blocks(lvl, &luts, 0, &blocks, n, &mut sinks);
                let got: Vec<Vec<(usize, u16)>> = sinks.into_iter().map(|s| s.0).collect();
                for (q, g) in got.iter().enumerate() {
                    assert_eq!(g.len(), n);
                    for &(i, acc) in g {
                        let s: u32 = (0..m)
                            .map(|j| luts.lut(q)[16 * j + codes[i * m + j] as usize] as u32)
                            .sum();
                        assert_eq!(acc as u32, s, "m={m} n={n} q={q} i={i}");
                    }
                }
                match &want {
                    None => want = Some(got),
                    Some(w) => assert_eq!(&got, w, "level {}", lvl.name()),
                }
            }
        }
    }
}
