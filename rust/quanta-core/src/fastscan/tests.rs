use super::*;
use crate::rng::Rng;
use crate::simd::SimdLevel;

#[test]
fn pack_unpack_roundtrip_in_pieces() {
    let mut r = Rng::new(3);
    for m in [1usize, 2, 5, 16] {
        let n = 77;
        let codes: Vec<u8> = (0..n * m).map(|_| r.below(16) as u8).collect();
        let mut blocks = vec![0u8; packed_len(n, m)];
        // appended in uneven pieces, as successive `add` calls do
        let cuts = [0usize, 5, 31, 32, 50, 77];
        for w in cuts.windows(2) {
            pack_codes(&codes[w[0] * m..w[1] * m], m, w[0], &mut blocks);
        }
        let mut c = vec![0u8; m];
        for i in 0..n {
            unpack_code(&blocks, m, i, &mut c);
            assert_eq!(&c[..], &codes[i * m..(i + 1) * m], "m={m} i={i}");
        }
        // the spec's byte formula
        let m2 = padded_m(m);
        for b in 0..n_blocks(n) {
            for q in 0..m {
                for j in 0..16 {
                    let get = |s: usize| if s < n { codes[s * m + q] } else { 0 };
                    let want = get(32 * b + j) | (get(32 * b + 16 + j) << 4);
                    assert_eq!(blocks[b * 16 * m2 + 16 * q + j], want);
                }
            }
        }
    }
}

#[test]
fn quantized_distance_error_bound() {
    // |approx - float ADC| <= M / (2a) (+ float rounding), for every code
    let mut r = Rng::new(11);
    for m in [1usize, 4, 7, 16, 64] {
        let nq = 3;
        let tables: Vec<f32> = (0..nq * m * 16)
            .map(|_| (r.normal() * 50.0 + 100.0) as f32)
            .collect();
        let luts = QuantizedLuts::new(&tables, nq, m, 16);
        let n = 200;
        let codes: Vec<u8> = (0..n * m).map(|_| r.below(16) as u8).collect();
        let mut blocks = vec![0u8; packed_len(n, m)];
        pack_codes(&codes, m, 0, &mut blocks);
        struct Row(Vec<u16>);
        impl BlockSink for Row {
            fn threshold(&self) -> u16 {
                u16::MAX
            }
            fn push(&mut self, i: usize, acc: u16) {
                assert_eq!(i, self.0.len());
                self.0.push(acc);
            }
        }
        let mut sinks: Vec<Row> = (0..nq).map(|_| Row(Vec::new())).collect();
        scan_blocks(crate::simd::level(), &luts, 0, &blocks, n, &mut sinks);
        for (q, s) in sinks.iter().enumerate() {
            let a = luts.scale(q);
            // the table quantization really uses the whole u8 range
            assert!(luts.lut(q)[..16 * m].contains(&255));
            let bound = m as f32 / (2.0 * a);
            for (i, &acc) in s.0.iter().enumerate() {
                let exact: f64 = (0..m)
                    .map(|j| tables[(q * m + j) * 16 + codes[i * m + j] as usize] as f64)
                    .sum();
                let approx = luts.to_distance(q, acc) as f64;
                let err = (approx - exact).abs();
                assert!(
                    err <= bound as f64 * 1.0001 + 1e-4 * exact.abs(),
                    "m={m} err={err} bound={bound}"
                );
            }
        }
    }
}

#[test]
fn constant_table_has_unit_scale() {
    let luts = QuantizedLuts::new(&[2.5f32; 32], 1, 2, 16);
    assert_eq!(luts.scale(0), 1.0);
    assert_eq!(luts.bias(0), 5.0);
    assert!(luts.lut(0).iter().all(|&v| v == 0));
}

#[test]
fn heap_sink_threshold_never_drops_a_better_candidate() {
    // threshold() is conservative: any acc whose key would enter the heap passes it
    let mut r = Rng::new(2);
    let tables: Vec<f32> = (0..8 * 16).map(|_| r.normal() as f32 * 3.0).collect();
    let luts = QuantizedLuts::new(&tables, 1, 8, 16);
    let mut heap = TopK::new(5);
    for i in 0..5 {
        heap.push(luts.to_distance(0, 100 + 37 * i), i as i64);
    }
    let sink = HeapSink::new(&mut heap, &luts, 0, |i| i as i64);
    let thr = sink.threshold();
    let worst = luts.to_distance(0, 100 + 37 * 4);
    for acc in 0..=u16::MAX {
        if luts.to_distance(0, acc) <= worst {
            assert!(acc <= thr, "acc {acc} would be dropped by threshold {thr}");
        }
    }
    let _ = SimdLevel::Scalar;
}
