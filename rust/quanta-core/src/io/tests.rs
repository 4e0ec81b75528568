use super::format::{ENTRY_LEN, HEADER_LEN};
use super::*;
use crate::error::Error;
use std::path::PathBuf;

/// A fresh empty directory under the system temp dir (removed by the caller's `Drop`).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "quanta-io-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Data {
    u8s: Vec<u8>,
    i32s: Vec<i32>,
    i64s: Vec<i64>,
    u64s: Vec<u64>,
    f32s: Vec<f32>,
    f64s: Vec<f64>,
}

fn data() -> Data {
    Data {
        u8s: (0..=255).collect(),
        i32s: vec![i32::MIN, -1, 0, 1, i32::MAX],
        i64s: vec![i64::MIN, -7, 0, 42, i64::MAX],
        u64s: vec![0, 1, u64::MAX],
        f32s: vec![1.5, -0.0, f32::MAX, f32::MIN_POSITIVE, 3.25, -1e-30, 7.0],
        f64s: vec![std::f64::consts::PI, -2.5e300],
    }
}

fn writer(d: &Data) -> FileWriter<'_> {
    let mut w = FileWriter::new("TestKind");
    w.meta_u64("d", 7)
        .meta_i64("neg", -3)
        .meta_f64("eps", 0.125)
        .meta_str("metric", "ip")
        .meta_str("empty", "")
        .meta_u64("d", 8); // replaces
    w.section_u8("u8", &d.u8s)
        .section_i32("i32", &d.i32s)
        .section_i64("i64", &d.i64s)
        .section_u64("u64", &d.u64s)
        .section_f32("f32", &d.f32s)
        .section_f64("f64", &d.f64s)
        .section_f32("empty", &[]);
    w
}

fn check(r: &FileReader, d: &Data) {
    assert_eq!(r.kind(), "TestKind");
    assert_eq!(r.version(), (VERSION_MAJOR, VERSION_MINOR));
    assert_eq!(r.meta_u64("d").unwrap(), 8);
    assert_eq!(r.meta_usize("d").unwrap(), 8);
    assert_eq!(r.meta_i64("neg").unwrap(), -3);
    assert_eq!(r.meta_f64("eps").unwrap(), 0.125);
    assert_eq!(r.meta_str("metric").unwrap(), "ip");
    assert_eq!(r.meta_str("empty").unwrap(), "");
    assert_eq!(r.meta_entries().len(), 5);
    assert_eq!(&*r.section_u8("u8").unwrap(), &d.u8s[..]);
    assert_eq!(&*r.section_i32("i32").unwrap(), &d.i32s[..]);
    assert_eq!(&*r.section_i64("i64").unwrap(), &d.i64s[..]);
    assert_eq!(&*r.section_u64("u64").unwrap(), &d.u64s[..]);
    let f = r.section_f32("f32").unwrap();
    assert_eq!(
        f.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        d.f32s.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(&*r.section_f64("f64").unwrap(), &d.f64s[..]);
    assert!(r.section_f32("empty").unwrap().is_empty());
    let names: Vec<_> = r.section_names().collect();
    assert_eq!(names, ["u8", "i32", "i64", "u64", "f32", "f64", "empty"]);
}

fn format_msg(e: Error) -> String {
    match e {
        Error::Format(m) => m,
        other => panic!("expected a Format error, got {other:?}"),
    }
}

#[test]
fn round_trip_every_dtype_in_memory() {
    let d = data();
    let bytes = writer(&d).to_bytes().unwrap();
    let r = FileReader::from_bytes(&bytes).unwrap();
    check(&r, &d);
    assert!(!r.is_mapped());
    assert!(r.section_f32("f32").unwrap().is_view());
}

#[test]
fn payloads_are_aligned_and_views_are_zero_copy() {
    let d = data();
    let bytes = writer(&d).to_bytes().unwrap();
    let n = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    assert_eq!(n, 8); // meta + 7
    for e in bytes[HEADER_LEN..HEADER_LEN + n * ENTRY_LEN].chunks_exact(ENTRY_LEN) {
        let off = u64::from_le_bytes(e[24..32].try_into().unwrap());
        assert_eq!(off % ALIGN as u64, 0);
    }
    let r = FileReader::from_bytes(&bytes).unwrap();
    for name in ["f32", "i64", "f64"] {
        let p = match name {
            "f32" => r.section_f32(name).unwrap().as_ptr() as usize,
            "i64" => r.section_i64(name).unwrap().as_ptr() as usize,
            _ => r.section_f64(name).unwrap().as_ptr() as usize,
        };
        assert_eq!(p % ALIGN, 0, "{name} payload not 64-byte aligned in memory");
    }
    // two views of the same section share memory
    let a = r.section_f32("f32").unwrap();
    let b = r.section_f32("f32").unwrap();
    assert_eq!(a.as_ptr(), b.as_ptr());
}

#[test]
fn mmap_and_owned_reads_are_identical() {
    let dir = TempDir::new("mmap");
    let path = dir.0.join("all.qnt");
    let d = data();
    writer(&d).write_atomic(&path).unwrap();
    assert_eq!(dir.entries(), ["all.qnt"]); // no temporary file left
    let owned = FileReader::open(&path, false).unwrap();
    let mapped = FileReader::open(&path, true).unwrap();
    check(&owned, &d);
    check(&mapped, &d);
    assert!(mapped.is_mapped() && !owned.is_mapped());
    let v = mapped.section_f32("f32").unwrap();
    assert!(v.is_mapped());
    assert_eq!(v, owned.section_f32("f32").unwrap());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        writer(&d).to_bytes().unwrap()
    );
    assert_eq!(read_index_kind(&path).unwrap(), "TestKind");
}

#[test]
fn rewriting_a_mapped_file_keeps_the_old_mapping_valid() {
    let dir = TempDir::new("rewrite");
    let path = dir.0.join("x.qnt");
    let (a, b) = (vec![1.0f32; 1000], vec![2.0f32; 10]);
    let mut w = FileWriter::new("K");
    w.section_f32("v", &a);
    w.write_atomic(&path).unwrap();
    let old = FileReader::open(&path, true)
        .unwrap()
        .section_f32("v")
        .unwrap();
    let mut w = FileWriter::new("K");
    w.section_f32("v", &b);
    w.write_atomic(&path).unwrap();
    assert_eq!(&*old, &a[..]);
    let new = FileReader::open(&path, true)
        .unwrap()
        .section_f32("v")
        .unwrap();
    assert_eq!(&*new, &b[..]);
    assert_eq!(dir.entries(), ["x.qnt"]);
}

#[test]
fn failed_atomic_write_leaves_nothing() {
    let dir = TempDir::new("fail");
    let e = FileWriter::new("K")
        .write_atomic(dir.0.join("missing").join("x.qnt"))
        .unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("x.qnt"), "{e}");
    // the target is a directory: rename fails after the temp file was written
    std::fs::create_dir(dir.0.join("sub")).unwrap();
    let e = FileWriter::new("K")
        .write_atomic(dir.0.join("sub"))
        .unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert_eq!(dir.entries(), ["sub"]);
    // invalid names are reported before anything is created
    let mut w = FileWriter::new("K");
    w.section_u8("bad name", &[]);
    assert!(matches!(
        w.write_atomic(dir.0.join("y")),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(dir.entries(), ["sub"]);
}

#[test]
fn writer_rejects_bad_names() {
    const LONG: &str = "xxxxxxxxxxxxxxxxx"; // 17 characters
    type Edit = Box<dyn Fn(&mut FileWriter<'_>)>;
    let bad: Vec<Edit> = vec![
        Box::new(|w| {
            w.section_u8("", &[]);
        }),
        Box::new(|w| {
            w.section_u8(LONG, &[]);
        }),
        Box::new(|w| {
            w.section_u8("meta", &[]);
        }),
        Box::new(|w| {
            w.section_u8("a", &[]).section_f32("a", &[]);
        }),
        Box::new(|w| {
            w.meta_u64("sp ace", 1);
        }),
        Box::new(|w| {
            w.meta_u64("", 1);
        }),
    ];
    for f in bad {
        let mut w = FileWriter::new("K");
        f(&mut w);
        assert!(matches!(w.to_bytes(), Err(Error::InvalidArgument(_))));
    }
    assert!(FileWriter::new("").to_bytes().is_err());
    assert!(FileWriter::new(&"K".repeat(33)).to_bytes().is_err());
    assert!(FileWriter::new(&"K".repeat(32)).to_bytes().is_ok());
}

#[test]
fn getters_name_what_is_missing_or_mistyped() {
    let d = data();
    let r = FileReader::from_bytes(writer(&d).to_bytes().unwrap()).unwrap();
    let m = format_msg(r.section_f32("vectors").unwrap_err());
    assert!(
        m.contains("missing section 'vectors'") && m.contains("u8, i32"),
        "{m}"
    );
    let m = format_msg(r.section_f32("i64").unwrap_err());
    assert!(m.contains("'i64' holds int64, expected float32"), "{m}");
    let m = format_msg(r.meta_u64("nbits").unwrap_err());
    assert!(m.contains("missing metadata 'nbits'"), "{m}");
    let m = format_msg(r.meta_u64("metric").unwrap_err());
    assert!(m.contains("'metric' is a string, expected u64"), "{m}");
    assert!(r.meta_str("d").is_err() && r.meta_i64("d").is_err() && r.meta_f64("d").is_err());
    assert!(r.section_f32("meta").is_err()); // the metadata is not a data section
    let m = format_msg(r.expect_kind("IndexPQ").unwrap_err());
    assert!(m.contains("holds a TestKind, not a IndexPQ"), "{m}");
}

#[test]
fn shared_slice_copy_on_write() {
    let d = data();
    let r = FileReader::from_bytes(writer(&d).to_bytes().unwrap()).unwrap();
    let view = r.section_i64("i64").unwrap();
    let mut w = view.clone();
    assert!(w.is_view());
    w.make_mut().push(5);
    assert!(!w.is_view());
    assert_eq!(&*view, &d.i64s[..]); // the view is untouched
    assert_eq!(w.len(), d.i64s.len() + 1);
    // owned + shared: make_mut copies, the clone keeps its value
    let mut a = SharedSlice::from_vec(vec![1u64, 2]);
    let b = a.clone();
    a.make_mut()[0] = 9;
    assert_eq!((&*a, &*b), (&[9u64, 2][..], &[1u64, 2][..]));
    assert_eq!(b.into_vec(), vec![1, 2]);
    assert_eq!(view.into_vec(), d.i64s);
    assert!(SharedSlice::<f32>::default().is_empty());
    assert_eq!(format!("{:?}", SharedSlice::from(vec![1u8, 2])), "[1, 2]");
}

/// Recompute every payload CRC and the header CRC of a hand-edited file.
fn refix(b: &mut [u8]) {
    let n = u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize;
    for i in 0..n.min((b.len() - HEADER_LEN) / ENTRY_LEN) {
        let at = HEADER_LEN + i * ENTRY_LEN;
        let off = u64::from_le_bytes(b[at + 24..at + 32].try_into().unwrap()) as usize;
        let len = u64::from_le_bytes(b[at + 32..at + 40].try_into().unwrap()) as usize;
        if off.saturating_add(len) <= b.len() {
            let crc = checksum(&b[off..off + len]);
            b[at + 20..at + 24].copy_from_slice(&crc.to_le_bytes());
        }
    }
    let end = HEADER_LEN
        .saturating_add(n.saturating_mul(ENTRY_LEN))
        .min(b.len());
    let crc = format::header_checksum(&b[..HEADER_LEN], &b[HEADER_LEN..end]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
}

/// Entry `i`'s field at byte `at` (u64) set to `v`.
fn set_u64(b: &mut [u8], i: usize, at: usize, v: u64) {
    let p = HEADER_LEN + i * ENTRY_LEN + at;
    b[p..p + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn crafted_files_with_valid_checksums_are_rejected() {
    let f = vec![1.0f32; 16];
    let mut w = FileWriter::new("K");
    w.meta_str("s", "abc").section_f32("v", &f);
    let good = w.to_bytes().unwrap();
    let expect = |edit: &dyn Fn(&mut Vec<u8>), want: &str| {
        let mut b = good.clone();
        edit(&mut b);
        refix(&mut b);
        let m = format_msg(FileReader::from_bytes(&b).err().expect(want));
        assert!(m.contains(want), "wanted {want:?} in {m:?}");
    };
    // version
    expect(&|b| b[8] = 2, "unsupported format version 2.0");
    expect(&|b| b[8] = 2, "newer quanta");
    expect(&|b| b[8] = 0, "this build reads version 1.x");
    // a huge section count, section length, offset or element count never allocates
    expect(
        &|b| b[12..16].copy_from_slice(&u32::MAX.to_le_bytes()),
        "4294967295 sections",
    );
    expect(&|b| set_u64(b, 1, 32, u64::MAX), "extends past the end");
    expect(&|b| set_u64(b, 1, 24, u64::MAX - 3), "extends past the end");
    expect(&|b| set_u64(b, 1, 40, u64::MAX), "do not hold");
    expect(&|b| set_u64(b, 1, 40, 15), "do not hold");
    expect(&|b| set_u64(b, 1, 24, 200), "bad offset");
    expect(&|b| set_u64(b, 1, 24, 64), "bad offset"); // overlaps the table
    expect(&|b| set_u64(b, 0, 40, u64::MAX), "runs past the end");
    expect(
        &|b| set_u64(b, 0, 40, 0),
        "unexpected bytes after 0 entries",
    );
    expect(&|b| b[HEADER_LEN + 16] = 99, "unknown dtype tag 99");
    expect(
        &|b| b[HEADER_LEN + ENTRY_LEN..][..16].copy_from_slice(b"meta\0\0\0\0\0\0\0\0\0\0\0\0"),
        "duplicate section 'meta'",
    );
    expect(&|b| b[32] = 0, "kind tag");
    expect(&|b| b[34] = b' ', "kind tag");
    expect(&|b| b.truncate(b.len() - 4), "truncated file");
    expect(
        &|b| b.extend_from_slice(&[0; 3]),
        "3 unexpected trailing bytes",
    );
    expect(
        &|b| b[16..24].copy_from_slice(&u64::MAX.to_le_bytes()),
        "truncated file",
    );
    // metadata: string length past the section, bad type tag, bad UTF-8
    let meta_at = 64 + 2 * 64;
    expect(
        &|b| b[meta_at + 3..meta_at + 7].copy_from_slice(&u32::MAX.to_le_bytes()),
        "runs past the end",
    );
    expect(&|b| b[meta_at] = 9, "unknown type tag 9");
    expect(&|b| b[meta_at + 7] = 0xff, "not UTF-8");
    // nonzero padding
    expect(&|b| b[meta_at + 10] = 1, "nonzero padding byte at offset");
}

#[test]
fn foreign_and_short_inputs() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "empty file"),
        (b"\x89QUA", "truncated file: 4 bytes"),
        (
            b"\x89PNG\r\n\x1a\n0000000000000000000000000000000000",
            "PNG image",
        ),
        (b"IxF2\x10\0\0\0", "faiss index file"),
        (
            b"hello world, this is text",
            "starts with 68 65 6c 6c 6f 20 77 6f",
        ),
        (b"\x89QUANTA\n", "truncated file: 8 bytes"),
    ];
    for (b, want) in cases {
        let m = format_msg(FileReader::from_bytes(b).err().unwrap());
        assert!(
            m.contains(want) && m.starts_with("<bytes>: "),
            "{want:?} not in {m:?}"
        );
    }
}

#[test]
fn open_errors_name_the_path() {
    let dir = TempDir::new("open");
    let p = dir.0.join("nope.qnt");
    let e = FileReader::open(&p, false).err().unwrap();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("nope.qnt"),
        "{e}"
    );
    assert!(read_index_kind(&p).is_err());
    let e = format_msg(FileReader::open(&dir.0, true).err().unwrap());
    assert!(e.contains("is a directory"), "{e}");
    std::fs::write(&p, b"").unwrap();
    for mmap in [false, true] {
        let e = format_msg(FileReader::open(&p, mmap).err().unwrap());
        assert!(e.contains("nope.qnt") && e.contains("empty file"), "{e}");
    }
    std::fs::write(&p, [7u8; 100]).unwrap();
    let e = format_msg(read_index_kind(&p).unwrap_err());
    assert!(e.contains("not a quanta index file"), "{e}");
}
