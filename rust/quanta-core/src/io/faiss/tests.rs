//! Round trips quanta → faiss layout → quanta for every kind, and fuzzing of the parser
//! (every truncation, byte flips): errors, never panics. Files written by the real faiss are
//! compared in `tests/test_faiss_files.py`.

use super::*;
use crate::control::Control;
use crate::distance::Metric;
use crate::index::{
    AnyIndex, IndexBinaryFlat, IndexFlat, IndexIDMap, IndexPQ, IndexPQFastScan, IndexPreTransform,
    IndexRefineFlat, SearchParams,
};
use crate::io::Persist;
use crate::ivf::{IndexIVFFlat, IndexIVFPQ, IndexIVFPQFastScan};
use crate::pq::OpqMatrix;
use crate::rng::Rng;

fn data(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n * d).map(|_| r.normal() as f32).collect()
}

const D: usize = 24;

fn trained(mut idx: AnyIndex, ids: bool) -> AnyIndex {
    let ctl = Control::new();
    let x = data(600, D, 3);
    idx.train(&x, &ctl).unwrap();
    if ids {
        let ids: Vec<i64> = (0..600).map(|i| 1000 + 7 * i).collect();
        idx.add_with_ids(&x, &ids, &ctl).unwrap();
    } else {
        idx.add(&x, &ctl).unwrap();
    }
    idx
}

/// One index of every kind the faiss format holds, trained and filled.
fn every_kind() -> Vec<AnyIndex> {
    let (l2, ip) = (Metric::L2, Metric::InnerProduct);
    let opq = || OpqMatrix::new(D, 4, None).unwrap();
    vec![
        trained(Box::new(IndexFlat::new(D, l2).unwrap()), false),
        trained(Box::new(IndexFlat::new(D, ip).unwrap()), false),
        trained(Box::new(IndexPQ::new(D, 4, 8, l2).unwrap()), false),
        trained(Box::new(IndexPQ::new(D, 8, 5, ip).unwrap()), false),
        trained(Box::new(IndexPQFastScan::new(D, 3, 4, l2).unwrap()), false),
        trained(Box::new(IndexIVFFlat::new(D, 8, ip).unwrap()), true),
        trained(
            Box::new(IndexIVFPQ::new(D, 8, 4, 8, l2, true).unwrap()),
            true,
        ),
        trained(
            Box::new(IndexIVFPQ::new(D, 8, 8, 6, ip, false).unwrap()),
            true,
        ),
        trained(
            Box::new(IndexIVFPQFastScan::new(D, 4, 3, l2, true).unwrap()),
            true,
        ),
        trained(
            Box::new(IndexIDMap::new(Box::new(IndexPQ::new(D, 4, 8, l2).unwrap())).unwrap()),
            true,
        ),
        trained(
            Box::new(
                IndexPreTransform::new(opq(), Box::new(IndexPQ::new(D, 4, 8, l2).unwrap()))
                    .unwrap(),
            ),
            false,
        ),
        trained(
            Box::new(
                IndexRefineFlat::new(Box::new(IndexPQ::new(D, 4, 4, l2).unwrap()), 3).unwrap(),
            ),
            false,
        ),
    ]
}

fn faiss_bytes(idx: &AnyIndex) -> Vec<u8> {
    let native = idx.to_bytes().unwrap();
    to_faiss_bytes(&FileReader::from_bytes(&native).unwrap()).unwrap()
}

fn load(bytes: &[u8]) -> Result<AnyIndex> {
    match read_faiss_bytes(bytes, "test")? {
        LoadedIndex::Float(i) => Ok(i),
        LoadedIndex::Binary(_) => panic!("binary"),
    }
}

#[test]
fn every_kind_round_trips_with_the_same_results() {
    let ctl = Control::new();
    let q = data(20, D, 9);
    let p = SearchParams {
        nprobe: Some(3),
        ..SearchParams::default()
    };
    for idx in every_kind() {
        let f = faiss_bytes(&idx);
        assert!(is_faiss(&f), "{}", idx.kind());
        let back = load(&f).unwrap_or_else(|e| panic!("{}: {e}", idx.kind()));
        assert_eq!(back.kind(), idx.kind());
        assert_eq!(back.ntotal(), idx.ntotal());
        let (a, b) = (
            idx.search(&q, 5, &p, &ctl).unwrap(),
            back.search(&q, 5, &p, &ctl).unwrap(),
        );
        assert_eq!(a.1, b.1, "{}: ids differ", idx.kind());
        assert_eq!(a.0, b.0, "{}: distances differ", idx.kind());
        let id = a.1[0];
        assert_eq!(idx.reconstruct(id).unwrap(), back.reconstruct(id).unwrap());
        // and the faiss layout is stable: writing the loaded index gives the same bytes
        assert_eq!(faiss_bytes(&back), f, "{}", idx.kind());
    }
}

#[test]
fn binary_round_trips_with_and_without_ids() {
    let codes: Vec<u8> = (0..40 * 8).map(|i| (i * 31 % 251) as u8).collect();
    let seq = IndexBinaryFlat::from_parts(64, codes.clone(), (0..40).collect()).unwrap();
    let mapped =
        IndexBinaryFlat::from_parts(64, codes, (0..40).map(|i| 5 * i + 2).collect()).unwrap();
    for (idx, fourcc) in [(seq, b"IBxF"), (mapped, b"IBM2")] {
        let f = to_faiss_bytes(&FileReader::from_bytes(idx.to_bytes().unwrap()).unwrap()).unwrap();
        assert_eq!(&f[..4], fourcc);
        let LoadedIndex::Binary(back) = read_faiss_bytes(&f, "t").unwrap() else {
            panic!("float")
        };
        assert_eq!(back.to_bytes().unwrap(), idx.to_bytes().unwrap());
    }
}

#[test]
fn kinds_faiss_cannot_hold_are_refused_by_name() {
    let r: AnyIndex = Box::new(crate::index::IndexRaBitQ::new(D, 1, Metric::L2, 1).unwrap());
    let r = trained(r, false);
    let native = r.to_bytes().unwrap();
    let e = to_faiss_bytes(&FileReader::from_bytes(native).unwrap()).unwrap_err();
    assert!(
        e.to_string()
            .contains("faiss has no file format for quanta's IndexRaBitQ"),
        "{e}"
    );
}

#[test]
fn unknown_and_unsupported_faiss_types_are_named() {
    let e = load(b"IHNf\0\0\0\0").unwrap_err().to_string();
    assert!(e.contains("IndexHNSWFlat ('IHNf')"), "{e}");
    let e = load(b"ZZZZ").unwrap_err().to_string();
    assert!(e.contains("not a faiss index type"), "{e}");
    let mut f = faiss_bytes(&every_kind()[0]);
    f.push(0);
    assert!(load(&f)
        .unwrap_err()
        .to_string()
        .contains("1 trailing bytes"));
}

/// Every prefix of every file is a format error, never a panic or a success.
#[test]
fn every_truncation_is_a_format_error() {
    for idx in every_kind() {
        let f = faiss_bytes(&idx);
        // every byte boundary of the small headers, then a stride through the payload
        let cuts = (0..f.len().min(400)).chain((400..f.len()).step_by(97));
        for cut in cuts {
            match load(&f[..cut]) {
                Err(Error::Format(_)) => {}
                Err(e) => panic!("{} cut at {cut}: not a format error: {e}", idx.kind()),
                Ok(_) => panic!("{} cut at {cut} of {} loaded", idx.kind(), f.len()),
            }
        }
    }
}

/// Random byte changes give an index or an error, never a panic; counts set to huge values
/// never allocate (they are checked against the bytes left).
#[test]
fn corrupted_bytes_never_panic() {
    let mut rng = Rng::new(7);
    for idx in every_kind() {
        let f = faiss_bytes(&idx);
        for trial in 0..300 {
            let mut g = f.clone();
            let flips = 1 + trial % 4;
            for _ in 0..flips {
                let at = (rng.next_u64() as usize)
                    % g.len().min(if trial % 2 == 0 { 200 } else { usize::MAX });
                g[at] = match trial % 3 {
                    0 => g[at] ^ (1 << (rng.next_u64() % 8)),
                    1 => 0xFF,
                    _ => rng.next_u64() as u8,
                };
            }
            let _ = load(&g);
        }
    }
}
