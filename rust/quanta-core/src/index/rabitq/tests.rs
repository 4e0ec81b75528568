use super::*;
use crate::index::{read_any_bytes, IdSet};
use crate::rng::Rng;

fn data(n: usize, d: usize, seed: u64) -> Vec<f32> {
    // clustered data (a few directions) so neighbours are meaningful
    let mut r = Rng::new(seed);
    let centers: Vec<f32> = (0..8 * d).map(|_| r.normal() as f32).collect();
    (0..n)
        .flat_map(|i| {
            let c = (i * 7) % 8;
            let base: Vec<f32> = (0..d)
                .map(|j| centers[c * d + j] + 0.6 * r.normal() as f32)
                .collect();
            base
        })
        .collect()
}

/// Exhaustive top-k by the exact (every-plane) estimate.
fn brute(ix: &IndexRaBitQ, q: &[f32], k: usize) -> Vec<Vec<(f32, i64)>> {
    let d = ix.d();
    let mut f = vec![0f32; ix.codec.nf()];
    let mut scratch = Vec::new();
    q.chunks(d)
        .map(|qi| {
            let t = ix.codec.query_terms(qi, &mut scratch);
            let mut h = TopK::new(k);
            for i in 0..ix.ntotal {
                h.push(ix.exact_key(&t, i, &mut f), i as i64);
            }
            h.into_sorted()
        })
        .collect()
}

fn build(nbits: usize, metric: Metric, d: usize, n: usize) -> (IndexRaBitQ, Vec<f32>) {
    let x = data(n, d, 1);
    let mut ix = IndexRaBitQ::new(d, nbits, metric, 5).unwrap();
    ix.train(&x).unwrap();
    ix.add(&x, &Control::new()).unwrap();
    (ix, data(24, d, 2))
}

#[test]
fn one_bit_fast_scan_equals_the_exhaustive_estimator() {
    for metric in [Metric::L2, Metric::InnerProduct] {
        for &d in &[64usize, 30] {
            let (ix, q) = build(1, metric, d, 3000 + d);
            let k = 10;
            let (dist, ids) = ix.search_filtered(&q, k, None, &Control::new()).unwrap();
            let want = brute(&ix, &q, k);
            let sign = if metric == Metric::InnerProduct {
                -1.0
            } else {
                1.0
            };
            for (qi, w) in want.iter().enumerate() {
                for (j, &(key, id)) in w.iter().enumerate() {
                    let (gd, gi) = (dist[qi * k + j], ids[qi * k + j]);
                    assert!(
                        (gd - sign * key).abs() <= 1e-4 * key.abs().max(1.0),
                        "{gd} vs {key}"
                    );
                    // ids equal unless tied
                    if gi != id {
                        assert!((gd - sign * key).abs() <= 1e-5 * key.abs().max(1.0));
                    }
                }
            }
        }
    }
}

#[test]
fn multi_bit_pruning_keeps_the_exhaustive_top_k() {
    for nbits in [2, 4] {
        let (mut ix, q) = build(nbits, Metric::L2, 64, 4000);
        ix.set_k_factor(0).unwrap();
        let k = 10;
        let (_, ids) = ix.search_filtered(&q, k, None, &Control::new()).unwrap();
        let want = brute(&ix, &q, k);
        let mut hit = 0;
        for (qi, w) in want.iter().enumerate() {
            for &(_, id) in w {
                hit += ids[qi * k..(qi + 1) * k].contains(&id) as usize;
            }
        }
        // a miss needs an estimator outside its ε₀ = 1.9 bound (≤ 5.7 % per pair), and then
        // also a pair that ranks differently: in practice none; allow 2 %
        assert!(
            hit as f64 >= 0.98 * (k * want.len()) as f64,
            "nbits={nbits}: {hit}"
        );
    }
}

/// Fraction of the exhaustive top-k found.
fn hits(ids: &[i64], want: &[Vec<(f32, i64)>], k: usize) -> f64 {
    let mut hit = 0;
    for (qi, w) in want.iter().enumerate() {
        for &(_, id) in w {
            hit += ids[qi * k..(qi + 1) * k].contains(&id) as usize;
        }
    }
    hit as f64 / (k * want.len()) as f64
}

#[test]
fn shortlist_rescoring_is_exact_when_it_holds_everything() {
    // a shortlist of every vector: the result is the exhaustive estimator whatever the planes
    for metric in [Metric::L2, Metric::InnerProduct] {
        for (nbits, d) in [(1, 30), (2, 64), (3, 36), (4, 64)] {
            let (mut ix, q) = build(nbits, metric, d, 700);
            let k = 7;
            let want = brute(&ix, &q, k);
            for planes in 1..=nbits {
                ix.set_scan_planes(planes).unwrap();
                let p = SearchParams {
                    k_factor: Some(100),
                    ..Default::default()
                };
                let (dist, ids) = ix.search(&q, k, &p, &Control::new()).unwrap();
                let sign = if metric == Metric::L2 { 1.0 } else { -1.0 };
                for (qi, w) in want.iter().enumerate() {
                    for (j, &(key, _)) in w.iter().enumerate() {
                        let gd = dist[qi * k + j];
                        assert!(
                            (gd - sign * key).abs() <= 1e-4 * key.abs().max(1.0),
                            "nbits={nbits} planes={planes}: {gd} vs {key}"
                        );
                    }
                }
                assert!(hits(&ids, &want, k) > 0.99, "nbits={nbits} planes={planes}");
            }
        }
    }
}

#[test]
fn shortlist_of_more_planes_finds_more() {
    // the estimate from more planes is closer to the full one: its shortlist misses fewer
    let (mut ix, q) = build(4, Metric::L2, 64, 4000);
    let k = 10;
    let want = brute(&ix, &q, k);
    let mut got = Vec::new();
    for planes in [1, 2, 4] {
        ix.set_scan_planes(planes).unwrap();
        ix.set_k_factor(2).unwrap();
        let (_, ids) = ix.search_filtered(&q, k, None, &Control::new()).unwrap();
        got.push(hits(&ids, &want, k));
    }
    // all four planes: only the u8-table rounding separates the shortlist from the estimator
    assert!(got[2] >= 0.97, "{got:?}");
    // (1 plane 0.30, 2 planes 0.68 on this clustered set, where the neighbours are close)
    assert!(got[0] + 0.1 < got[1] && got[1] + 0.1 < got[2], "{got:?}");
}

#[test]
fn shortlist_settings_are_checked_and_saved() {
    let (mut ix, q) = build(3, Metric::InnerProduct, 32, 500);
    assert!(ix.set_scan_planes(0).is_err());
    assert!(ix.set_scan_planes(4).is_err());
    ix.set_scan_planes(3).unwrap();
    ix.set_k_factor(4).unwrap();
    let back = IndexRaBitQ::from_file(
        &crate::io::FileReader::from_bytes(ix.to_file().to_bytes().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!((back.k_factor(), back.scan_planes()), (4, 3));
    let a = ix.search_filtered(&q, 5, None, &Control::new()).unwrap();
    let b = back.search_filtered(&q, 5, None, &Control::new()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn filter_remove_persist_and_bounds() {
    let (mut ix, q) = build(3, Metric::L2, 32, 1000);
    let k = 5;
    let sel = IdSelector::Allow(IdSet::from_ids(
        &(0..1000).filter(|i| i % 3 == 0).collect::<Vec<_>>(),
    ));
    let (_, ids) = ix
        .search_filtered(&q, k, Some(&sel), &Control::new())
        .unwrap();
    assert!(ids.iter().all(|&i| i % 3 == 0));
    let (d1, i1, b1) = ix.search_with_bounds(&q, k, None, &Control::new()).unwrap();
    assert!(b1.iter().all(|&b| b > 0.0 && b.is_finite()));
    let bytes = ix.to_file().to_bytes().unwrap();
    let back = read_any_bytes(&bytes).unwrap();
    let (d2, i2) = back
        .search(&q, k, &SearchParams::default(), &Control::new())
        .unwrap();
    assert_eq!((d1.clone(), i1.clone()), (d2, i2));
    let rec = ix.reconstruct(3).unwrap();
    assert_eq!(rec.len(), 32);
    let removed = ix.remove_ids(&IdSelector::Allow(IdSet::from_ids(&[0, 1, 2])));
    assert_eq!((removed, ix.ntotal()), (3, 997));
    let (_, i3) = ix.search_filtered(&q, k, None, &Control::new()).unwrap();
    for (a, b) in i1.iter().zip(&i3) {
        if *a >= 3 {
            assert!(i3.contains(&(a - 3)) || *b >= 0);
        }
    }
    ix.reset();
    assert_eq!(ix.ntotal(), 0);
    let (_, i4) = ix.search_filtered(&q, k, None, &Control::new()).unwrap();
    assert!(i4.iter().all(|&i| i == -1));
}

#[test]
fn wide_d_past_256_groups() {
    // m = 300 > 256: wide fast-scan tables (rescaled so u16 sums stay exact); results are still
    // the exhaustive estimator
    let (ix, q) = build(1, Metric::L2, 1200, 300);
    let (_, ids) = ix
        .search_filtered(&q[..2 * 1200], 3, None, &Control::new())
        .unwrap();
    let want = brute(&ix, &q[..2 * 1200], 3);
    for (qi, w) in want.iter().enumerate() {
        assert_eq!(ids[qi * 3], w[0].1);
    }
}

#[test]
fn errors_are_typed() {
    let mut ix = IndexRaBitQ::new(8, 2, Metric::L2, 0).unwrap();
    assert!(matches!(
        ix.add(&[0.0; 8], &Control::new()),
        Err(Error::NotTrained(_))
    ));
    ix.train(&[1.0; 16]).unwrap();
    assert!(ix.add(&[f32::NAN; 8], &Control::new()).is_err());
    assert!(ix
        .search_filtered(&[0.0; 7], 1, None, &Control::new())
        .is_err());
    assert!(ix
        .search_filtered(&[0.0; 8], 0, None, &Control::new())
        .is_err());
}
