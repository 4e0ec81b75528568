//! faiss file → quanta index. Each faiss object is parsed with bounds-checked reads into the
//! native container of the quanta type that has the same semantics, which is then loaded by
//! that type's own `from_file` (so every consistency check of the native format applies to
//! faiss files too: NaN vectors, code ranges, list offsets, ...).

use super::codes::{pq4_blocks_len, pq_code_size, unpack_pq, unpack_pq4};
use super::cursor::Cursor;
use super::{fourcc_name, IVF_MAX_NLIST, MAX_DEPTH};
use crate::distance::Metric;
use crate::error::Result;
use crate::fastscan::{pack_codes, packed_len};
use crate::io::FileWriter;

/// A parsed float index: its native file and what a parent needs to know about it.
pub(super) struct Parsed {
    pub(super) w: FileWriter<'static>,
    pub(super) kind: &'static str,
    pub(super) d: usize,
    pub(super) ntotal: usize,
    pub(super) metric: Metric,
    /// Sub-quantizers of a PQ index (the M an OPQ rotation over it is trained for).
    pub(super) m: Option<usize>,
}

/// faiss's `write_index_header`.
struct Header {
    d: usize,
    ntotal: usize,
    trained: bool,
    metric: Metric,
}

/// Largest dimension accepted (faiss stores `d` as an `int`).
const MAX_D: usize = i32::MAX as usize;
/// Largest element count accepted before the bytes are checked (they always are).
const MAX_N: usize = isize::MAX as usize;

fn metric_of(c: &mut Cursor<'_>, mt: i32) -> Result<Metric> {
    match mt {
        0 => Ok(Metric::InnerProduct),
        1 => Ok(Metric::L2),
        m if m > 1 => {
            c.f32("metric_arg")?;
            Err(c.err(format!(
                "metric_type {m} (faiss METRIC_L1, Linf, Lp, ...): quanta indexes use L2 or \
                 inner product"
            )))
        }
        m => Err(c.err(format!("metric_type is {m}, not a faiss metric"))),
    }
}

fn header(c: &mut Cursor<'_>) -> Result<Header> {
    let d = c.positive_i32("d", MAX_D)?;
    let ntotal = c.count_i64("ntotal", MAX_N)?;
    c.i64("dummy")?;
    c.i64("dummy")?;
    let trained = c.bool("is_trained")?;
    let mt = c.i32("metric_type")?;
    let metric = metric_of(c, mt)?;
    Ok(Header {
        d,
        ntotal,
        trained,
        metric,
    })
}

/// Any float index, after its fourcc.
pub(super) fn index(c: &mut Cursor<'_>, depth: usize) -> Result<Parsed> {
    if depth > MAX_DEPTH {
        return Err(c.err(format!("indexes nested more than {MAX_DEPTH} deep")));
    }
    let h = c.fourcc("index fourcc")?;
    match &h {
        b"IxF2" | b"IxFI" | b"IxFl" => flat(c),
        b"IxPq" => pq(c),
        b"IPfs" => pq_fast_scan(c),
        b"IwFl" => ivf_flat(c, depth),
        b"IwPQ" => ivf_pq(c, depth, false),
        b"IwPf" => ivf_pq(c, depth, true),
        b"IxMp" | b"IxM2" => id_map(c, depth),
        b"IxPT" => pre_transform(c, depth),
        b"IxRF" => refine(c, depth),
        b"IxSQ" => sq(c),
        b"IwSq" => ivf_sq(c, depth),
        other => Err(c.err(format!(
            "{}: quanta reads faiss IndexFlat, IndexPQ, IndexPQFastScan, IndexScalarQuantizer, \
             IndexIVFFlat, IndexIVFPQ, IndexIVFPQFastScan, IndexIVFScalarQuantizer, \
             IndexIDMap(2), IndexPreTransform (OPQ or rotation) and IndexRefineFlat files",
            fourcc_name(other)
        ))),
    }
}

/// A flat index after its fourcc: its header and vectors.
fn flat_parts(c: &mut Cursor<'_>) -> Result<(Header, Vec<f32>)> {
    let h = header(c)?;
    let v = c.vec_f32("vectors")?;
    if Some(v.len()) != h.ntotal.checked_mul(h.d) {
        return Err(c.err(format!(
            "IndexFlat holds {} floats, expected ntotal x d = {} x {}",
            v.len(),
            h.ntotal,
            h.d
        )));
    }
    Ok((h, v))
}

fn flat(c: &mut Cursor<'_>) -> Result<Parsed> {
    let (h, v) = flat_parts(c)?;
    let mut w = FileWriter::new("IndexFlat");
    w.meta_u64("d", h.d as u64)
        .meta_str("metric", h.metric.name())
        .meta_u64("ntotal", h.ntotal as u64)
        .section_owned("vectors", v);
    Ok(Parsed {
        w,
        kind: "IndexFlat",
        d: h.d,
        ntotal: h.ntotal,
        metric: h.metric,
        m: None,
    })
}

/// faiss `ProductQuantizer`: d, M, nbits (size_t) and the centroids.
struct Pq {
    m: usize,
    nbits: usize,
    centroids: Vec<f32>,
}

fn product_quantizer(c: &mut Cursor<'_>, d: usize) -> Result<Pq> {
    let pd = c.size("pq.d", MAX_D)?;
    let m = c.size("pq.M", MAX_D)?;
    let nbits = c.size("pq.nbits", 16)?;
    let centroids = c.vec_f32("pq.centroids")?;
    if pd != d || m == 0 || !d.is_multiple_of(m) || !(1..=8).contains(&nbits) {
        return Err(c.err(format!(
            "product quantizer d={pd}, M={m}, nbits={nbits} for an index of d={d}: quanta \
             needs M to divide d and nbits in 1..=8"
        )));
    }
    if centroids.len() != d << nbits {
        return Err(c.err(format!(
            "pq.centroids holds {} floats, expected d x 2^nbits = {}",
            centroids.len(),
            d << nbits
        )));
    }
    Ok(Pq {
        m,
        nbits,
        centroids,
    })
}

/// The native PQ metadata (`ProductQuantizer::write_meta`); faiss has no bias correction, so
/// the bias terms are zero (they need the training set).
fn pq_meta(w: &mut FileWriter<'static>, d: usize, pq: Pq, trained: bool) {
    let bias = vec![0f32; pq.m << pq.nbits];
    w.meta_u64("d", d as u64)
        .meta_u64("M", pq.m as u64)
        .meta_u64("nbits", pq.nbits as u64)
        .meta_u64("pq_trained", trained as u64)
        .section_owned("pq_centroids", pq.centroids)
        .section_owned("pq_bias", bias);
}

fn pq(c: &mut Cursor<'_>) -> Result<Parsed> {
    let h = header(c)?;
    let pq = product_quantizer(c, h.d)?;
    let cs = pq_code_size(pq.m, pq.nbits);
    let packed = c.vec_u8("codes")?;
    if Some(packed.len()) != h.ntotal.checked_mul(cs) {
        return Err(c.err(format!(
            "IndexPQ holds {} code bytes, expected ntotal x code_size = {} x {cs}",
            packed.len(),
            h.ntotal
        )));
    }
    let search_type = c.i32("search_type")?;
    c.bool("encode_signs")?;
    c.i32("polysemous_ht")?;
    // faiss ST_PQ (0) and the polysemous filters (4, 5; a Hamming pre-filter of ADC) search
    // by ADC, ST_SDC (3) by SDC; Hamming-only search (1, 2) has no quanta equivalent
    let mode = match search_type {
        0 | 4 | 5 => "adc",
        3 => "sdc",
        t => {
            return Err(c.err(format!(
                "IndexPQ search_type {t} (Hamming-only search) has no quanta equivalent"
            )))
        }
    };
    let codes = unpack_pq(&packed, h.ntotal, pq.m, pq.nbits);
    let m = pq.m;
    let mut w = FileWriter::new("IndexPQ");
    pq_meta(&mut w, h.d, pq, h.trained);
    w.meta_str("metric", h.metric.name())
        .meta_u64("ntotal", h.ntotal as u64)
        .meta_str("mode", mode)
        .meta_u64("bias_correction", 0)
        .section_owned("codes", codes);
    Ok(Parsed {
        w,
        kind: "IndexPQ",
        d: h.d,
        ntotal: h.ntotal,
        metric: h.metric,
        m: Some(m),
    })
}

/// `bbs` of a fast-scan file: a positive multiple of 32.
fn bbs_of(c: &Cursor<'_>, bbs: i32) -> Result<usize> {
    if bbs <= 0 || bbs % 32 != 0 || bbs > 1 << 20 {
        return Err(c.err(format!("bbs is {bbs}, not a positive multiple of 32")));
    }
    Ok(bbs as usize)
}

fn pq_fast_scan(c: &mut Cursor<'_>) -> Result<Parsed> {
    let h = header(c)?;
    let pq = product_quantizer(c, h.d)?;
    c.i32("implem")?;
    let bbs = c.i32("bbs")?;
    let bbs = bbs_of(c, bbs)?;
    c.i32("qbs")?;
    let ntotal2 = c.size("ntotal2", MAX_N)?;
    let m2 = c.size("M2", MAX_D)?;
    let blocks = c.vec_u8("codes")?;
    if pq.nbits != 4 || m2 != pq.m + (pq.m & 1) {
        return Err(c.err(format!(
            "IndexPQFastScan with nbits={}, M={}, M2={m2}: expected nbits=4 and M2 = M rounded \
             up to even",
            pq.nbits, pq.m
        )));
    }
    if ntotal2 != h.ntotal.div_ceil(bbs) * bbs || blocks.len() != pq4_blocks_len(h.ntotal, bbs, m2)
    {
        return Err(c.err(format!(
            "IndexPQFastScan holds {} code bytes and ntotal2={ntotal2}, expected {} and {} for \
             ntotal={}, bbs={bbs}",
            blocks.len(),
            pq4_blocks_len(h.ntotal, bbs, m2),
            h.ntotal.div_ceil(bbs) * bbs,
            h.ntotal
        )));
    }
    let m = pq.m;
    let codes = unpack_pq4(&blocks, h.ntotal, m, bbs);
    let mut native = vec![0u8; packed_len(h.ntotal, m)];
    pack_codes(&codes, m, 0, &mut native);
    let mut w = FileWriter::new("IndexPQFastScan");
    pq_meta(&mut w, h.d, pq, h.trained);
    w.meta_str("metric", h.metric.name())
        .meta_u64("ntotal", h.ntotal as u64)
        .meta_u64("bbs", crate::fastscan::BBS as u64)
        .meta_u64("k_factor", 1)
        .section_owned("blocks", native);
    Ok(Parsed {
        w,
        kind: "IndexPQFastScan",
        d: h.d,
        ntotal: h.ntotal,
        metric: h.metric,
        m: Some(m),
    })
}

/// faiss `write_ivf_header`: the index header, nlist, nprobe, the coarse quantizer (a flat
/// index for quanta) and the direct map (not needed: quanta finds ids in the lists).
struct Ivf {
    h: Header,
    nlist: usize,
    nprobe: usize,
    coarse: Vec<f32>,
}

fn ivf_header(c: &mut Cursor<'_>, depth: usize) -> Result<Ivf> {
    let h = header(c)?;
    let nlist = c.size("nlist", IVF_MAX_NLIST)?;
    let nprobe = c.size("nprobe", MAX_N)?;
    if nlist == 0 {
        return Err(c.err("nlist is 0"));
    }
    if depth + 1 > MAX_DEPTH {
        return Err(c.err(format!("indexes nested more than {MAX_DEPTH} deep")));
    }
    let qh = c.fourcc("coarse quantizer fourcc")?;
    if !matches!(&qh, b"IxF2" | b"IxFI" | b"IxFl") {
        return Err(c.err(format!(
            "the coarse quantizer is {}: quanta reads IVF files whose quantizer is a flat \
             index (IndexFlatL2 / IndexFlatIP)",
            fourcc_name(&qh)
        )));
    }
    let (q, coarse) = flat_parts(c)?;
    if q.d != h.d || (q.ntotal != nlist && q.ntotal != 0) {
        return Err(c.err(format!(
            "the coarse quantizer has d={}, {} centroids; the index has d={}, nlist={nlist}",
            q.d, q.ntotal, h.d
        )));
    }
    if q.metric != h.metric && q.ntotal > 0 {
        return Err(c.err(format!(
            "the coarse quantizer uses {} but the index {}: quanta's IVF assigns lists with \
             the index metric (build the faiss index with a quantizer of the same metric)",
            q.metric.name(),
            h.metric.name()
        )));
    }
    // direct map: type (0 none, 1 array, 2 hash table), the array, the table's (id, key) pairs
    let dm = c.u8("direct_map type")?;
    if dm > 2 {
        return Err(c.err(format!("direct_map type is {dm}, not 0, 1 or 2")));
    }
    c.skip_vec(8, "direct_map array")?;
    if dm == 2 {
        c.skip_vec(16, "direct_map hash table")?;
    }
    Ok(Ivf {
        h,
        nlist,
        nprobe: nprobe.max(1),
        coarse,
    })
}

/// Inverted lists in quanta's layout: list offsets, the codes and ids of every list in order.
struct Lists {
    offsets: Vec<u64>,
    codes: Vec<u8>,
    ids: Vec<i64>,
}

fn lists_from_sizes(
    c: &mut Cursor<'_>,
    sizes: &[usize],
    code_size: usize,
    mut read_list: impl FnMut(&mut Cursor<'_>, usize, &mut Lists) -> Result<()>,
) -> Result<Lists> {
    let total = sizes
        .iter()
        .try_fold(0usize, |a, &n| a.checked_add(n))
        .filter(|&t| {
            t.checked_mul(code_size.saturating_add(8))
                .is_some_and(|b| b <= c.remaining())
        })
        .ok_or_else(|| c.err("truncated: the list sizes add up to more than the file holds"))?;
    let mut out = Lists {
        offsets: Vec::with_capacity(sizes.len() + 1),
        codes: Vec::with_capacity(total * code_size),
        ids: Vec::with_capacity(total),
    };
    out.offsets.push(0);
    for &n in sizes {
        if n > 0 {
            read_list(c, n, &mut out)?;
        }
        out.offsets.push(out.ids.len() as u64);
    }
    Ok(out)
}

/// faiss `ArrayInvertedLists` ("ilar"), or no lists ("il00").
fn array_lists(c: &mut Cursor<'_>, nlist: usize, code_size: usize) -> Result<Lists> {
    let h = c.fourcc("inverted lists fourcc")?;
    if &h == b"il00" {
        return Ok(Lists {
            offsets: vec![0; nlist + 1],
            codes: Vec::new(),
            ids: Vec::new(),
        });
    }
    if &h != b"ilar" {
        return Err(c.err(format!(
            "inverted lists of type {}: quanta reads in-memory lists ('ilar'; for on-disk \
             lists, load the index in faiss with IO_FLAG_ONDISK_SAME_DIR off and save it)",
            fourcc_name(&h)
        )));
    }
    let nl = c.size("invlists nlist", IVF_MAX_NLIST)?;
    let cs = c.size("invlists code_size", MAX_D)?;
    if nl != nlist || cs != code_size {
        return Err(c.err(format!(
            "inverted lists with nlist={nl}, code_size={cs}; the index has nlist={nlist}, \
             code_size={code_size}"
        )));
    }
    let lt = c.fourcc("list type")?;
    let raw = c.vec_u64("list sizes")?;
    let too_big = |c: &Cursor<'_>| c.err("a list size is larger than the file");
    let mut sizes = vec![0usize; nlist];
    match &lt {
        b"full" if raw.len() == nlist => {
            for (s, &r) in sizes.iter_mut().zip(&raw) {
                *s = usize::try_from(r).map_err(|_| too_big(c))?;
            }
        }
        b"sprs" if raw.len() % 2 == 0 => {
            for p in raw.chunks_exact(2) {
                let l = usize::try_from(p[0]).ok().filter(|&l| l < nlist);
                let l = l.ok_or_else(|| c.err(format!("sparse list number {} >= nlist", p[0])))?;
                sizes[l] = usize::try_from(p[1]).map_err(|_| too_big(c))?;
            }
        }
        _ => {
            return Err(c.err(format!(
                "list sizes of type {} with {} entries for nlist={nlist}",
                fourcc_name(&lt),
                raw.len()
            )))
        }
    }
    lists_from_sizes(c, &sizes, code_size, |c, n, out| {
        out.codes
            .extend_from_slice(c.take(n * code_size, "list codes")?);
        out.ids.extend(c.i64s(n, "list ids")?);
        Ok(())
    })
}

/// The native IVF metadata and lists (`IvfBase::write_meta`); `codes` are the lists' codes
/// in the element type of the index (`f32` vectors or `u8` sub-codes).
fn ivf_native<T: crate::io::Element>(
    kind: &'static str,
    ivf: &Ivf,
    offsets: Vec<u64>,
    codes: Vec<T>,
    ids: Vec<i64>,
) -> FileWriter<'static> {
    let mut w = FileWriter::new(kind);
    w.meta_u64("d", ivf.h.d as u64)
        .meta_u64("nlist", ivf.nlist as u64)
        .meta_str("metric", ivf.h.metric.name())
        .meta_u64("ntotal", ivf.h.ntotal as u64)
        .meta_u64("nprobe", ivf.nprobe as u64)
        .section_owned("coarse", ivf.coarse.clone())
        .section_owned("list_offsets", offsets)
        .section_owned("list_codes", codes)
        .section_owned("list_ids", ids);
    w
}

fn check_ntotal(c: &Cursor<'_>, ivf: &Ivf, lists: &Lists) -> Result<()> {
    if lists.ids.len() != ivf.h.ntotal {
        return Err(c.err(format!(
            "the index header says ntotal={} but the lists hold {} entries",
            ivf.h.ntotal,
            lists.ids.len()
        )));
    }
    Ok(())
}

fn ivf_flat(c: &mut Cursor<'_>, depth: usize) -> Result<Parsed> {
    let ivf = ivf_header(c, depth)?;
    let d = ivf.h.d;
    let code_size = d.checked_mul(4).ok_or_else(|| c.err("d is too large"))?;
    let lists = array_lists(c, ivf.nlist, code_size)?;
    check_ntotal(c, &ivf, &lists)?;
    let vectors: Vec<f32> = lists
        .codes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    let n = lists.ids.len();
    let w = ivf_native("IndexIVFFlat", &ivf, lists.offsets, vectors, lists.ids);
    Ok(Parsed {
        w,
        kind: "IndexIVFFlat",
        d,
        ntotal: n,
        metric: ivf.h.metric,
        m: None,
    })
}

/// faiss `BlockInvertedLists` ("ilbl") of 4-bit fast-scan codes, unpacked to one byte per
/// sub-code.
fn block_lists(c: &mut Cursor<'_>, nlist: usize, m: usize, code_size: usize) -> Result<Lists> {
    let h = c.fourcc("inverted lists fourcc")?;
    if &h != b"ilbl" {
        return Err(c.err(format!(
            "IndexIVFPQFastScan lists of type {}, expected block lists ('ilbl')",
            fourcc_name(&h)
        )));
    }
    let nl = c.size("invlists nlist", IVF_MAX_NLIST)?;
    let cs = c.size("invlists code_size", usize::MAX)?;
    let npb = c.size("n_per_block", 1 << 20)?;
    let bs = c.size("block_size", MAX_N)?;
    let m2 = m + (m & 1);
    // faiss's block lists store InvertedLists::INVALID_CODE_SIZE (size_t(-1)): codes are
    // not one code_size each
    let cs = if cs == usize::MAX { code_size } else { cs };
    if nl != nlist
        || cs != code_size
        || npb == 0
        || npb % 32 != 0
        || Some(bs) != (npb * m2).checked_div(2)
    {
        return Err(c.err(format!(
            "block lists with nlist={nl}, code_size={cs}, n_per_block={npb}, \
             block_size={bs}; expected nlist={nlist}, code_size={code_size}, a multiple of 32 \
             and n_per_block x M2 / 2"
        )));
    }
    let mut out = Lists {
        offsets: vec![0],
        codes: Vec::new(),
        ids: Vec::new(),
    };
    for _ in 0..nlist {
        let ids = c.vec_i64("list ids")?;
        let blocks = c.vec_u8("list codes")?;
        if blocks.len() != pq4_blocks_len(ids.len(), npb, m2) {
            return Err(c.err(format!(
                "a list of {} entries holds {} code bytes, expected {}",
                ids.len(),
                blocks.len(),
                pq4_blocks_len(ids.len(), npb, m2)
            )));
        }
        out.codes.extend(unpack_pq4(&blocks, ids.len(), m, npb));
        out.ids.extend(ids);
        out.offsets.push(out.ids.len() as u64);
    }
    Ok(out)
}

fn ivf_pq(c: &mut Cursor<'_>, depth: usize, fast_scan: bool) -> Result<Parsed> {
    let ivf = ivf_header(c, depth)?;
    let by_residual = c.bool("by_residual")?;
    let code_size = c.size("code_size", MAX_D)?;
    if fast_scan {
        let bbs = c.i32("bbs")?;
        bbs_of(c, bbs)?;
        c.size("M2", MAX_D)?;
        c.i32("implem")?;
        c.size("qbs2", MAX_N)?;
    }
    let d = ivf.h.d;
    let pq = product_quantizer(c, d)?;
    let (m, nbits) = (pq.m, pq.nbits);
    if code_size != pq_code_size(m, nbits) || (fast_scan && nbits != 4) {
        return Err(c.err(format!(
            "code_size={code_size} for M={m}, nbits={nbits} (fast scan needs nbits=4)"
        )));
    }
    let lists = if fast_scan {
        block_lists(c, ivf.nlist, m, code_size)?
    } else {
        let mut l = array_lists(c, ivf.nlist, code_size)?;
        l.codes = unpack_pq(&l.codes, l.ids.len(), m, nbits);
        l
    };
    check_ntotal(c, &ivf, &lists)?;
    let kind = if fast_scan {
        "IndexIVFPQFastScan"
    } else {
        "IndexIVFPQ"
    };
    let trained = ivf.h.trained;
    let n = lists.ids.len();
    let mut w = ivf_native(kind, &ivf, lists.offsets, lists.codes, lists.ids);
    pq_meta(&mut w, d, pq, trained);
    w.meta_u64("by_residual", by_residual as u64);
    if fast_scan {
        w.meta_u64("k_factor", 1);
    }
    Ok(Parsed {
        w,
        kind,
        d,
        ntotal: n,
        metric: ivf.h.metric,
        m: Some(m),
    })
}

/// faiss `ScalarQuantizer`, as quanta's codec metadata ([`crate::sq::ScalarQuantizer`]).
struct Sq {
    qtype: &'static str,
    /// Per-dimension ranges of the uniform types (empty until trained, and for the floats).
    vmin: Vec<f32>,
    vdiff: Vec<f32>,
    code_size: usize,
}

impl Sq {
    fn write_meta(self, w: &mut FileWriter<'static>, d: usize) {
        w.meta_u64("d", d as u64).meta_str("qtype", self.qtype);
        if matches!(self.qtype, "8bit" | "4bit") {
            w.section_owned("sq_vmin", self.vmin)
                .section_owned("sq_vdiff", self.vdiff);
        }
    }
}

/// faiss `write_ScalarQuantizer`: qtype, rangestat, rangestat_arg, d, code_size, trained
/// (`[vmin; d] ++ [vdiff; d]`, or one `vmin, vdiff` pair for the `_uniform` types). faiss's
/// codes decode as quanta's (`vmin + (c + ½)·vdiff / (2^b − 1)`, 4-bit dimension `i` in
/// nibble `i % 2` of byte `i / 2`, fp16 / bf16 little-endian), so only the ranges change form.
fn scalar_quantizer(c: &mut Cursor<'_>, d: usize) -> Result<Sq> {
    let qt = c.i32("sq qtype")?;
    c.i32("sq rangestat")?;
    c.f32("sq rangestat_arg")?;
    let sd = c.size("sq d", MAX_D)?;
    let cs = c.size("sq code_size", MAX_N)?;
    let trained = c.vec_f32("sq trained")?;
    let (qtype, uniform, code_size) = match qt {
        0 => ("8bit", false, d),
        1 => ("4bit", false, d.div_ceil(2)),
        2 => ("8bit", true, d),
        3 => ("4bit", true, d.div_ceil(2)),
        4 => ("fp16", false, 2 * d),
        7 => ("bf16", false, 2 * d),
        t => {
            return Err(c.err(format!(
                "ScalarQuantizer qtype {t} (faiss QT_8bit_direct, QT_6bit, ...): quanta reads \
                 QT_8bit, QT_4bit (and their _uniform variants), QT_fp16 and QT_bf16"
            )))
        }
    };
    if sd != d || cs != code_size {
        return Err(c.err(format!(
            "the ScalarQuantizer has d={sd}, code_size={cs}; the index has d={d}, which \
             needs code_size={code_size}"
        )));
    }
    let (vmin, vdiff) = match (qtype, uniform, trained.len()) {
        ("fp16" | "bf16", _, _) | (_, _, 0) => (Vec::new(), Vec::new()),
        (_, false, n) if n == 2 * d => (trained[..d].to_vec(), trained[d..].to_vec()),
        (_, true, 2) => (vec![trained[0]; d], vec![trained[1]; d]),
        (_, _, n) => {
            return Err(c.err(format!(
                "the ScalarQuantizer's trained ranges hold {n} floats, expected {}",
                if uniform { 2 } else { 2 * d }
            )))
        }
    };
    Ok(Sq {
        qtype,
        vmin,
        vdiff,
        code_size,
    })
}

fn sq(c: &mut Cursor<'_>) -> Result<Parsed> {
    let h = header(c)?;
    let sq = scalar_quantizer(c, h.d)?;
    let codes = c.vec_u8("codes")?;
    if Some(codes.len()) != h.ntotal.checked_mul(sq.code_size) {
        return Err(c.err(format!(
            "IndexScalarQuantizer holds {} code bytes, expected ntotal x code_size = {} x {}",
            codes.len(),
            h.ntotal,
            sq.code_size
        )));
    }
    let mut w = FileWriter::new("IndexScalarQuantizer");
    sq.write_meta(&mut w, h.d);
    w.meta_str("metric", h.metric.name())
        .meta_u64("ntotal", h.ntotal as u64)
        .section_owned("codes", codes);
    Ok(Parsed {
        w,
        kind: "IndexScalarQuantizer",
        d: h.d,
        ntotal: h.ntotal,
        metric: h.metric,
        m: None,
    })
}

fn ivf_sq(c: &mut Cursor<'_>, depth: usize) -> Result<Parsed> {
    let ivf = ivf_header(c, depth)?;
    let d = ivf.h.d;
    let sq = scalar_quantizer(c, d)?;
    let code_size = c.size("code_size", MAX_N)?;
    if code_size != sq.code_size {
        return Err(c.err(format!(
            "code_size={code_size}, but the ScalarQuantizer's is {}",
            sq.code_size
        )));
    }
    let by_residual = c.bool("by_residual")?;
    let lists = array_lists(c, ivf.nlist, code_size)?;
    check_ntotal(c, &ivf, &lists)?;
    let n = lists.ids.len();
    let kind = "IndexIVFScalarQuantizer";
    let mut w = ivf_native(kind, &ivf, lists.offsets, lists.codes, lists.ids);
    sq.write_meta(&mut w, d);
    w.meta_u64("by_residual", by_residual as u64);
    Ok(Parsed {
        w,
        kind,
        d,
        ntotal: n,
        metric: ivf.h.metric,
        m: None,
    })
}

fn id_map(c: &mut Cursor<'_>, depth: usize) -> Result<Parsed> {
    let h = header(c)?;
    let inner = index(c, depth + 1)?;
    let ids = c.vec_i64("id_map")?;
    if ids.len() != h.ntotal || inner.ntotal != h.ntotal || inner.d != h.d {
        return Err(c.err(format!(
            "IndexIDMap of ntotal={}, d={} holds {} ids over an index of {} vectors, d={}",
            h.ntotal,
            h.d,
            ids.len(),
            inner.ntotal,
            inner.d
        )));
    }
    let mut w = FileWriter::new("IndexIDMap");
    w.meta_u64("ntotal", h.ntotal as u64)
        .section_nested("inner", &inner.w)
        .section_owned("ids", ids);
    Ok(Parsed {
        w,
        kind: "IndexIDMap",
        d: h.d,
        ntotal: h.ntotal,
        metric: inner.metric,
        m: inner.m,
    })
}

/// A faiss `LinearTransform` ("LTra", or "rrot" for a random rotation) without bias: the
/// rotation quanta's `OPQMatrix` applies. Returns (d_in, d_out, trained, A).
fn rotation(c: &mut Cursor<'_>) -> Result<(usize, usize, bool, Vec<f32>)> {
    let h = c.fourcc("vector transform fourcc")?;
    if &h != b"LTra" && &h != b"rrot" {
        return Err(c.err(format!(
            "vector transform {}: quanta's IndexPreTransform holds a rotation (faiss \
             OPQMatrix, RandomRotationMatrix or a LinearTransform without bias)",
            fourcc_name(&h)
        )));
    }
    let have_bias = c.bool("have_bias")?;
    let a = c.vec_f32("A")?;
    let b = c.vec_f32("b")?;
    let d_in = c.positive_i32("d_in", MAX_D)?;
    let d_out = c.positive_i32("d_out", MAX_D)?;
    let trained = c.bool("is_trained")?;
    if have_bias && b.iter().any(|&x| x != 0.0) {
        return Err(c.err("the linear transform has a bias: quanta's rotations have none"));
    }
    if trained && Some(a.len()) != d_in.checked_mul(d_out) {
        return Err(c.err(format!(
            "the transform matrix holds {} floats, expected d_out x d_in = {d_out} x {d_in}",
            a.len()
        )));
    }
    Ok((d_in, d_out, trained, a))
}

fn pre_transform(c: &mut Cursor<'_>, depth: usize) -> Result<Parsed> {
    let h = header(c)?;
    let nt = c.i32("chain length")?;
    if nt != 1 {
        return Err(c.err(format!(
            "a chain of {nt} transforms: quanta's IndexPreTransform holds exactly one"
        )));
    }
    let (d_in, d_out, trained, a) = rotation(c)?;
    let inner = index(c, depth + 1)?;
    if d_in != h.d || d_out != inner.d {
        return Err(c.err(format!(
            "transform {d_in} -> {d_out} between an index of d={} and one of d={}",
            h.d, inner.d
        )));
    }
    // M only matters to retrain the rotation: the inner PQ's, else one block
    let m = inner.m.filter(|m| d_out % m == 0).unwrap_or(1);
    let mut t = FileWriter::new("OPQMatrix");
    t.meta_u64("d_in", d_in as u64)
        .meta_u64("d_out", d_out as u64)
        .meta_u64("M", m as u64)
        .meta_u64("niter", 50)
        .meta_u64("niter_pq", 4)
        .meta_u64("niter_pq_0", 40)
        .meta_u64("max_train_points", 256 * 256)
        .meta_u64("seed", 1234)
        .meta_str("init", "random")
        .meta_u64("trained", trained as u64);
    if trained {
        t.section_owned("matrix", a);
    }
    let mut w = FileWriter::new("IndexPreTransform");
    w.section_nested("transform", &t)
        .section_nested("index", &inner.w);
    Ok(Parsed {
        w,
        kind: "IndexPreTransform",
        d: h.d,
        ntotal: inner.ntotal,
        metric: inner.metric,
        m: None,
    })
}

fn refine(c: &mut Cursor<'_>, depth: usize) -> Result<Parsed> {
    let h = header(c)?;
    let base = index(c, depth + 1)?;
    let refine = index(c, depth + 1)?;
    let k_factor = c.f32("k_factor")?;
    if refine.kind != "IndexFlat" {
        return Err(c.err(format!(
            "IndexRefine over a {} refine index: quanta reads IndexRefineFlat (flat refine \
             vectors)",
            refine.kind
        )));
    }
    if !(k_factor.is_finite() && k_factor > 0.0 && k_factor <= 1e6) {
        return Err(c.err(format!("k_factor is {k_factor}, not in (0, 1e6]")));
    }
    // faiss searches k * k_factor base candidates (truncated); quanta's k_factor is an integer
    let kf = (k_factor.ceil() as u64).max(1);
    let mut w = FileWriter::new("IndexRefineFlat");
    w.meta_u64("k_factor", kf)
        .section_nested("base", &base.w)
        .section_nested("refine", &refine.w);
    Ok(Parsed {
        w,
        kind: "IndexRefineFlat",
        d: h.d,
        ntotal: base.ntotal,
        metric: base.metric,
        m: None,
    })
}

/// faiss `write_index_binary_header` and the codes of an `IndexBinaryFlat`; (d, codes).
fn binary_flat(c: &mut Cursor<'_>) -> Result<(usize, usize, Vec<u8>)> {
    let (d, cs, ntotal) = binary_header(c)?;
    let xb = c.vec_u8("codes")?;
    if Some(xb.len()) != ntotal.checked_mul(cs) {
        return Err(c.err(format!(
            "IndexBinaryFlat of ntotal={ntotal} holds {} code bytes (code_size={cs})",
            xb.len()
        )));
    }
    Ok((d, ntotal, xb))
}

/// (d in bits, code_size, ntotal).
fn binary_header(c: &mut Cursor<'_>) -> Result<(usize, usize, usize)> {
    let d = c.positive_i32("d", MAX_D)?;
    let cs = c.positive_i32("code_size", MAX_D)?;
    let ntotal = c.count_i64("ntotal", MAX_N)?;
    c.bool("is_trained")?;
    c.i32("metric_type")?;
    if d % 8 != 0 || cs != d / 8 {
        return Err(c.err(format!(
            "binary index with d={d} bits and code_size={cs}: quanta needs d a multiple of 8"
        )));
    }
    Ok((d, cs, ntotal))
}

/// A binary index, after its fourcc: "IBxF" (flat), or "IBMp"/"IBM2" (id map over a flat one).
pub(super) fn binary(c: &mut Cursor<'_>, h: [u8; 4]) -> Result<FileWriter<'static>> {
    let (d, codes, ids) = match &h {
        b"IBxF" => {
            let (d, n, xb) = binary_flat(c)?;
            (d, xb, (0..n as i64).collect::<Vec<_>>())
        }
        b"IBMp" | b"IBM2" => {
            let (d, _, ntotal) = binary_header(c)?;
            let sub = c.fourcc("index fourcc")?;
            if &sub != b"IBxF" {
                return Err(c.err(format!(
                    "IndexBinaryIDMap over {}: quanta reads it over IndexBinaryFlat",
                    fourcc_name(&sub)
                )));
            }
            let (sd, n, xb) = binary_flat(c)?;
            let ids = c.vec_i64("id_map")?;
            if sd != d || n != ntotal || ids.len() != ntotal {
                return Err(c.err(format!(
                    "IndexBinaryIDMap of d={d}, ntotal={ntotal} holds {} ids over an index of \
                     d={sd}, {n} codes",
                    ids.len()
                )));
            }
            (d, xb, ids)
        }
        other => {
            return Err(c.err(format!(
                "{}: quanta reads faiss IndexBinaryFlat and IndexBinaryIDMap files",
                fourcc_name(other)
            )))
        }
    };
    let mut w = FileWriter::new("IndexBinaryFlat");
    w.meta_u64("nbits", d as u64)
        .meta_u64("ntotal", ids.len() as u64)
        .section_owned("codes", codes)
        .section_owned("ids", ids);
    Ok(w)
}
