//! quanta index → faiss file: the native file of the index (already verified) is rewritten in
//! faiss's layout, object by object, as faiss's `write_index` would write the equivalent
//! faiss index.

use super::codes::{pack_pq, pack_pq4, pq_code_size};
use super::cursor::Out;
use crate::distance::Metric;
use crate::error::{Error, Result};
use crate::fastscan::unpack_code;
use crate::io::{FileReader, MetaValue};

/// What faiss's index header holds.
struct Info {
    d: usize,
    ntotal: usize,
    trained: bool,
    metric: Metric,
}

fn metric(r: &FileReader) -> Result<Metric> {
    Metric::parse(r.meta_str("metric")?).map_err(|e| r.err(e))
}

fn flag(r: &FileReader, key: &str) -> Result<bool> {
    Ok(r.meta_u64(key)? != 0)
}

/// The header fields of any supported kind, from its metadata (composites: from the parts).
fn info(r: &FileReader) -> Result<Info> {
    Ok(match r.kind() {
        "IndexFlat" => Info {
            d: r.meta_usize("d")?,
            ntotal: r.meta_usize("ntotal")?,
            trained: true,
            metric: metric(r)?,
        },
        "IndexPQ" | "IndexPQFastScan" => Info {
            d: r.meta_usize("d")?,
            ntotal: r.meta_usize("ntotal")?,
            trained: flag(r, "pq_trained")?,
            metric: metric(r)?,
        },
        "IndexIVFFlat" | "IndexIVFPQ" | "IndexIVFPQFastScan" => Info {
            d: r.meta_usize("d")?,
            ntotal: r.meta_usize("ntotal")?,
            trained: !r.section_f32("coarse")?.is_empty()
                && (r.kind() == "IndexIVFFlat" || flag(r, "pq_trained")?),
            metric: metric(r)?,
        },
        "IndexScalarQuantizer" => Info {
            d: r.meta_usize("d")?,
            ntotal: r.meta_usize("ntotal")?,
            trained: sq_trained(r)?,
            metric: metric(r)?,
        },
        "IndexIVFScalarQuantizer" => Info {
            d: r.meta_usize("d")?,
            ntotal: r.meta_usize("ntotal")?,
            trained: !r.section_f32("coarse")?.is_empty() && sq_trained(r)?,
            metric: metric(r)?,
        },
        "IndexIDMap" => info(&r.nested("inner")?)?,
        "IndexRefineFlat" => info(&r.nested("base")?)?,
        "IndexPreTransform" => {
            let t = r.nested("transform")?;
            let i = info(&r.nested("index")?)?;
            Info {
                d: t.meta_usize("d_in")?,
                trained: i.trained && flag(&t, "trained")?,
                ..i
            }
        }
        other => return Err(no_format(other)),
    })
}

fn no_format(kind: &str) -> Error {
    Error::invalid(format!(
        "faiss has no file format for quanta's {kind}; faiss files can hold IndexFlat, \
         IndexPQ, IndexPQFastScan, IndexScalarQuantizer, IndexIVFFlat, IndexIVFPQ, \
         IndexIVFPQFastScan, IndexIVFScalarQuantizer, IndexIDMap, IndexPreTransform (OPQ), \
         IndexRefineFlat and IndexBinaryFlat (save it with quanta.write_index in quanta's \
         format)"
    ))
}

/// faiss's `QuantizerType` number and code size of a scalar quantizer's `qtype`.
fn faiss_qtype(r: &FileReader) -> Result<(i32, usize)> {
    let d = r.meta_usize("d")?;
    Ok(match r.meta_str("qtype")? {
        "8bit" => (0, d),
        "4bit" => (1, d.div_ceil(2)),
        "fp16" => (4, 2 * d),
        "bf16" => (7, 2 * d),
        other => {
            return Err(Error::invalid(format!(
                "faiss has no file format for quanta's {other} scalar codes (rotated \
                 Lloyd-Max); save the index with quanta.write_index in quanta's format"
            )))
        }
    })
}

/// Whether a scalar quantizer holds its ranges (the 16-bit float types need none).
fn sq_trained(r: &FileReader) -> Result<bool> {
    Ok(match faiss_qtype(r)?.0 {
        0 | 1 => !r.section_f32("sq_vmin")?.is_empty(),
        _ => true,
    })
}

/// faiss `write_ScalarQuantizer` (RS_minmax, per-dimension ranges); returns the code size.
fn scalar_quantizer(o: &mut Out, r: &FileReader) -> Result<usize> {
    let (qt, cs) = faiss_qtype(r)?;
    o.i32(qt).i32(0).f32(0.0);
    o.u64(r.meta_usize("d")? as u64).u64(cs as u64);
    if qt <= 1 {
        let mut trained = r.section_f32("sq_vmin")?.to_vec();
        trained.extend_from_slice(&r.section_f32("sq_vdiff")?);
        o.vec_f32(&trained);
    } else {
        o.vec_f32(&[]);
    }
    Ok(cs)
}

/// faiss `write_index_header`.
fn header(o: &mut Out, i: &Info) {
    o.i32(i.d as i32)
        .i64(i.ntotal as i64)
        .i64(1 << 20)
        .i64(1 << 20)
        .u8(i.trained as u8)
        .i32(match i.metric {
            Metric::InnerProduct => 0,
            Metric::L2 => 1,
        });
}

fn flat_fourcc(m: Metric) -> &'static [u8; 4] {
    match m {
        Metric::InnerProduct => b"IxFI",
        Metric::L2 => b"IxF2",
    }
}

/// faiss `write_ProductQuantizer`; returns (M, nbits).
fn product_quantizer(o: &mut Out, r: &FileReader) -> Result<(usize, usize)> {
    let (d, m, nbits) = (
        r.meta_usize("d")?,
        r.meta_usize("M")?,
        r.meta_usize("nbits")?,
    );
    o.u64(d as u64).u64(m as u64).u64(nbits as u64);
    o.vec_f32(&r.section_f32("pq_centroids")?);
    Ok((m, nbits))
}

/// Reject what a faiss file cannot say (faiss has no bias correction).
fn no_bias_correction(r: &FileReader) -> Result<()> {
    if matches!(r.meta("bias_correction"), Some(MetaValue::U64(1))) {
        return Err(Error::invalid(
            "this IndexPQ uses bias correction, which faiss does not have: set \
             bias_correction=False before writing a faiss file",
        ));
    }
    Ok(())
}

/// Write any supported float index (its fourcc first).
pub(super) fn index(o: &mut Out, r: &FileReader) -> Result<()> {
    let i = info(r)?;
    match r.kind() {
        "IndexFlat" => {
            o.fourcc(flat_fourcc(i.metric));
            header(o, &i);
            o.vec_f32(&r.section_f32("vectors")?);
        }
        "IndexPQ" => {
            no_bias_correction(r)?;
            o.fourcc(b"IxPq");
            header(o, &i);
            let (m, nbits) = product_quantizer(o, r)?;
            o.vec_u8(&pack_pq(&r.section_u8("codes")?, m, nbits));
            let search_type = match r.meta("mode") {
                Some(MetaValue::Str(s)) if s == "sdc" => 3,
                _ => 0,
            };
            // faiss defaults: no sign encoding, polysemous_ht = M * nbits + 1 (no filter)
            o.i32(search_type).u8(0).i32((m * nbits + 1) as i32);
        }
        "IndexPQFastScan" => {
            o.fourcc(b"IPfs");
            header(o, &i);
            let (m, _) = product_quantizer(o, r)?;
            let blocks = r.section_u8("blocks")?;
            let mut codes = vec![0u8; i.ntotal * m];
            for (slot, row) in codes.chunks_exact_mut(m).enumerate() {
                unpack_code(&blocks, m, slot, row);
            }
            let m2 = m + (m & 1);
            o.i32(0).i32(32).i32(0); // implem, bbs, qbs
            o.u64((i.ntotal.div_ceil(32) * 32) as u64).u64(m2 as u64);
            o.vec_u8(&pack_pq4(&codes, m, 32));
        }
        "IndexScalarQuantizer" => {
            o.fourcc(b"IxSQ");
            header(o, &i);
            scalar_quantizer(o, r)?;
            o.vec_u8(&r.section_u8("codes")?);
        }
        "IndexIVFScalarQuantizer" => {
            o.fourcc(b"IwSq");
            ivf_header(o, r, &i)?;
            let cs = scalar_quantizer(o, r)?;
            o.u64(cs as u64).u8(flag(r, "by_residual")? as u8);
            array_lists(o, r, &r.section_u8("list_codes")?, cs)?;
        }
        "IndexIVFFlat" => {
            o.fourcc(b"IwFl");
            ivf_header(o, r, &i)?;
            let v = r.section_f32("list_codes")?;
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            array_lists(o, r, &bytes, i.d * 4)?;
        }
        "IndexIVFPQ" => {
            o.fourcc(b"IwPQ");
            ivf_header(o, r, &i)?;
            let (m, nbits) = (r.meta_usize("M")?, r.meta_usize("nbits")?);
            o.u8(flag(r, "by_residual")? as u8)
                .u64(pq_code_size(m, nbits) as u64);
            product_quantizer(o, r)?;
            let codes = pack_pq(&r.section_u8("list_codes")?, m, nbits);
            array_lists(o, r, &codes, pq_code_size(m, nbits))?;
        }
        "IndexIVFPQFastScan" => {
            o.fourcc(b"IwPf");
            ivf_header(o, r, &i)?;
            let (m, nbits) = (r.meta_usize("M")?, r.meta_usize("nbits")?);
            let m2 = m + (m & 1);
            let cs = pq_code_size(m, nbits);
            o.u8(flag(r, "by_residual")? as u8).u64(cs as u64);
            o.i32(32).u64(m2 as u64).i32(0).u64(0); // bbs, M2, implem, qbs2
            product_quantizer(o, r)?;
            block_lists(o, r, m)?;
        }
        "IndexIDMap" => {
            o.fourcc(b"IxM2");
            header(o, &i);
            index(o, &r.nested("inner")?)?;
            o.vec_i64(&r.section_i64("ids")?);
        }
        "IndexPreTransform" => {
            o.fourcc(b"IxPT");
            header(o, &i);
            o.i32(1);
            let t = r.nested("transform")?;
            let (d_in, d_out) = (t.meta_usize("d_in")?, t.meta_usize("d_out")?);
            let trained = flag(&t, "trained")?;
            // faiss writes OPQMatrix as a generic LinearTransform ("LTra"): y = A x
            o.fourcc(b"LTra").u8(0);
            if trained {
                o.vec_f32(&t.section_f32("matrix")?);
            } else {
                o.vec_f32(&[]);
            }
            o.vec_f32(&[]);
            o.i32(d_in as i32).i32(d_out as i32).u8(trained as u8);
            index(o, &r.nested("index")?)?;
        }
        "IndexRefineFlat" => {
            o.fourcc(b"IxRF");
            header(o, &i);
            index(o, &r.nested("base")?)?;
            index(o, &r.nested("refine")?)?;
            o.f32(r.meta_usize("k_factor")? as f32);
        }
        other => return Err(no_format(other)),
    }
    Ok(())
}

/// faiss `write_ivf_header`: header, nlist, nprobe, a flat quantizer of the centroids, an
/// empty direct map.
fn ivf_header(o: &mut Out, r: &FileReader, i: &Info) -> Result<()> {
    header(o, i);
    let nlist = r.meta_usize("nlist")?;
    o.u64(nlist as u64).u64(r.meta_usize("nprobe")? as u64);
    let coarse = r.section_f32("coarse")?;
    o.fourcc(flat_fourcc(i.metric));
    header(
        o,
        &Info {
            d: i.d,
            ntotal: coarse.len() / i.d,
            trained: true,
            metric: i.metric,
        },
    );
    o.vec_f32(&coarse);
    o.u8(0).u64(0); // DirectMap::NoMap, empty array
    Ok(())
}

/// The (start, end) entry range of every list.
fn list_ranges(r: &FileReader) -> Result<Vec<(usize, usize)>> {
    let off = r.section_u64("list_offsets")?;
    Ok(off
        .windows(2)
        .map(|w| (w[0] as usize, w[1] as usize))
        .collect())
}

/// faiss `ArrayInvertedLists` ("ilar") of `codes` (entries × `code_size` bytes, list order).
fn array_lists(o: &mut Out, r: &FileReader, codes: &[u8], code_size: usize) -> Result<()> {
    let ranges = list_ranges(r)?;
    let ids = r.section_i64("list_ids")?;
    let nlist = ranges.len();
    o.fourcc(b"ilar").u64(nlist as u64).u64(code_size as u64);
    // as faiss: sizes of every list when more than half are non-empty, else (list, size) pairs
    let non_empty = ranges.iter().filter(|(a, b)| b > a).count();
    if non_empty > nlist / 2 {
        let sizes: Vec<u64> = ranges.iter().map(|(a, b)| (b - a) as u64).collect();
        o.fourcc(b"full").vec_u64(&sizes);
    } else {
        let pairs: Vec<u64> = ranges
            .iter()
            .enumerate()
            .filter(|(_, (a, b))| b > a)
            .flat_map(|(l, (a, b))| [l as u64, (b - a) as u64])
            .collect();
        o.fourcc(b"sprs").vec_u64(&pairs);
    }
    for &(a, b) in &ranges {
        if b > a {
            o.buf
                .extend_from_slice(&codes[a * code_size..b * code_size]);
            o.i64s(&ids[a..b]);
        }
    }
    Ok(())
}

/// faiss `BlockInvertedLists` ("ilbl") of 4-bit codes in blocks of 32.
fn block_lists(o: &mut Out, r: &FileReader, m: usize) -> Result<()> {
    let ranges = list_ranges(r)?;
    let ids = r.section_i64("list_ids")?;
    let codes = r.section_u8("list_codes")?;
    let m2 = m + (m & 1);
    // as faiss: a block list's code_size is InvalidCodeSize (size_t(-1))
    o.fourcc(b"ilbl")
        .u64(ranges.len() as u64)
        .u64(u64::MAX)
        .u64(32)
        .u64((32 * m2 / 2) as u64);
    for &(a, b) in &ranges {
        o.vec_i64(&ids[a..b]);
        o.vec_u8(&pack_pq4(&codes[a * m..b * m], m, 32));
    }
    Ok(())
}

/// Write a binary index: "IBxF" when its ids are its positions, else "IBM2" over one.
pub(super) fn binary(o: &mut Out, r: &FileReader) -> Result<()> {
    if r.kind() != "IndexBinaryFlat" {
        return Err(no_format(r.kind()));
    }
    let nbits = r.meta_usize("nbits")?;
    let codes = r.section_u8("codes")?;
    let ids = r.section_i64("ids")?;
    let n = ids.len();
    let flat = |o: &mut Out| {
        o.fourcc(b"IBxF");
        binary_header(o, nbits, n);
        o.vec_u8(&codes);
    };
    if ids.iter().enumerate().all(|(i, &id)| id == i as i64) {
        flat(o);
    } else {
        o.fourcc(b"IBM2");
        binary_header(o, nbits, n);
        flat(o);
        o.vec_i64(&ids);
    }
    Ok(())
}

/// faiss `write_index_binary_header` (metric_type is faiss's default, METRIC_L2 = 1).
fn binary_header(o: &mut Out, nbits: usize, n: usize) {
    o.i32(nbits as i32)
        .i32((nbits / 8) as i32)
        .i64(n as i64)
        .u8(1)
        .i32(1);
}
