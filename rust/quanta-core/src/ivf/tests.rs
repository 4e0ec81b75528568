//! Unit tests of the IVF indexes: search equals brute force over the probed lists, filters,
//! removal, persistence. Comparisons with faiss are in the Python suite.

use super::*;
use crate::control::Control;
use crate::distance::Metric;
use crate::io::Persist;
use crate::pq::PqTrainParams;
use crate::rng::Rng;

fn data(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n * d).map(|_| r.normal() as f32).collect()
}

fn small_params() -> (IvfTrainParams, PqTrainParams) {
    (
        IvfTrainParams {
            niter: 5,
            ..Default::default()
        },
        PqTrainParams {
            niter: 5,
            ..Default::default()
        },
    )
}

fn trained_ivfpq(metric: Metric, by_residual: bool, nbits: usize) -> (IndexIVFPQ, Vec<f32>) {
    let (n, d) = (3000, 16);
    let x = data(n, d, 1);
    let mut idx = IndexIVFPQ::new(d, 16, 4, nbits, metric, by_residual).unwrap();
    let (cp, pp) = small_params();
    idx.train(&x, &cp, &pp, &Control::new()).unwrap();
    idx.add(&x, &Control::new()).unwrap();
    (idx, x)
}

/// Brute-force reference: f64 direct-form distances of every entry of the probed lists.
fn brute(idx: &IndexIVFPQ, q: &[f32], nprobe: usize, k: usize) -> Vec<(f64, i64)> {
    let d = idx.d();
    let c = idx.centroids();
    let ip = idx.metric() == Metric::InnerProduct;
    let score = |a: &[f32], b: &[f32]| -> f64 {
        if ip {
            -a.iter()
                .zip(b)
                .map(|(x, y)| (*x as f64) * (*y as f64))
                .sum::<f64>()
        } else {
            a.iter()
                .zip(b)
                .map(|(x, y)| ((*x - *y) as f64).powi(2))
                .sum()
        }
    };
    let mut lists: Vec<(f64, usize)> = (0..idx.nlist())
        .map(|l| (score(q, &c[l * d..(l + 1) * d]), l))
        .collect();
    lists.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut cand = Vec::new();
    for &(_, l) in lists.iter().take(nprobe) {
        let il = idx.invlists();
        for (o, &id) in il.ids(l).iter().enumerate() {
            let code = &il.codes(l)[o * 4..(o + 1) * 4];
            let mut rec = idx.pq().decode(code).unwrap();
            if idx.by_residual() {
                for (a, b) in rec.iter_mut().zip(&c[l * d..(l + 1) * d]) {
                    *a += b;
                }
            }
            cand.push((score(q, &rec), id));
        }
    }
    cand.sort_by(|a, b| a.partial_cmp(b).unwrap());
    cand.truncate(k);
    cand
}

#[test]
fn search_matches_brute_force_over_probed_lists() {
    for (metric, res, nbits) in [
        (Metric::L2, true, 8),
        (Metric::L2, false, 8),
        (Metric::InnerProduct, true, 8),
        (Metric::L2, true, 5),
    ] {
        let (idx, _) = trained_ivfpq(metric, res, nbits);
        let q = data(20, 16, 7);
        let (k, nprobe) = (10, 3);
        let (dist, ids) = idx.search(&q, k, nprobe, None, &Control::new()).unwrap();
        for i in 0..20 {
            let want = brute(&idx, &q[i * 16..(i + 1) * 16], nprobe, k);
            for j in 0..k {
                let got = dist[i * k + j] as f64;
                let w = if metric == Metric::InnerProduct {
                    -want[j].0
                } else {
                    want[j].0
                };
                assert!(
                    (got - w).abs() <= 1e-4 * w.abs().max(1.0),
                    "{metric:?} res={res} q{i} rank {j}: {got} vs {w}"
                );
                // ids agree unless the reference has a near-tie there
                if ids[i * k + j] != want[j].1 {
                    let near = want
                        .iter()
                        .any(|&(v, id)| id == ids[i * k + j] && (v - want[j].0).abs() < 1e-3);
                    assert!(
                        near,
                        "{metric:?} q{i} rank {j}: id {} vs {}",
                        ids[i * k + j],
                        want[j].1
                    );
                }
            }
        }
    }
}

#[test]
fn few_queries_split_over_lists_give_the_same_results() {
    let (idx, _) = trained_ivfpq(Metric::L2, true, 8);
    let q = data(64, 16, 9);
    let all = idx.search(&q, 5, 16, None, &Control::new()).unwrap();
    for i in 0..3 {
        let one = idx
            .search(&q[i * 16..(i + 1) * 16], 5, 16, None, &Control::new())
            .unwrap();
        assert_eq!(one.1, all.1[i * 5..(i + 1) * 5]);
        // coarse distances come from a GEMM whose blocking depends on the batch: last-bit
        // differences only
        for (a, b) in one.0.iter().zip(&all.0[i * 5..(i + 1) * 5]) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}

#[test]
fn filters_return_k_allowed_hits() {
    let (idx, _) = trained_ivfpq(Metric::L2, true, 8);
    let q = data(10, 16, 3);
    let allowed: Vec<i64> = (0..3000).filter(|i| i % 7 == 0).collect();
    for sel in [
        IdSelector::Allow(IdSet::from_ids(&allowed)),
        IdSelector::Allow(IdSet::Sorted(allowed.clone())),
        IdSelector::Deny(IdSet::from_mask(
            &(0..3000).map(|i| i % 7 != 0).collect::<Vec<_>>(),
        )),
    ] {
        let (_, ids) = idx.search(&q, 20, 16, Some(&sel), &Control::new()).unwrap();
        assert!(ids.iter().all(|&i| i >= 0 && i % 7 == 0), "{ids:?}");
        // same as an unfiltered search restricted afterwards, with a k large enough
        let (_, full) = idx.search(&q, 3000, 16, None, &Control::new()).unwrap();
        for i in 0..10 {
            let want: Vec<i64> = full[i * 3000..(i + 1) * 3000]
                .iter()
                .copied()
                .filter(|&x| x >= 0 && x % 7 == 0)
                .take(20)
                .collect();
            assert_eq!(ids[i * 20..(i + 1) * 20], want[..]);
        }
    }
}

#[test]
fn add_with_ids_remove_reconstruct() {
    let d = 8;
    let x = data(500, d, 4);
    let mut idx = IndexIVFFlat::new(d, 8, Metric::L2).unwrap();
    assert!(matches!(
        idx.add(&x, &Control::new()),
        Err(Error::NotTrained(_))
    ));
    idx.train(&x, &IvfTrainParams::default(), &Control::new())
        .unwrap();
    let ids: Vec<i64> = (0..500).map(|i| 1000 + 3 * i).collect();
    idx.add_with_ids(&x, &ids, &Control::new()).unwrap();
    assert_eq!(idx.ntotal(), 500);
    assert_eq!(idx.reconstruct(1003).unwrap(), x[d..2 * d].to_vec());
    assert!(idx.reconstruct(1001).is_err());
    // exact search with all lists probed finds each vector itself
    let (dist, got) = idx
        .search(&x[..10 * d], 1, 8, None, &Control::new())
        .unwrap();
    assert_eq!(got, ids[..10].to_vec());
    assert!(dist.iter().all(|&v| v.abs() < 1e-4));
    let removed = idx.remove_ids(&IdSet::from_ids(&[1000, 1003, 5, 1003]));
    assert_eq!(removed, 2);
    assert_eq!(idx.ntotal(), 498);
    let (_, got) = idx.search(&x[..d], 1, 8, None, &Control::new()).unwrap();
    assert_ne!(got[0], 1000);
    assert!(idx.add_with_ids(&x[..d], &[1, 2], &Control::new()).is_err());
    assert!(idx.search(&x[..d], 1, 0, None, &Control::new()).is_err());
    assert!(idx.search(&x[..d], 0, 1, None, &Control::new()).is_err());
    assert!(idx
        .search(&x[..d - 1], 1, 1, None, &Control::new())
        .is_err());
    let s = idx.invlists().sizes();
    assert_eq!(s.iter().sum::<usize>(), 498);
    assert!(idx.invlists().imbalance_factor() >= 1.0);
    idx.reset();
    assert_eq!(idx.ntotal(), 0);
    assert!(idx.is_trained());
}

#[test]
fn persist_round_trip() {
    let (mut idx, x) = trained_ivfpq(Metric::L2, true, 8);
    idx.remove_ids(&IdSet::from_ids(&[3, 4, 5]));
    let bytes = idx.to_bytes().unwrap();
    let back = IndexIVFPQ::from_bytes(&bytes).unwrap();
    assert_eq!(back.ntotal(), idx.ntotal());
    let q = &x[..16 * 5];
    let a = idx.search(q, 7, 4, None, &Control::new()).unwrap();
    let b = back.search(q, 7, 4, None, &Control::new()).unwrap();
    assert_eq!(a, b);
    assert_eq!(idx.reconstruct(10).unwrap(), back.reconstruct(10).unwrap());

    let d = 8;
    let xf = data(300, d, 2);
    let mut f = IndexIVFFlat::new(d, 4, Metric::InnerProduct).unwrap();
    f.train(&xf, &IvfTrainParams::default(), &Control::new())
        .unwrap();
    f.add(&xf, &Control::new()).unwrap();
    let mut g = IndexIVFFlat::from_bytes(&f.to_bytes().unwrap()).unwrap();
    assert_eq!(
        f.search(&xf[..d * 3], 5, 2, None, &Control::new()).unwrap(),
        g.search(&xf[..d * 3], 5, 2, None, &Control::new()).unwrap()
    );
    // add after load copies the touched lists
    g.add(&xf[..d], &Control::new()).unwrap();
    assert_eq!(g.ntotal(), 301);
    // a corrupted offsets section is a format error, not a panic
    let untrained = IndexIVFFlat::new(d, 4, Metric::L2).unwrap();
    let u = IndexIVFFlat::from_bytes(&untrained.to_bytes().unwrap()).unwrap();
    assert!(!u.is_trained());
}

#[test]
fn fastscan_reranked_equals_ivfpq_4bit_and_approx_is_close() {
    let (pq4, x) = trained_ivfpq(Metric::L2, true, 4);
    let coarse = pq4.centroids().to_vec();
    let mut fs =
        IndexIVFPQFastScan::from_parts(&coarse, pq4.nlist(), pq4.pq().clone(), Metric::L2, true)
            .unwrap();
    let ids: Vec<i64> = (0..3000).collect();
    fs.add_with_ids(&x, &ids, &Control::new()).unwrap();
    assert_eq!(fs.invlists().sizes(), pq4.invlists().sizes());
    let q = data(15, 16, 21);
    let (k, nprobe) = (10, 4);
    let want = pq4.search(&q, k, nprobe, None, &Control::new()).unwrap();
    // re-ranking every candidate of the probed lists gives the float ADC result exactly
    fs.k_factor = 3000;
    let got = fs.search(&q, k, nprobe, None, &Control::new()).unwrap();
    assert_eq!(got.1, want.1);
    assert_eq!(got.0, want.0);
    // without re-ranking: approximate distances within the quantization bound of the table
    fs.k_factor = 1;
    let (da, ia) = fs.search(&q, k, nprobe, None, &Control::new()).unwrap();
    assert!(ia.iter().all(|&i| i >= 0));
    let overlap = ia.iter().filter(|i| want.1.contains(i)).count();
    assert!(overlap * 10 >= 8 * ia.len(), "overlap {overlap}");
    assert!(da.iter().all(|v| v.is_finite()));
    // filters and removal keep the packed lists in sync
    fs.k_factor = 4;
    let sel = IdSelector::Allow(IdSet::from_ids(&(0..3000).step_by(3).collect::<Vec<_>>()));
    let (_, fi) = fs
        .search(&q, k, nprobe, Some(&sel), &Control::new())
        .unwrap();
    assert!(fi.iter().all(|&i| i >= 0 && i % 3 == 0));
    let removed = fs.remove_ids(&IdSet::from_ids(&want.1));
    assert!(removed > 0);
    let (_, after) = fs.search(&q, k, nprobe, None, &Control::new()).unwrap();
    assert!(after.iter().all(|i| !want.1.contains(i)));
    let back = IndexIVFPQFastScan::from_bytes(&fs.to_bytes().unwrap()).unwrap();
    assert_eq!(
        back.search(&q, k, nprobe, None, &Control::new()).unwrap(),
        fs.search(&q, k, nprobe, None, &Control::new()).unwrap()
    );
}

#[test]
fn a_checksummed_file_with_a_huge_nlist_is_a_format_error() {
    // every CRC is valid: only the nlist-vs-sections check stands between this file and an
    // nlist-sized allocation (or an `nlist + 1` overflow)
    use crate::io::FileWriter;
    for nlist in [1u64 << 40, u64::MAX] {
        let mut w = FileWriter::new("IndexIVFFlat");
        w.meta_u64("d", 4)
            .meta_u64("nlist", nlist)
            .meta_str("metric", "l2")
            .meta_u64("ntotal", 0)
            .section_f32("coarse", &[])
            .section_owned("list_offsets", vec![0u64])
            .section_owned("list_codes", Vec::<f32>::new())
            .section_owned("list_ids", Vec::<i64>::new());
        let bytes = w.to_bytes().unwrap();
        let err = IndexIVFFlat::from_bytes(&bytes).unwrap_err().to_string();
        assert!(err.contains("nlist"), "{err}");
    }
}

#[test]
fn fastscan_ivf_rejects_more_than_max_m2_subquantizers() {
    let err = IndexIVFPQFastScan::new(4100, 4, 4100, Metric::L2, true).unwrap_err();
    assert!(err.to_string().contains("M <= 4096"), "{err}");
}

/// IVF fast scan past M = 256 (4 bits per dimension, 384-d): full re-ranking equals the 4-bit
/// IVFPQ, the grouped driver equals the per-query one (thresholds and shared bounds work),
/// and the index round-trips through a file.
#[test]
fn fastscan_ivf_wide_m() {
    let (n, d) = (1200, 384);
    let x = data(n, d, 41);
    let q = data(9, d, 42);
    let ctl = Control::new();
    for (metric, by_residual) in [(Metric::L2, true), (Metric::InnerProduct, false)] {
        let mut pq4 = IndexIVFPQ::new(d, 4, d, 4, metric, by_residual).unwrap();
        let (cp, pp) = small_params();
        pq4.train(&x, &cp, &pp, &ctl).unwrap();
        pq4.add(&x, &ctl).unwrap();
        let mut fs = IndexIVFPQFastScan::from_parts(
            pq4.centroids(),
            pq4.nlist(),
            pq4.pq().clone(),
            metric,
            by_residual,
        )
        .unwrap();
        fs.add(&x, &ctl).unwrap();
        let (k, nprobe) = (10, 2);
        let want = pq4.search(&q, k, nprobe, None, &ctl).unwrap();
        fs.k_factor = n;
        assert_eq!(fs.search(&q, k, nprobe, None, &ctl).unwrap(), want);
        for kf in [1, 3] {
            fs.k_factor = kf;
            let a = fs.search(&q, k, nprobe, None, &ctl).unwrap();
            let b = fs.search_per_query(&q, k, nprobe, None, &ctl).unwrap();
            assert_eq!(a, b, "{metric:?} kf={kf}");
            if kf == 1 {
                let overlap = a.1.iter().filter(|i| want.1.contains(i)).count();
                assert!(overlap * 10 >= 8 * a.1.len(), "overlap {overlap}");
            }
        }
        let back = IndexIVFPQFastScan::from_bytes(&fs.to_bytes().unwrap()).unwrap();
        assert_eq!(
            back.search(&q, k, nprobe, None, &ctl).unwrap(),
            fs.search(&q, k, nprobe, None, &ctl).unwrap()
        );
    }
}

#[test]
fn fastscan_grouped_search_equals_per_query() {
    // every metric / residual combination, with and without re-ranking and a filter; nprobe
    // large enough that lists are shared by several queries (and groups of more than 32)
    for (metric, by_residual) in [
        (Metric::L2, true),
        (Metric::L2, false),
        (Metric::InnerProduct, true),
        (Metric::InnerProduct, false),
    ] {
        let (pq4, x) = trained_ivfpq(metric, by_residual, 4);
        let mut fs = IndexIVFPQFastScan::from_parts(
            pq4.centroids(),
            pq4.nlist(),
            pq4.pq().clone(),
            metric,
            by_residual,
        )
        .unwrap();
        fs.add(&x, &Control::new()).unwrap();
        let q = data(70, 16, 33);
        let sel = IdSelector::Allow(IdSet::from_ids(&(0..3000).step_by(2).collect::<Vec<_>>()));
        for (kf, nprobe, k) in [(1, 3, 10), (4, 5, 7), (2, 64, 1), (1, 1, 50)] {
            fs.k_factor = kf;
            for s in [None, Some(&sel)] {
                let a = fs.search(&q, k, nprobe, s, &Control::new()).unwrap();
                let b = fs
                    .search_per_query(&q, k, nprobe, s, &Control::new())
                    .unwrap();
                assert_eq!(a.1, b.1, "{metric:?} res={by_residual} kf={kf} np={nprobe}");
                assert_eq!(a.0, b.0, "{metric:?} res={by_residual} kf={kf} np={nprobe}");
            }
        }
        let empty = fs.search(&[], 5, 3, None, &Control::new()).unwrap();
        assert!(empty.0.is_empty() && empty.1.is_empty());
    }
}

/// The list-major grouped driver (batches of >= 8 queries per thread) gives the results of the
/// query-by-query driver on the same batch bit for bit, at any thread count. (A single query
/// searched alone may differ in the last bits: its coarse GEMM has another shape.)
#[test]
fn grouped_search_matches_query_by_query_driver() {
    let (idx, _) = trained_ivfpq(Metric::L2, true, 8);
    let q = data(77, idx.d(), 99);
    let ctl = Control::new();
    let lvl = crate::simd::level();
    assert!(idx.use_grouped(77));
    for nprobe in [1, 3, 8] {
        let (bd, bi) = idx
            .base
            .search(&q, 5, nprobe, None, &ctl, |x, old| idx.scanner(x, lvl, old))
            .unwrap();
        for t in [1, 2, 3] {
            // a private pool: the global thread setting is shared with concurrent tests
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap();
            let (td, ti) = pool.install(|| idx.search(&q, 5, nprobe, None, &ctl).unwrap());
            assert_eq!(ti, bi, "threads {t} nprobe {nprobe}");
            let same = td.iter().zip(&bd).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "threads {t} nprobe {nprobe}");
        }
    }
}

/// The `Index` protocol: default nprobe 1 (saved, and 1 for files without the key), the
/// per-call `nprobe` / `k_factor` / selector, `remove_ids` by selector, `read_any`.
#[test]
fn index_protocol_nprobe_params_selectors_and_files() {
    use crate::index::{read_any_bytes, Index, SearchParams};
    let (mut pq, x) = trained_ivfpq(Metric::L2, true, 8);
    let ctl = Control::new();
    let q = data(12, 16, 5);
    assert_eq!(pq.nprobe(), 1);
    let p = SearchParams::default();
    let one = Index::search(&pq, &q, 5, &p, &ctl).unwrap();
    assert_eq!(one, pq.search(&q, 5, 1, None, &ctl).unwrap());
    pq.set_nprobe(4).unwrap();
    assert!(pq.set_nprobe(0).is_err());
    let four = Index::search(&pq, &q, 5, &p, &ctl).unwrap();
    assert_eq!(four, pq.search(&q, 5, 4, None, &ctl).unwrap());
    let p2 = SearchParams {
        nprobe: Some(2),
        ..Default::default()
    };
    assert_eq!(
        Index::search(&pq, &q, 5, &p2, &ctl).unwrap(),
        pq.search(&q, 5, 2, None, &ctl).unwrap()
    );
    let p0 = SearchParams {
        nprobe: Some(0),
        ..Default::default()
    };
    assert!(Index::search(&pq, &q, 5, &p0, &ctl).is_err());
    // saved and restored, as any index
    let back = read_any_bytes(&pq.to_bytes().unwrap()).unwrap();
    assert_eq!(back.kind(), "IndexIVFPQ");
    let back = back.downcast_ref::<IndexIVFPQ>().unwrap();
    assert_eq!(back.nprobe(), 4);
    assert_eq!(Index::search(back, &q, 5, &p, &ctl).unwrap(), four);

    // a selector through the params; removal by allow- and deny-selectors
    let sel = IdSelector::Allow(IdSet::from_ids(&(0..3000).step_by(3).collect::<Vec<_>>()));
    let ps = SearchParams::with_selector(Some(sel.clone()));
    let (_, ids) = Index::search(&pq, &q, 5, &ps, &ctl).unwrap();
    assert!(ids.iter().all(|&i| i % 3 == 0));
    assert_eq!(
        (ids.clone(), 5),
        (pq.search(&q, 5, 4, Some(&sel), &ctl).unwrap().1, 5)
    );
    let n = Index::remove_ids(&mut pq, &IdSelector::Allow(IdSet::from_ids(&[0, 1, 2]))).unwrap();
    assert_eq!((n, pq.ntotal()), (3, 2997));
    let keep = IdSelector::Deny(IdSet::from_ids(&(0..100).collect::<Vec<_>>()));
    assert_eq!(Index::remove_ids(&mut pq, &keep).unwrap(), 2997 - 97);
    assert_eq!(pq.ntotal(), 97);

    // fast scan: k_factor per call equals the index setting; both saved
    let mut fs = IndexIVFPQFastScan::new(16, 16, 4, Metric::L2, true).unwrap();
    let (cp, pp) = small_params();
    *fs.train_params_mut() = cp;
    *fs.pq_train_params_mut() = pp;
    Index::train(&mut fs, &x, &ctl).unwrap();
    Index::add(&mut fs, &x, &ctl).unwrap();
    assert_eq!((fs.nprobe(), fs.k_factor), (1, 1));
    fs.set_nprobe(3).unwrap();
    let pk = SearchParams {
        k_factor: Some(4),
        ..Default::default()
    };
    let a = Index::search(&fs, &q, 5, &pk, &ctl).unwrap();
    fs.set_k_factor(4).unwrap();
    assert_eq!(a, fs.search(&q, 5, 3, None, &ctl).unwrap());
    let back = read_any_bytes(&fs.to_bytes().unwrap()).unwrap();
    let back = back.downcast_ref::<IndexIVFPQFastScan>().unwrap();
    assert_eq!((back.nprobe(), back.k_factor), (3, 4));
    assert_eq!(Index::search(back, &q, 5, &p, &ctl).unwrap(), a);
    let n = Index::remove_ids(&mut fs, &IdSelector::Allow(IdSet::from_ids(&a.1))).unwrap();
    assert!(n > 0);
    let (_, after) = Index::search(&fs, &q, 5, &p, &ctl).unwrap();
    assert!(after.iter().all(|i| !a.1.contains(i)));

    // a file written before nprobe was saved reads as nprobe = 1
    let mut f = IndexIVFFlat::new(4, 2, Metric::L2).unwrap();
    f.set_nprobe(2).unwrap();
    let r = crate::io::FileReader::from_bytes(f.to_bytes().unwrap()).unwrap();
    let file = |nprobe: Option<u64>| {
        let mut w = crate::io::FileWriter::new("IndexIVFFlat");
        for (key, v) in r.meta_entries() {
            if key != "nprobe" {
                w.meta(key, v.clone());
            }
        }
        if let Some(n) = nprobe {
            w.meta_u64("nprobe", n);
        }
        w.section_owned("coarse", Vec::<f32>::new())
            .section_owned("list_offsets", vec![0u64; 3])
            .section_owned("list_codes", Vec::<f32>::new())
            .section_owned("list_ids", Vec::<i64>::new());
        IndexIVFFlat::from_bytes(&w.to_bytes().unwrap())
    };
    assert_eq!(file(None).unwrap().nprobe(), 1);
    assert_eq!(file(Some(7)).unwrap().nprobe(), 7);
    let err = file(Some(0)).unwrap_err().to_string();
    assert!(err.contains("nprobe"), "{err}");
    assert_eq!(
        IndexIVFFlat::from_bytes(&f.to_bytes().unwrap())
            .unwrap()
            .nprobe(),
        2
    );
}

/// Range search of IVFFlat: brute force over the entries of the probed lists (with every list
/// probed: the flat index's range search), filters included, both metrics.
#[test]
fn ivfflat_range_search_is_brute_force_over_probed_lists() {
    use crate::index::{Index, IndexFlat, SearchParams};
    let (d, n) = (8, 1500);
    let x = data(n, d, 40);
    let q = data(9, d, 41);
    let ctl = Control::new();
    for (metric, radius) in [(Metric::L2, 6.0f32), (Metric::InnerProduct, 2.0)] {
        let mut idx = IndexIVFFlat::new(d, 12, metric).unwrap();
        idx.train(&x, &IvfTrainParams::default(), &ctl).unwrap();
        idx.add(&x, &ctl).unwrap();
        let mut flat = IndexFlat::new(d, metric).unwrap();
        flat.add(&x).unwrap();
        let all = SearchParams {
            nprobe: Some(12),
            ..Default::default()
        };
        let r = Index::range_search(&idx, &q, radius, &all, &ctl).unwrap();
        let want = Index::range_search(&flat, &q, radius, &SearchParams::default(), &ctl).unwrap();
        // the same hits, up to the order of near-ties (the two compute distances with
        // different kernels: last-bit differences)
        assert_eq!(r.lims, want.lims, "{metric:?}");
        for i in 0..9 {
            let row = r.lims[i]..r.lims[i + 1];
            let (mut a, mut b) = (r.ids[row.clone()].to_vec(), want.ids[row.clone()].to_vec());
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b, "{metric:?} query {i}");
            for (x, y) in r.dist[row.clone()].iter().zip(&want.dist[row]) {
                assert!((x - y).abs() <= 1e-4 * y.abs().max(1.0));
            }
        }
        // nprobe = 2, filtered: the brute force over the probed lists, kept by the filter
        let sel = IdSelector::Deny(IdSet::from_ids(
            &(0..n as i64).step_by(2).collect::<Vec<_>>(),
        ));
        let p = SearchParams {
            nprobe: Some(2),
            selector: Some(sel.clone()),
            ..Default::default()
        };
        let r = Index::range_search(&idx, &q, radius, &p, &ctl).unwrap();
        let mut coarse = IndexFlat::new(d, metric).unwrap();
        coarse.add(idx.centroids()).unwrap();
        let (_, probed) = coarse.search(&q, 2, &ctl).unwrap();
        for i in 0..9 {
            let qi = &q[i * d..(i + 1) * d];
            let lists = &probed[i * 2..i * 2 + 2];
            let mut hits: Vec<(f32, i64)> = (lists.iter())
                .flat_map(|&l| idx.invlists().ids(l as usize).iter().map(|&j| j as usize))
                .filter(|&j| sel.accepts(j as i64))
                .map(|j| {
                    let v = &x[j * d..(j + 1) * d];
                    let s = match metric {
                        Metric::L2 => qi.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum(),
                        Metric::InnerProduct => qi.iter().zip(v).map(|(a, b)| a * b).sum(),
                    };
                    (s, j as i64)
                })
                .filter(|&(s, _)| match metric {
                    Metric::L2 => s < radius,
                    Metric::InnerProduct => s > radius,
                })
                .collect();
            let ip = metric == Metric::InnerProduct;
            hits.sort_by(|a, b| {
                let o = if ip {
                    b.0.total_cmp(&a.0)
                } else {
                    a.0.total_cmp(&b.0)
                };
                o.then(a.1.cmp(&b.1))
            });
            let got = &r.ids[r.lims[i]..r.lims[i + 1]];
            let mut g = got.to_vec();
            let mut w: Vec<i64> = hits.iter().map(|h| h.1).collect();
            // the order may differ only inside near-ties (f32 summation order)
            g.sort_unstable();
            w.sort_unstable();
            assert_eq!(g, w, "{metric:?} query {i}");
        }
        assert!(Index::range_search(&idx, &q, f32::NAN, &p, &ctl).is_err());
    }
}

/// The IVFPQ and fast-scan range searches return what their k-NN search with k = ntotal
/// returns within the radius (the default `range_by_knn`).
#[test]
fn ivfpq_range_search_equals_knn_within_radius() {
    use crate::index::{range_by_knn, Index, SearchParams};
    let (idx, x) = trained_ivfpq(Metric::L2, true, 4);
    let ctl = Control::new();
    let q = data(20, 16, 77);
    let p = SearchParams {
        nprobe: Some(3),
        ..Default::default()
    };
    let a = Index::range_search(&idx, &q, 12.0, &p, &ctl).unwrap();
    let b = range_by_knn(&idx, &q, 12.0, &p, &ctl).unwrap();
    assert_eq!(a, b);
    assert!(a.ids.len() > 20);
    let mut fs = IndexIVFPQFastScan::from_parts(
        idx.centroids(),
        idx.nlist(),
        idx.pq().clone(),
        Metric::L2,
        true,
    )
    .unwrap();
    fs.add(&x, &ctl).unwrap();
    for kf in [1, 3] {
        let pk = SearchParams {
            nprobe: Some(3),
            k_factor: Some(kf),
            ..Default::default()
        };
        let a = Index::range_search(&fs, &q, 12.0, &pk, &ctl).unwrap();
        let b = range_by_knn(&fs, &q, 12.0, &pk, &ctl).unwrap();
        assert_eq!(a, b, "k_factor {kf}");
    }
}

/// An IVF index keeps the caller's ids itself: an id map over it is refused (its removals do
/// not renumber, which the id map relies on).
#[test]
fn ivf_indexes_are_not_wrapped_in_an_id_map() {
    use crate::index::IndexIDMap;
    let flat = IndexIVFFlat::new(4, 2, Metric::L2).unwrap();
    let err = IndexIDMap::new(Box::new(flat)).unwrap_err().to_string();
    assert!(err.contains("add_with_ids"), "{err}");
    let pq = IndexIVFPQFastScan::new(8, 2, 2, Metric::L2, true).unwrap();
    assert!(IndexIDMap::new(Box::new(pq)).is_err());
}

fn trained_ivf_rabitq(metric: Metric, nbits: usize, d: usize) -> (IndexIVFRaBitQ, Vec<f32>) {
    let x = data(3000, d, 5);
    let mut idx = IndexIVFRaBitQ::new(d, 16, nbits, metric, 7).unwrap();
    idx.train(&x, &small_params().0, &Control::new()).unwrap();
    idx.add(&x, &Control::new()).unwrap();
    (idx, x)
}

/// Exact top-k ids of `q` among the rows of `x` (f64).
fn exact_topk(x: &[f32], q: &[f32], d: usize, k: usize, metric: Metric) -> Vec<i64> {
    let mut s: Vec<(f64, i64)> = x
        .chunks_exact(d)
        .enumerate()
        .map(|(i, v)| {
            let key = match metric {
                Metric::L2 => v.iter().zip(q).map(|(a, b)| ((a - b) as f64).powi(2)).sum(),
                Metric::InnerProduct => -v.iter().zip(q).map(|(a, b)| (a * b) as f64).sum::<f64>(),
            };
            (key, i as i64)
        })
        .collect();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s.into_iter().take(k).map(|p| p.1).collect()
}

#[test]
fn ivf_rabitq_recall_grows_with_bits_and_distances_are_estimates() {
    let (d, nq, k) = (32, 50, 10);
    for metric in [Metric::L2, Metric::InnerProduct] {
        let mut prev = 0.0;
        for nbits in [1, 4, 8] {
            let (idx, x) = trained_ivf_rabitq(metric, nbits, d);
            let q = data(nq, d, 9);
            let (dist, ids) = idx.search(&q, k, 16, None, &Control::new()).unwrap();
            let mut hits = 0;
            for i in 0..nq {
                let truth = exact_topk(&x, &q[i * d..(i + 1) * d], d, k, metric);
                hits += ids[i * k..(i + 1) * k]
                    .iter()
                    .filter(|id| truth.contains(id))
                    .count();
            }
            let recall = hits as f64 / (nq * k) as f64;
            // 8 bits is nearly exact; fewer bits lose recall (measured on this data: 0.28,
            // 0.88, 0.98; the flat IndexRaBitQ gets the same on structureless Gaussians)
            let floor = match nbits {
                1 => 0.2,
                4 => 0.8,
                _ => 0.95,
            };
            assert!(recall >= floor, "{metric:?} {nbits} bits: recall {recall}");
            assert!(
                recall + 0.02 >= prev,
                "{metric:?}: recall fell to {recall} at {nbits}"
            );
            prev = recall;
            // the returned value estimates the true distance of the returned vector
            let (i, id) = (0, ids[0] as usize);
            let (v, qi) = (&x[id * d..(id + 1) * d], &q[i * d..(i + 1) * d]);
            let truth: f32 = match metric {
                Metric::L2 => v.iter().zip(qi).map(|(a, b)| (a - b) * (a - b)).sum(),
                Metric::InnerProduct => v.iter().zip(qi).map(|(a, b)| a * b).sum(),
            };
            let scale: f32 = qi.iter().map(|a| a * a).sum::<f32>() + d as f32;
            assert!((dist[0] - truth).abs() < 0.5 * scale, "{dist:?} vs {truth}");
        }
    }
}

#[test]
fn ivf_rabitq_pruning_keeps_the_unpruned_result() {
    // ε₀ = 100 prunes nothing: the pruned scan (ε₀ = 1.9) must return the same neighbours
    // except where a bound fails (probability ~1e-3 per vector and bound)
    let (d, nq, k) = (48, 40, 10);
    for nbits in [2, 4] {
        let (mut idx, _) = trained_ivf_rabitq(Metric::L2, nbits, d);
        let q = data(nq, d, 11);
        let pruned = idx.search(&q, k, 4, None, &Control::new()).unwrap();
        idx.set_epsilon(100.0).unwrap();
        let full = idx.search(&q, k, 4, None, &Control::new()).unwrap();
        let same = pruned.1.iter().zip(&full.1).filter(|(a, b)| a == b).count();
        assert!(
            same * 100 >= 98 * nq * k,
            "{nbits} bits: {same} of {}",
            nq * k
        );
    }
}

#[test]
fn ivf_rabitq_ids_filters_files() {
    let d = 24;
    let (mut idx, x) = trained_ivf_rabitq(Metric::InnerProduct, 3, d);
    let q = &x[..d * 4];
    // every listed id is found with nprobe = nlist and a filter keeps only allowed ids
    let sel = IdSelector::Allow(IdSet::from_ids(&[1, 2, 3, 500]));
    let (_, ids) = idx.search(q, 3, 16, Some(&sel), &Control::new()).unwrap();
    assert!(ids.iter().all(|&i| [1, 2, 3, 500].contains(&i)));
    assert_eq!(idx.remove_ids(&IdSet::from_ids(&[0, 1, 2])), 3);
    assert!(idx.reconstruct(1).is_err());
    let r = idx.reconstruct(7).unwrap();
    let err: f32 = r
        .iter()
        .zip(&x[7 * d..8 * d])
        .map(|(a, b)| (a - b).powi(2))
        .sum();
    let norm: f32 = x[7 * d..8 * d].iter().map(|a| a * a).sum();
    assert!(
        err < 0.2 * norm,
        "3-bit reconstruction error {err} of {norm}"
    );
    let back = IndexIVFRaBitQ::from_bytes(&idx.to_bytes().unwrap()).unwrap();
    assert_eq!(
        idx.search(q, 5, 3, None, &Control::new()).unwrap(),
        back.search(q, 5, 3, None, &Control::new()).unwrap()
    );
    assert_eq!(back.nbits(), 3);
    // range search = the k-NN hits within the radius
    let (dist, ids) = idx.search(q, 20, 16, None, &Control::new()).unwrap();
    let radius = dist[9];
    let rr = crate::index::Index::range_search(
        &idx,
        &q[..d],
        radius,
        &crate::index::SearchParams {
            nprobe: Some(16),
            ..Default::default()
        },
        &Control::new(),
    )
    .unwrap();
    let want: Vec<i64> = (0..20)
        .filter(|&j| dist[j] > radius)
        .map(|j| ids[j])
        .collect();
    assert_eq!(rr.ids, want);
}

fn clustered(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    let centers: Vec<f32> = (0..20 * d).map(|_| 4.0 * r.normal() as f32).collect();
    (0..n)
        .flat_map(|_| {
            let c = (r.next_u64() % 20) as usize;
            let row: Vec<f32> = (0..d)
                .map(|j| centers[c * d + j] + r.normal() as f32)
                .collect();
            row
        })
        .collect()
}

fn trained_ivf_sq(
    qtype: crate::sq::QuantizerType,
    metric: Metric,
    by_residual: bool,
) -> (IndexIVFScalarQuantizer, Vec<f32>) {
    let x = clustered(2000, 24, 3);
    let mut idx = IndexIVFScalarQuantizer::new(24, 16, qtype, metric, by_residual, 5).unwrap();
    idx.train(&x, &small_params().0, &Control::new()).unwrap();
    idx.add(&x, &Control::new()).unwrap();
    (idx, x)
}

#[test]
fn ivf_sq_search_is_brute_force_over_the_decoded_vectors_of_the_probed_lists() {
    use crate::sq::QuantizerType as Q;
    let (d, nq, k, nprobe) = (24, 20, 10, 3);
    for qtype in [Q::QT8, Q::QT4, Q::Fp16, Q::Bf16] {
        for metric in [Metric::L2, Metric::InnerProduct] {
            for by_residual in [true, false] {
                let (idx, _) = trained_ivf_sq(qtype, metric, by_residual);
                let q = clustered(nq, d, 17);
                let (dist, ids) = idx.search(&q, k, nprobe, None, &Control::new()).unwrap();
                let c = idx.centroids();
                let key = |a: &[f32], b: &[f32]| -> f64 {
                    match metric {
                        Metric::L2 => a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum(),
                        Metric::InnerProduct => {
                            -a.iter().zip(b).map(|(x, y)| (x * y) as f64).sum::<f64>()
                        }
                    }
                };
                for i in 0..nq {
                    let qi = &q[i * d..(i + 1) * d];
                    let mut lists: Vec<(f64, usize)> = (0..idx.nlist())
                        .map(|l| (key(qi, &c[l * d..(l + 1) * d]), l))
                        .collect();
                    lists.sort_by(|a, b| a.partial_cmp(b).unwrap());
                    let mut all: Vec<(f64, i64)> = lists[..nprobe]
                        .iter()
                        .flat_map(|&(_, l)| idx.invlists().ids(l).to_vec())
                        .map(|id| (key(qi, &idx.reconstruct(id).unwrap()), id))
                        .collect();
                    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
                    let tol = 1e-3 * (1.0 + all[k - 1].0.abs());
                    for j in 0..k {
                        // each returned distance is that of its decoded vector, and the j-th
                        // equals brute force's j-th (ids may differ on near ties only)
                        let id = ids[i * k + j];
                        let want = key(qi, &idx.reconstruct(id).unwrap());
                        let got = match metric {
                            Metric::L2 => dist[i * k + j] as f64,
                            Metric::InnerProduct => -dist[i * k + j] as f64,
                        };
                        assert!(
                            (got - want).abs() < tol,
                            "{qtype:?} {metric:?} {by_residual}"
                        );
                        assert!(
                            (got - all[j].0).abs() < tol,
                            "{qtype:?} {metric:?} {by_residual}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn ivf_sq_residuals_code_finer_than_the_vectors() {
    use crate::sq::QuantizerType as Q;
    let d = 24;
    let mse = |idx: &IndexIVFScalarQuantizer, x: &[f32]| -> f64 {
        (0..200)
            .map(|i| {
                let r = idx.reconstruct(i as i64).unwrap();
                r.iter()
                    .zip(&x[i * d..(i + 1) * d])
                    .map(|(a, b)| ((a - b) as f64).powi(2))
                    .sum::<f64>()
            })
            .sum::<f64>()
    };
    let (res, x) = trained_ivf_sq(Q::QT4, Metric::L2, true);
    let (plain, _) = trained_ivf_sq(Q::QT4, Metric::L2, false);
    assert!(mse(&res, &x) < 0.5 * mse(&plain, &x));
}

#[test]
fn ivf_sq_ids_filters_files_and_lloyd_max() {
    use crate::sq::QuantizerType as Q;
    let d = 24;
    for qtype in [Q::QT8, Q::Lm3] {
        let (mut idx, x) = trained_ivf_sq(qtype, Metric::L2, true);
        let q = &x[..d * 4];
        // a stored vector finds itself
        let (_, ids) = idx.search(q, 1, 16, None, &Control::new()).unwrap();
        assert_eq!(ids, vec![0, 1, 2, 3], "{qtype:?}");
        let sel = IdSelector::Allow(IdSet::from_ids(&[1, 2, 3, 500]));
        let (_, ids) = idx.search(q, 3, 16, Some(&sel), &Control::new()).unwrap();
        assert!(ids.iter().all(|&i| [1, 2, 3, 500].contains(&i)));
        assert_eq!(idx.remove_ids(&IdSet::from_ids(&[0, 1, 2])), 3);
        assert!(idx.reconstruct(1).is_err());
        let back = IndexIVFScalarQuantizer::from_bytes(&idx.to_bytes().unwrap()).unwrap();
        assert_eq!(
            idx.search(q, 5, 3, None, &Control::new()).unwrap(),
            back.search(q, 5, 3, None, &Control::new()).unwrap()
        );
        assert!(back.by_residual());
    }
    // untrained: a typed error, not a search over nothing
    let idx = IndexIVFScalarQuantizer::new(d, 4, Q::QT8, Metric::L2, true, 1).unwrap();
    assert!(idx.search(&[0.0; 24], 1, 1, None, &Control::new()).is_err());
}
