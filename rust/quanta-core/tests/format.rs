//! The file format against damaged input: a small IndexFlat file truncated at every byte
//! offset, with every bit flipped and with seeded random corruption, foreign files, and
//! checksum-valid but inconsistent files. Every case must be an `Error::Format` — never a
//! panic, never a silently different index.

use quanta_core::index::IndexFlat;
use quanta_core::io::{read_index_kind, FileReader, FileWriter, Persist};
use quanta_core::rng::Rng;
use quanta_core::{Control, Error, Metric};
use std::path::{Path, PathBuf};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("quanta-format-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn small_index(metric: Metric) -> IndexFlat {
    let mut idx = IndexFlat::new(4, metric).unwrap();
    let x: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
    idx.add(&x).unwrap();
    idx
}

fn same(a: &IndexFlat, b: &IndexFlat) -> bool {
    a.d() == b.d()
        && a.metric() == b.metric()
        && a.data()
            .iter()
            .map(|x| x.to_bits())
            .eq(b.data().iter().map(|x| x.to_bits()))
}

/// The message of a `Format` error; anything else (or `Ok`) fails the test.
fn format_msg(r: Result<IndexFlat, Error>, what: &str) -> String {
    match r {
        Err(Error::Format(m)) => m,
        Err(e) => panic!("{what}: expected a Format error, got {e:?}"),
        Ok(_) => panic!("{what}: a damaged file was accepted"),
    }
}

#[test]
fn round_trip_owned_and_mmap_search_identically() {
    let dir = TempDir::new("roundtrip");
    let q: Vec<f32> = (0..12).map(|i| (i as f32 * 0.91).cos()).collect();
    for metric in [Metric::L2, Metric::InnerProduct] {
        let idx = small_index(metric);
        let path = dir.file(&format!("{}.qnt", metric.name()));
        idx.write(&path).unwrap();
        assert_eq!(read_index_kind(&path).unwrap(), "IndexFlat");
        let want = idx.search(&q, 4, &Control::new()).unwrap();
        for mmap in [false, true] {
            let back = IndexFlat::read(&path, mmap).unwrap();
            assert!(same(&idx, &back));
            assert_eq!(back.ntotal(), 6);
            assert_eq!(back.is_mapped(), mmap);
            assert_eq!(back.search(&q, 4, &Control::new()).unwrap(), want);
        }
        assert!(same(
            &idx,
            &IndexFlat::from_bytes(&idx.to_bytes().unwrap()).unwrap()
        ));
    }
}

#[test]
fn add_and_reset_after_mmap_load_copy_and_leave_the_file_alone() {
    let dir = TempDir::new("cow");
    let path = dir.file("x.qnt");
    let idx = small_index(Metric::L2);
    idx.write(&path).unwrap();
    let before = std::fs::read(&path).unwrap();
    let mut m = IndexFlat::read(&path, true).unwrap();
    let view = m.clone();
    m.add(&[9.0, 9.0, 9.0, 9.0]).unwrap();
    assert!(!m.is_mapped() && view.is_mapped());
    assert_eq!(m.ntotal(), 7);
    let (_, ids) = m.search(&[9.0, 9.0, 9.0, 9.0], 1, &Control::new()).unwrap();
    assert_eq!(ids, [6]);
    assert!(same(&view, &idx));
    let mut r = view.clone();
    r.reset();
    assert_eq!((r.ntotal(), r.is_mapped()), (0, false));
    drop((m, view, r));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn every_truncation_is_an_error() {
    let dir = TempDir::new("truncate");
    let bytes = small_index(Metric::L2).to_bytes().unwrap();
    let path = dir.file("t.qnt");
    for len in 0..bytes.len() {
        let what = format!("truncated to {len} of {} bytes", bytes.len());
        let m = format_msg(IndexFlat::from_bytes(&bytes[..len]), &what);
        assert!(
            m.contains("truncated") || m.contains("empty file"),
            "{what}: {m}"
        );
        std::fs::write(&path, &bytes[..len]).unwrap();
        for mmap in [false, true] {
            let m = format_msg(IndexFlat::read(&path, mmap), &what);
            assert!(m.contains("t.qnt"), "{what}: {m}");
        }
        assert!(read_index_kind(&path).is_err(), "{what}");
    }
}

#[test]
fn every_bit_flip_is_an_error() {
    // The header and every payload are checksummed and the padding between payloads must be
    // zero, so every byte of the file is covered: no flip can give back an index at all.
    let idx = small_index(Metric::InnerProduct);
    let bytes = idx.to_bytes().unwrap();
    for pos in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[pos] ^= 1 << bit;
            format_msg(
                IndexFlat::from_bytes(&b),
                &format!("bit {bit} of byte {pos} flipped"),
            );
        }
    }
}

#[test]
fn random_corruption_is_an_error_or_identical() {
    let dir = TempDir::new("flip");
    let idx = small_index(Metric::L2);
    let bytes = idx.to_bytes().unwrap();
    let path = dir.file("f.qnt");
    let mut rng = Rng::new(20240611);
    let mut rejected = 0;
    for trial in 0..3000 {
        let mut b = bytes.clone();
        for _ in 0..1 + rng.below(4) {
            let pos = rng.below(b.len());
            b[pos] ^= 1 + rng.below(255) as u8;
        }
        let what = format!("trial {trial}");
        let got = if trial % 10 == 0 {
            std::fs::write(&path, &b).unwrap();
            IndexFlat::read(&path, trial % 20 == 0)
        } else {
            IndexFlat::from_bytes(&b)
        };
        match got {
            // only possible if the damage cancelled out (xor twice at the same byte)
            Ok(back) => assert!(
                b == bytes && same(&idx, &back),
                "{what}: damaged file accepted"
            ),
            Err(Error::Format(_)) => rejected += 1,
            Err(e) => panic!("{what}: expected a Format error, got {e:?}"),
        }
    }
    assert!(rejected > 2900, "{rejected}");
}

#[test]
fn foreign_files_are_named_errors() {
    let dir = TempDir::new("foreign");
    let mut noise = Rng::new(7);
    let random: Vec<u8> = (0..4096).map(|_| noise.next_u64() as u8).collect();
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0".to_vec();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "empty file"),
        ("png", png, "PNG image"),
        ("random", random, "not a quanta index file"),
        (
            "text",
            b"d,metric\n4,l2\n".repeat(10),
            "not a quanta index file",
        ),
        (
            "npy",
            b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'}".to_vec(),
            "numpy .npy",
        ),
    ];
    for (name, content, want) in cases {
        let path = dir.file(name);
        std::fs::write(&path, &content).unwrap();
        for mmap in [false, true] {
            let m = format_msg(IndexFlat::read(&path, mmap), name);
            assert!(m.contains(want) && m.contains(name), "{name}: {m}");
        }
        match read_index_kind(&path) {
            Err(Error::Format(m)) => assert!(m.contains(want), "{name}: {m}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // a directory and a missing file
    assert!(IndexFlat::read(&dir.0, false).is_err());
    match IndexFlat::read(dir.file("missing.qnt"), true) {
        Err(e @ Error::Io { .. }) => assert!(e.to_string().contains("missing.qnt")),
        other => panic!("{other:?}"),
    }
}

fn write_flat_like(path: &Path, kind: &str, d: u64, metric: &str, ntotal: u64, v: &[f32]) {
    let mut w = FileWriter::new(kind);
    w.meta_u64("d", d)
        .meta_str("metric", metric)
        .meta_u64("ntotal", ntotal)
        .section_f32("vectors", v);
    w.write_atomic(path).unwrap();
}

#[test]
fn consistent_checksums_but_wrong_content_is_an_error() {
    let dir = TempDir::new("content");
    let p = dir.file("c.qnt");
    let v = [1.0f32; 8];
    // (kind, d, metric, ntotal, vectors, expected message)
    type Case = (&'static str, u64, &'static str, u64, Vec<f32>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "Other",
            4,
            "l2",
            2,
            v.to_vec(),
            "holds a Other, not a IndexFlat",
        ),
        ("IndexFlat", 0, "l2", 2, v.to_vec(), "metadata 'd' is 0"),
        (
            "IndexFlat",
            4,
            "cosine",
            2,
            v.to_vec(),
            "metadata 'metric' is \"cosine\"",
        ),
        (
            "IndexFlat",
            4,
            "l2",
            3,
            v.to_vec(),
            "holds 8 floats, expected ntotal x d = 3 x 4",
        ),
        (
            "IndexFlat",
            4,
            "l2",
            u64::MAX,
            v.to_vec(),
            "expected ntotal x d",
        ),
        (
            "IndexFlat",
            4,
            "l2",
            2,
            vec![1.0, 2.0, 3.0, 4.0, 5.0, f32::NAN, 0.0, 0.0],
            "row 1, column 1",
        ),
    ];
    for (kind, d, metric, n, data, want) in cases {
        write_flat_like(&p, kind, d, metric, n, &data);
        let m = format_msg(IndexFlat::read(&p, false), want);
        assert!(m.contains(want) && m.contains("c.qnt"), "{want}: {m}");
    }
    // a missing section / metadata key is named
    let mut w = FileWriter::new("IndexFlat");
    w.meta_u64("d", 4)
        .meta_str("metric", "l2")
        .meta_u64("ntotal", 0);
    let m = format_msg(IndexFlat::from_bytes(&w.to_bytes().unwrap()), "no vectors");
    assert!(m.contains("missing section 'vectors'"), "{m}");
    let mut w = FileWriter::new("IndexFlat");
    w.meta_u64("d", 4).section_f32("vectors", &[]);
    let m = format_msg(IndexFlat::from_bytes(&w.to_bytes().unwrap()), "no metric");
    assert!(m.contains("missing metadata 'metric'"), "{m}");
    let r = FileReader::from_bytes(w.to_bytes().unwrap()).unwrap();
    assert_eq!(r.kind(), "IndexFlat");
}

/// A small trained IndexPQ (nbits = 4, so code validation on load is exercised too).
fn small_pq() -> quanta_core::index::IndexPQ {
    use quanta_core::control::Control;
    use quanta_core::pq::PqTrainParams;
    let mut r = quanta_core::rng::Rng::new(5);
    let x: Vec<f32> = (0..64 * 4).map(|_| r.normal() as f32).collect();
    let mut idx = quanta_core::index::IndexPQ::new(4, 2, 4, Metric::L2).unwrap();
    let p = PqTrainParams {
        niter: 3,
        ..Default::default()
    };
    idx.train(&x, &p, &Control::new()).unwrap();
    idx.add(&x[..8 * 4], &Control::new()).unwrap();
    idx
}

#[test]
fn index_pq_round_trip_and_every_truncation_and_flip_is_an_error() {
    use quanta_core::control::Control;
    use quanta_core::index::IndexPQ;
    use quanta_core::pq::SearchMode;
    let idx = small_pq();
    let bytes = idx.to_bytes().unwrap();
    let dir = TempDir::new("pq");
    let path = dir.file("pq.qnt");
    idx.write(&path).unwrap();
    for mmap in [false, true] {
        let back = IndexPQ::read(&path, mmap).unwrap();
        assert_eq!(back.codes(), idx.codes());
        assert_eq!(back.pq().centroids(), idx.pq().centroids());
        assert_eq!(back.pq().bias(), idx.pq().bias());
        let q = [0.1f32, -0.2, 0.3, 0.0];
        let a = idx
            .search(&q, 3, SearchMode::Adc, true, &Control::new())
            .unwrap();
        let b = back
            .search(&q, 3, SearchMode::Adc, true, &Control::new())
            .unwrap();
        assert_eq!(a, b);
    }
    for len in 0..bytes.len() {
        assert!(
            IndexPQ::from_bytes(&bytes[..len]).is_err(),
            "truncated at {len}"
        );
    }
    for pos in 0..bytes.len() {
        let mut b = bytes.clone();
        b[pos] ^= 0x10;
        assert!(IndexPQ::from_bytes(&b).is_err(), "flip at byte {pos}");
    }
    // an IndexFlat file is not an IndexPQ
    let flat = small_index(Metric::L2).to_bytes().unwrap();
    assert!(IndexPQ::from_bytes(&flat).is_err());
}

/// Every prefix and every single-byte flip of `bytes` must fail to load as `T`.
fn every_truncation_and_flip_is_an_error<T: Persist>(bytes: &[u8]) {
    for len in 0..bytes.len() {
        assert!(T::from_bytes(&bytes[..len]).is_err(), "truncated at {len}");
    }
    for pos in 0..bytes.len() {
        let mut b = bytes.to_vec();
        b[pos] ^= 0x10;
        assert!(T::from_bytes(&b).is_err(), "flip at byte {pos}");
    }
}

#[test]
fn index_binary_flat_round_trip_and_every_truncation_and_flip_is_an_error() {
    use quanta_core::index::IndexBinaryFlat;
    let mut r = Rng::new(21);
    let mut idx = IndexBinaryFlat::new(24).unwrap();
    let codes: Vec<u8> = (0..9 * 3).map(|_| r.below(256) as u8).collect();
    idx.add_with_ids(&codes, &[7, 3, 3, 11, 0, 5, 9, 2, 8])
        .unwrap();
    let bytes = idx.to_bytes().unwrap();
    let dir = TempDir::new("binary");
    let path = dir.file("binary.qnt");
    idx.write(&path).unwrap();
    assert_eq!(read_index_kind(&path).unwrap(), "IndexBinaryFlat");
    let q: Vec<u8> = (0..2 * 3).map(|_| r.below(256) as u8).collect();
    for mmap in [false, true] {
        let back = IndexBinaryFlat::read(&path, mmap).unwrap();
        assert_eq!(back.nbits(), 24);
        assert_eq!(back.codes(), idx.codes());
        assert_eq!(back.ids(), idx.ids());
        for k in [1, 4, 12] {
            assert_eq!(
                back.search(&q, k, &Control::new()).unwrap(),
                idx.search(&q, k, &Control::new()).unwrap()
            );
        }
    }
    every_truncation_and_flip_is_an_error::<IndexBinaryFlat>(&bytes);
    // checksum-valid but inconsistent: a negative id, ids vs codes, nbits
    let bad = |nbits: u64, codes: &[u8], ids: &[i64]| {
        let mut w = FileWriter::new("IndexBinaryFlat");
        w.meta_u64("nbits", nbits)
            .meta_u64("ntotal", ids.len() as u64)
            .section_u8("codes", codes)
            .section_i64("ids", ids);
        let e = IndexBinaryFlat::from_bytes(&w.to_bytes().unwrap()).unwrap_err();
        assert!(matches!(e, Error::Format(_)), "{e}");
    };
    bad(8, &[1, 2], &[0, -1]);
    bad(8, &[1, 2, 3], &[0, 1]);
    bad(12, &[1, 2], &[0, 1]);
    bad(0, &[], &[]);
    let flat = small_index(Metric::L2).to_bytes().unwrap();
    assert!(IndexBinaryFlat::from_bytes(&flat).is_err());
}

#[test]
fn index_lattice_round_trip_and_every_truncation_and_flip_is_an_error() {
    use quanta_core::lattice::{E8ShellCodec, IndexLattice, LatticeCodec, ZnSphereCodec};
    let ctl = Control::new();
    let mut r = Rng::new(22);
    let d = 8;
    let x: Vec<f32> = (0..d * 12).map(|_| r.normal() as f32).collect();
    let q: Vec<f32> = (0..d * 3).map(|_| r.normal() as f32).collect();
    let dir = TempDir::new("lattice");
    for (codec, metric) in [
        (
            LatticeCodec::Zn(ZnSphereCodec::new(d, 6).unwrap()),
            Metric::InnerProduct,
        ),
        (
            LatticeCodec::E8Shell(E8ShellCodec::new(d, &[1, 3]).unwrap()),
            Metric::L2,
        ),
    ] {
        let mut idx = IndexLattice::new(codec, metric);
        idx.add(&x, &ctl).unwrap();
        let bytes = idx.to_bytes().unwrap();
        let path = dir.file("lattice.qnt");
        idx.write(&path).unwrap();
        assert_eq!(read_index_kind(&path).unwrap(), "IndexLattice");
        for mmap in [false, true] {
            let back = IndexLattice::read(&path, mmap).unwrap();
            assert_eq!(back.codes(), idx.codes());
            assert_eq!(back.metric(), metric);
            assert_eq!(back.code_size(), idx.code_size());
            assert_eq!(back.codec().nv(), idx.codec().nv());
            for k in [1, 5, 20] {
                assert_eq!(
                    back.search(&q, k, &ctl).unwrap(),
                    idx.search(&q, k, &ctl).unwrap()
                );
            }
        }
        every_truncation_and_flip_is_an_error::<IndexLattice>(&bytes);
    }
    // checksum-valid but inconsistent: a code >= nv, a bad codec, unordered shells
    let zn = ZnSphereCodec::new(d, 6).unwrap();
    let cs = zn.code_size();
    let too_big = vec![0xFFu8; cs];
    let bad = |codec: &str, extra: &dyn Fn(&mut FileWriter<'_>), codes: &[u8], n: u64| {
        let mut w = FileWriter::new("IndexLattice");
        w.meta_str("codec", codec)
            .meta_u64("d", d as u64)
            .meta_str("metric", "ip")
            .meta_u64("ntotal", n);
        extra(&mut w);
        w.section_u8("codes", codes);
        let e = IndexLattice::from_bytes(&w.to_bytes().unwrap()).unwrap_err();
        assert!(matches!(e, Error::Format(_)), "{e}");
    };
    if (zn.nv() as f64) < 256f64.powi(cs as i32) {
        bad(
            "zn",
            &|w| {
                w.meta_u64("r2", 6);
            },
            &too_big,
            1,
        );
    }
    bad(
        "zn",
        &|w| {
            w.meta_u64("r2", 6);
        },
        &too_big,
        2,
    );
    bad(
        "zn",
        &|w| {
            w.meta_u64("r2", 0);
        },
        &[],
        0,
    );
    bad("pq", &|_| {}, &[], 0);
    for s in ["3,1", "1,1", "", "1,x", "+1", "0", "9"] {
        bad(
            "e8shell",
            &|w| {
                w.meta_str("shells", s);
            },
            &[],
            0,
        );
    }
}
