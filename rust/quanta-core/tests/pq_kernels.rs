//! PQ kernels × every SIMD level × tail lengths: the table scan must be bit-identical to the
//! scalar twin (same adds in the same order) for every M, the specialised ones included, and to
//! a plain reference sum; the encoder's inner products must be close to the scalar twin.

use quanta_core::kernels::pq::{self, TABLE_STRIDE};
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

/// The specification: even sub-quantizers into one sum, odd into another, then even + odd.
fn reference(table: &[f32], m: usize, code: &[u8]) -> f32 {
    let (mut even, mut odd) = (0f32, 0f32);
    for (j, &c) in code.iter().enumerate() {
        let v = table[j * TABLE_STRIDE + c as usize];
        if j % 2 == 0 {
            even += v;
        } else {
            odd += v;
        }
    }
    let _ = m;
    even + odd
}

#[test]
fn adc_block_matches_reference_bit_exactly() {
    let mut r = Rng::new(21);
    for m in [1usize, 2, 3, 4, 5, 7, 8, 12, 16, 20, 24, 32, 48, 64, 96] {
        let table: Vec<f32> = (0..m * TABLE_STRIDE)
            .map(|_| (r.normal() * 10.0) as f32)
            .collect();
        for n in (0..=67).chain([127, 128, 129, 255, 256, 257, 1000]) {
            let codes: Vec<u8> = (0..n * m).map(|_| r.next_u64() as u8).collect();
            let want: Vec<f32> = codes
                .chunks_exact(m)
                .map(|c| reference(&table, m, c))
                .collect();
            let mut got = vec![0f32; n];
            pq::adc_block(&table, m, &codes, &mut got);
            assert_eq!(
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "load kernel m={m} n={n}"
            );
            for lvl in levels() {
                let mut g = vec![f32::NAN; n];
                pq::adc_block_gather_with(lvl, &table, m, &codes, &mut g);
                assert_eq!(
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    g.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{lvl:?} gather m={m} n={n}"
                );
            }
        }
    }
}

#[test]
fn ip_transposed_matches_scalar() {
    let mut r = Rng::new(22);
    for lvl in levels() {
        for dsub in [1usize, 2, 3, 4, 8, 16, 17, 32] {
            for nc in [
                1usize, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65, 127, 128, 129, 256,
            ] {
                let x: Vec<f32> = (0..dsub).map(|_| r.normal() as f32).collect();
                let ct: Vec<f32> = (0..dsub * nc).map(|_| r.normal() as f32).collect();
                let mut want = vec![0f32; nc];
                pq::scalar::ip_transposed(&x, &ct, &mut want);
                let mut got = vec![f32::NAN; nc];
                pq::ip_transposed_with(lvl, &x, &ct, &mut got);
                let scale: f32 = x.iter().map(|v| v * v).sum::<f32>().sqrt() * 4.0;
                for (a, b) in want.iter().zip(&got) {
                    assert!(
                        (a - b).abs() <= 1e-5 * (a.abs() + scale),
                        "{lvl:?} dsub={dsub} nc={nc}: {a} vs {b}"
                    );
                }
            }
        }
    }
}
