//! Unit tests of the PQ codec and `IndexPQ` (the faiss comparisons are in the Python suite).

use super::*;
use crate::control::Control;
use crate::distance::Metric;
use crate::error::Error;
use crate::index::IndexPQ;
use crate::rng::Rng;

fn data(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n * d).map(|_| r.normal() as f32).collect()
}

#[test]
fn rejects_bad_parameters() {
    let e = ProductQuantizer::new(10, 3, 8).unwrap_err().to_string();
    assert!(e.contains("[1, 2, 5, 10]"), "{e}");
    assert!(ProductQuantizer::new(8, 2, 0).is_err());
    assert!(ProductQuantizer::new(8, 2, 9).is_err());
    assert!(ProductQuantizer::new(0, 1, 8).is_err());
    assert!(ProductQuantizer::from_centroids(2, 3, 4, &[0.0; 24]).is_err()); // ksub not 2^k
    assert!(ProductQuantizer::from_centroids(2, 4, 4, &[0.0; 31]).is_err());
    let pq = ProductQuantizer::new(8, 2, 8).unwrap();
    assert!(matches!(
        pq.encode(&[0.0; 8], &Control::new()),
        Err(Error::NotTrained(_))
    ));
}

#[test]
fn train_encode_decode_roundtrip_all_nbits() {
    let (n, d) = (2000, 16);
    let x = data(n, d, 1);
    for nbits in 1..=8 {
        let mut pq = ProductQuantizer::new(d, 4, nbits).unwrap();
        let p = PqTrainParams {
            niter: 5,
            ..Default::default()
        };
        pq.train(&x, &p, &Control::new()).unwrap();
        let codes = pq.encode(&x, &Control::new()).unwrap();
        assert_eq!(codes.len(), n * 4);
        assert!(codes.iter().all(|&c| (c as usize) < pq.ksub()));
        let rec = pq.decode(&codes).unwrap();
        // decode ∘ encode is a projection: re-encoding a reconstruction gives the same code
        assert_eq!(pq.encode(&rec, &Control::new()).unwrap(), codes);
        // the bias terms average exactly the per-centroid errors
        let mse = pq.quantization_mse(&x, &Control::new()).unwrap();
        assert!(mse > 0.0 && mse < 16.0);
        if nbits < 8 {
            let bad = vec![pq.ksub() as u8; 4];
            assert!(pq.decode(&bad).is_err());
        }
    }
}

#[test]
fn adc_search_equals_brute_force_on_tables() {
    let (n, d, m) = (3000, 32, 8);
    let x = data(n, d, 2);
    let q = data(7, d, 3);
    for metric in [Metric::L2, Metric::InnerProduct] {
        let mut idx = IndexPQ::new(d, m, 6, metric).unwrap();
        let p = PqTrainParams {
            niter: 4,
            ..Default::default()
        };
        idx.train(&x, &p, &Control::new()).unwrap();
        idx.add(&x, &Control::new()).unwrap();
        let tables = idx.pq().compute_distance_tables(&q, metric).unwrap();
        let ks = idx.pq().ksub();
        for k in [1usize, 10, 3500] {
            let (dist, ids) = idx
                .search(&q, k, SearchMode::Adc, false, &Control::new())
                .unwrap();
            for qi in 0..7 {
                let t = &tables[qi * m * ks..(qi + 1) * m * ks];
                let mut all: Vec<(f32, i64)> = idx
                    .codes()
                    .chunks_exact(m)
                    .enumerate()
                    .map(|(i, c)| {
                        let s: f32 = c
                            .iter()
                            .enumerate()
                            .map(|(j, &b)| t[j * ks + b as usize])
                            .sum();
                        (if metric == Metric::L2 { s } else { -s }, i as i64)
                    })
                    .collect();
                all.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
                for r in 0..k.min(n) {
                    let got = dist[qi * k + r];
                    let want = if metric == Metric::L2 {
                        all[r].0
                    } else {
                        -all[r].0
                    };
                    assert!(
                        (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{got} vs {want}"
                    );
                }
                if k > n {
                    assert_eq!(ids[qi * k + n], -1);
                }
            }
        }
    }
}

#[test]
fn sdc_and_bias_correction() {
    let (n, d, m) = (2000, 16, 4);
    let x = data(n, d, 4);
    let mut idx = IndexPQ::new(d, m, 8, Metric::L2).unwrap();
    let p = PqTrainParams {
        niter: 4,
        ..Default::default()
    };
    idx.train(&x, &p, &Control::new()).unwrap();
    idx.add(&x[..500 * d], &Control::new()).unwrap();
    let q = &x[..3 * d];
    let sdc = idx.pq().sdc_tables().unwrap();
    let (ds, is) = idx
        .search(q, 5, SearchMode::Sdc, false, &Control::new())
        .unwrap();
    let (db, ib) = idx
        .search(q, 5, SearchMode::Sdc, true, &Control::new())
        .unwrap();
    let qc = idx.pq().encode(q, &Control::new()).unwrap();
    let ks = 256;
    for qi in 0..3 {
        // the query is in the base: its own code is at SDC distance 0
        assert_eq!(ds[qi * 5], 0.0);
        let id = is[qi * 5 + 1] as usize;
        let code = &idx.codes()[id * m..(id + 1) * m];
        let want: f32 = (0..m)
            .map(|j| sdc[(j * ks + qc[qi * m + j] as usize) * ks + code[j] as usize])
            .sum();
        assert!((ds[qi * 5 + 1] - want).abs() <= 1e-3 * (1.0 + want));
        // bias-corrected: every distance is raised by Σ ξ(q) + Σ ξ(y) >= 0
        let bias = idx.pq().bias();
        let idb = ib[qi * 5] as usize;
        let codeb = &idx.codes()[idb * m..(idb + 1) * m];
        let plain: f32 = (0..m)
            .map(|j| sdc[(j * ks + qc[qi * m + j] as usize) * ks + codeb[j] as usize])
            .sum();
        let corr: f32 = (0..m)
            .map(|j| bias[j * ks + qc[qi * m + j] as usize] + bias[j * ks + codeb[j] as usize])
            .sum();
        assert!((db[qi * 5] - (plain + corr)).abs() <= 1e-3 * (1.0 + plain + corr));
    }
    let ip = IndexPQ::new(d, m, 8, Metric::InnerProduct).unwrap();
    assert!(ip
        .search(q, 1, SearchMode::Adc, true, &Control::new())
        .is_err());
}
