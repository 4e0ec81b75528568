//! Scalar quantizers (faiss `ScalarQuantizer`): every dimension is coded on its own.
//!
//! | type | code per vector | training | faiss |
//! |---|---|---|---|
//! | `QT8` | d bytes | per-dimension min / max | `QT_8bit` |
//! | `QT4` | ceil(d/2) bytes, dimension `i` in bits `4i..4i+4` | per-dimension min / max | `QT_4bit` |
//! | `Fp16` | 2d bytes, IEEE binary16 | none | `QT_fp16` |
//! | `Bf16` | 2d bytes, bfloat16 | none | `QT_bf16` |
//! | `Lm2/3/4` | ceil(d·b/8) + 8 bytes | optional calibration | — (rotated Lloyd-Max) |
//!
//! The uniform codes decode as faiss does, `x_i = vmin_i + (c_i + ½)·vdiff_i / (2^b − 1)`,
//! and encode `c_i = floor((2^b − 1)·clamp((x_i − vmin_i) / vdiff_i, 0, 1))`, so codes are
//! byte-identical to faiss's for the same ranges. The rotated Lloyd-Max codes are described in
//! [`rotated`]. Distances are computed on the codes by `kernels::sq`: the per-dimension decode is
//! affine, so it is folded into the query once per search ([`SqQuery`]).

pub mod half;
pub mod lloyd_max;
mod rotated;

use crate::distance::Metric;
use crate::error::{Error, Result};
use crate::io::{FileReader, FileWriter};
use crate::kernels::sq as k;
use crate::simd::SimdLevel;
use crate::validate::check_batch;
use rayon::prelude::*;
pub use rotated::Rotated;

/// Code type of a [`ScalarQuantizer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantizerType {
    /// 8 bits per dimension over the trained per-dimension range (faiss `QT_8bit`).
    QT8,
    /// 4 bits per dimension over the trained per-dimension range (faiss `QT_4bit`).
    QT4,
    /// IEEE half precision (faiss `QT_fp16`).
    Fp16,
    /// bfloat16 (faiss `QT_bf16`).
    Bf16,
    /// Rotated Lloyd-Max, 2 bits per dimension.
    Lm2,
    /// Rotated Lloyd-Max, 3 bits per dimension.
    Lm3,
    /// Rotated Lloyd-Max, 4 bits per dimension.
    Lm4,
}

impl QuantizerType {
    /// Every type, in the order of the table above.
    pub const ALL: [QuantizerType; 7] = [
        QuantizerType::QT8,
        QuantizerType::QT4,
        QuantizerType::Fp16,
        QuantizerType::Bf16,
        QuantizerType::Lm2,
        QuantizerType::Lm3,
        QuantizerType::Lm4,
    ];

    /// Name as saved in files and accepted by [`QuantizerType::parse`].
    pub fn name(self) -> &'static str {
        match self {
            QuantizerType::QT8 => "8bit",
            QuantizerType::QT4 => "4bit",
            QuantizerType::Fp16 => "fp16",
            QuantizerType::Bf16 => "bf16",
            QuantizerType::Lm2 => "lm2",
            QuantizerType::Lm3 => "lm3",
            QuantizerType::Lm4 => "lm4",
        }
    }

    /// Parse a name (also faiss's `QT_8bit` spelling, case-insensitive).
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        let t = t.strip_prefix("qt_").unwrap_or(&t);
        QuantizerType::ALL
            .into_iter()
            .find(|q| q.name() == t)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown scalar quantizer type {s:?}: expected one of 8bit, 4bit, fp16, \
                     bf16, lm2, lm3, lm4"
                ))
            })
    }

    /// Bits of a rotated Lloyd-Max type (`None` for the others).
    pub fn lloyd_max_bits(self) -> Option<usize> {
        match self {
            QuantizerType::Lm2 => Some(2),
            QuantizerType::Lm3 => Some(3),
            QuantizerType::Lm4 => Some(4),
            _ => None,
        }
    }

    /// Levels of a uniform type (`2^b − 1` steps; `None` for the others).
    fn uniform_steps(self) -> Option<f32> {
        match self {
            QuantizerType::QT8 => Some(255.0),
            QuantizerType::QT4 => Some(15.0),
            _ => None,
        }
    }
}

/// Seed of the rotation of the Lloyd-Max types unless one is given.
pub const DEFAULT_SEED: u64 = 1234;

/// `lut[j] = j`: the uniform 4-bit codes through the packed kernels.
const IDENTITY16: [f32; 16] = [
    0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0,
];

/// A scalar quantizer of `d`-dimensional vectors.
#[derive(Debug, Clone)]
pub struct ScalarQuantizer {
    d: usize,
    qtype: QuantizerType,
    /// Uniform types: trained per-dimension minimum and range (empty until trained).
    vmin: Vec<f32>,
    vdiff: Vec<f32>,
    /// Uniform types, derived from the range: decode is `base + step·c` (the faiss formula
    /// with the ½-step offset folded into `base`).
    base: Vec<f32>,
    step: Vec<f32>,
    /// Lloyd-Max types: rotation and codebook placement.
    lm: Option<Rotated>,
}

/// A query prepared for one metric: what the kernels read plus the terms added per code.
#[derive(Debug, Clone)]
pub struct SqQuery {
    /// The kernel's query vector: `q − base` (uniform L2), `±q·step` (uniform IP), `q` / `−q`
    /// (16-bit floats), the rotated query times the codebook scale (Lloyd-Max).
    a: Vec<f32>,
    /// Added to every kernel value (uniform IP: `±Σ q_i base_i`; Lloyd-Max: `Σ q'_i mean_i`).
    c: f32,
    /// `‖q‖²` (Lloyd-Max L2).
    qnorm: f32,
    metric: Metric,
}

impl ScalarQuantizer {
    /// An untrained quantizer (the 16-bit float types and Lloyd-Max need no training).
    pub fn new(d: usize, qtype: QuantizerType) -> Result<Self> {
        Self::with_seed(d, qtype, DEFAULT_SEED)
    }

    /// [`ScalarQuantizer::new`] with the seed of the Lloyd-Max rotation.
    pub fn with_seed(d: usize, qtype: QuantizerType, seed: u64) -> Result<Self> {
        if d == 0 {
            return Err(Error::invalid("d must be >= 1"));
        }
        let lm = match qtype.lloyd_max_bits() {
            Some(b) => Some(Rotated::new(d, b, seed)?),
            None => None,
        };
        Ok(ScalarQuantizer {
            d,
            qtype,
            vmin: Vec::new(),
            vdiff: Vec::new(),
            base: Vec::new(),
            step: Vec::new(),
            lm,
        })
    }

    /// Dimension.
    pub fn d(&self) -> usize {
        self.d
    }
    /// Code type.
    pub fn qtype(&self) -> QuantizerType {
        self.qtype
    }
    /// Bytes per code.
    pub fn code_size(&self) -> usize {
        match self.qtype {
            QuantizerType::QT8 => self.d,
            QuantizerType::QT4 => self.d.div_ceil(2),
            QuantizerType::Fp16 | QuantizerType::Bf16 => 2 * self.d,
            _ => self.lm.as_ref().map_or(0, |r| r.code_size()),
        }
    }
    /// Whether codes can be computed (uniform types: after `train`).
    pub fn is_trained(&self) -> bool {
        self.qtype.uniform_steps().is_none() || !self.vmin.is_empty()
    }
    /// Trained per-dimension minimum and range (uniform types; empty otherwise).
    pub fn range(&self) -> (&[f32], &[f32]) {
        (&self.vmin, &self.vdiff)
    }
    /// Whether some data is a view of a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        self.lm.as_ref().is_some_and(|r| r.is_mapped())
    }

    fn require_trained(&self) -> Result<()> {
        if self.is_trained() {
            Ok(())
        } else {
            Err(Error::NotTrained("ScalarQuantizer"))
        }
    }

    /// Learn the ranges (uniform types: per-dimension min / max of `x`, as faiss
    /// `RS_minmax`) or calibrate the codebook (Lloyd-Max, see [`Rotated::calibrate`]); no-op
    /// for the 16-bit float types. Returns warnings.
    pub fn train(&mut self, x: &[f32]) -> Result<Vec<String>> {
        let n = check_batch(x, self.d, "x")?;
        if let Some(lm) = &mut self.lm {
            return Ok(lm.calibrate(x, n));
        }
        let Some(steps) = self.qtype.uniform_steps() else {
            return Ok(Vec::new());
        };
        if n == 0 {
            return Err(Error::invalid("training needs at least 1 vector, got 0"));
        }
        let d = self.d;
        let mut lo = x[..d].to_vec();
        let mut hi = lo.clone();
        for row in x.chunks_exact(d).skip(1) {
            for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(row) {
                *l = l.min(v);
                *h = h.max(v);
            }
        }
        let diff: Vec<f32> = lo.iter().zip(&hi).map(|(l, h)| h - l).collect();
        self.set_range(lo, diff, steps);
        Ok(Vec::new())
    }

    fn set_range(&mut self, vmin: Vec<f32>, vdiff: Vec<f32>, steps: f32) {
        self.step = vdiff.iter().map(|v| v / steps).collect();
        self.base = vmin
            .iter()
            .zip(&self.step)
            .map(|(m, s)| m + 0.5 * s)
            .collect();
        self.vmin = vmin;
        self.vdiff = vdiff;
    }

    /// Codes of the rows of `x` (n × d, checked) into `out` (n × code_size), in parallel.
    pub fn compute_codes(&self, x: &[f32], out: &mut [u8]) -> Result<()> {
        self.require_trained()?;
        let n = check_batch(x, self.d, "x")?;
        let cs = self.code_size();
        if out.len() != n * cs {
            return Err(Error::shape(format!(
                "codes buffer has {} bytes, expected n x code_size = {n} x {cs}",
                out.len()
            )));
        }
        if let Some(lm) = &self.lm {
            lm.encode(x, out);
            return Ok(());
        }
        let d = self.d;
        out.par_chunks_mut(cs)
            .zip(x.par_chunks(d))
            .for_each(|(c, row)| self.encode_row(row, c));
        Ok(())
    }

    fn encode_row(&self, row: &[f32], c: &mut [u8]) {
        match self.qtype {
            QuantizerType::QT8 | QuantizerType::QT4 => {
                let steps = self.qtype.uniform_steps().unwrap_or(255.0);
                c.fill(0);
                for (i, &v) in row.iter().enumerate() {
                    let t = if self.vdiff[i] != 0.0 {
                        ((v - self.vmin[i]) / self.vdiff[i]).clamp(0.0, 1.0)
                    } else {
                        0.0
                    };
                    let q = (steps * t) as u8; // truncation, as faiss
                    if self.qtype == QuantizerType::QT8 {
                        c[i] = q;
                    } else {
                        c[i / 2] |= q << ((i & 1) * 4);
                    }
                }
            }
            QuantizerType::Fp16 => {
                for (ch, &v) in c.chunks_exact_mut(2).zip(row) {
                    ch.copy_from_slice(&half::f32_to_f16(v).to_le_bytes());
                }
            }
            QuantizerType::Bf16 => {
                for (ch, &v) in c.chunks_exact_mut(2).zip(row) {
                    ch.copy_from_slice(&half::f32_to_bf16(v).to_le_bytes());
                }
            }
            _ => unreachable!("Lloyd-Max codes are encoded in batches"),
        }
    }

    /// Decoded vector of one code (`code.len() == code_size`).
    pub fn decode(&self, code: &[u8]) -> Result<Vec<f32>> {
        self.require_trained()?;
        if code.len() != self.code_size() {
            return Err(Error::shape(format!(
                "code has {} bytes, expected code_size = {}",
                code.len(),
                self.code_size()
            )));
        }
        let d = self.d;
        let h = |i: usize| u16::from_le_bytes([code[2 * i], code[2 * i + 1]]);
        Ok(match self.qtype {
            QuantizerType::QT8 => (0..d)
                .map(|i| self.base[i] + self.step[i] * code[i] as f32)
                .collect(),
            QuantizerType::QT4 => (0..d)
                .map(|i| self.base[i] + self.step[i] * k::scalar::packed_index(code, 4, i) as f32)
                .collect(),
            QuantizerType::Fp16 => (0..d).map(|i| k::scalar::f16_to_f32(h(i))).collect(),
            QuantizerType::Bf16 => (0..d).map(|i| k::scalar::bf16_to_f32(h(i))).collect(),
            _ => self.lm.as_ref().map_or_else(Vec::new, |lm| lm.decode(code)),
        })
    }

    /// The per-search form of query `q` (d values, checked by the caller) for `metric`.
    pub fn query(&self, q: &[f32], metric: Metric) -> SqQuery {
        let ip = metric == Metric::InnerProduct;
        let (a, c) = match self.qtype {
            QuantizerType::QT8 | QuantizerType::QT4 if ip => (
                q.iter().zip(&self.step).map(|(v, s)| -v * s).collect(),
                -q.iter().zip(&self.base).map(|(v, b)| v * b).sum::<f32>(),
            ),
            QuantizerType::QT8 | QuantizerType::QT4 => {
                (q.iter().zip(&self.base).map(|(v, b)| v - b).collect(), 0.0)
            }
            QuantizerType::Fp16 | QuantizerType::Bf16 if ip => {
                (q.iter().map(|v| -v).collect(), 0.0)
            }
            QuantizerType::Fp16 | QuantizerType::Bf16 => (q.to_vec(), 0.0),
            _ => match &self.lm {
                Some(lm) => lm.query(q),
                None => (Vec::new(), 0.0),
            },
        };
        SqQuery {
            a,
            c,
            qnorm: q.iter().map(|v| v * v).sum(),
            metric,
        }
    }

    /// Keys (smaller is better: squared L2, or minus the inner product) of `query` against
    /// every code of `codes` into `out` (`out.len() == codes.len() / code_size`).
    pub fn distances(&self, lvl: SimdLevel, query: &SqQuery, codes: &[u8], out: &mut [f32]) {
        let cs = self.code_size();
        let ip = query.metric == Metric::InnerProduct;
        let a = &query.a;
        match self.qtype {
            QuantizerType::QT8 if ip => k::dot_u8_with(lvl, a, codes, cs, out),
            QuantizerType::QT8 => k::l2_u8_with(lvl, a, &self.step, codes, cs, out),
            QuantizerType::QT4 if ip => k::dot_packed_with(lvl, 4, a, &IDENTITY16, codes, cs, out),
            QuantizerType::QT4 => {
                k::l2_packed_with(lvl, 4, a, &self.step, &IDENTITY16, codes, cs, out)
            }
            QuantizerType::Fp16 if ip => k::dot_f16_with(lvl, a, codes, cs, out),
            QuantizerType::Fp16 => k::l2_f16_with(lvl, a, codes, cs, out),
            QuantizerType::Bf16 if ip => k::dot_bf16_with(lvl, a, codes, cs, out),
            QuantizerType::Bf16 => k::l2_bf16_with(lvl, a, codes, cs, out),
            _ => {
                if let Some(lm) = &self.lm {
                    lm.distances(lvl, a, query.c, query.qnorm, ip, codes, out);
                }
                return;
            }
        }
        if query.c != 0.0 {
            out.iter_mut().for_each(|v| *v += query.c);
        }
    }

    /// Check codes read from a file: 16-bit float codes hold no inf/NaN, Lloyd-Max codes
    /// finite scale factors (a search must never see a NaN distance).
    pub fn check_codes(&self, codes: &[u8]) -> Result<()> {
        let cs = self.code_size();
        if !codes.len().is_multiple_of(cs) {
            return Err(Error::shape(format!(
                "codes hold {} bytes, not a multiple of code_size {cs}",
                codes.len()
            )));
        }
        let exp_mask: u16 = match self.qtype {
            QuantizerType::Fp16 => 0x7c00,
            QuantizerType::Bf16 => 0x7f80,
            _ => {
                return match &self.lm {
                    Some(lm) => lm.check_codes(codes),
                    None => Ok(()),
                }
            }
        };
        let bad = codes
            .chunks_exact(2)
            .position(|h| u16::from_le_bytes([h[0], h[1]]) & exp_mask == exp_mask);
        match bad {
            Some(p) => Err(Error::invalid(format!(
                "code of vector {} holds an inf/NaN {}",
                2 * p / cs,
                self.qtype.name()
            ))),
            None => Ok(()),
        }
    }

    /// Save the codec as metadata `d`, `qtype` and its sections (`sq_vmin` / `sq_vdiff` for
    /// the uniform types, empty until trained; `sq_rotation`, `sq_mean`, `sq_scale` for
    /// Lloyd-Max).
    pub fn write_meta<'a>(&'a self, w: &mut FileWriter<'a>) {
        w.meta_u64("d", self.d as u64)
            .meta_str("qtype", self.qtype.name());
        if self.qtype.uniform_steps().is_some() {
            w.section_f32("sq_vmin", &self.vmin)
                .section_f32("sq_vdiff", &self.vdiff);
        }
        if let Some(lm) = &self.lm {
            lm.write_to(w);
        }
    }

    /// Read what [`ScalarQuantizer::write_meta`] saved, validated.
    pub fn read_meta(r: &FileReader) -> Result<Self> {
        let d = r.meta_usize("d")?;
        if d == 0 {
            return Err(r.err("metadata 'd' is 0"));
        }
        let qtype = QuantizerType::parse(r.meta_str("qtype")?).map_err(|e| r.err(e))?;
        let mut sq = ScalarQuantizer {
            d,
            qtype,
            vmin: Vec::new(),
            vdiff: Vec::new(),
            base: Vec::new(),
            step: Vec::new(),
            lm: None,
        };
        if let Some(steps) = qtype.uniform_steps() {
            let vmin = r.section_f32("sq_vmin")?.to_vec();
            let vdiff = r.section_f32("sq_vdiff")?.to_vec();
            if vmin.len() != vdiff.len() || !(vmin.is_empty() || vmin.len() == d) {
                return Err(r.err(format!(
                    "sections 'sq_vmin' / 'sq_vdiff' hold {} / {} values, expected 0 or d = {d}",
                    vmin.len(),
                    vdiff.len()
                )));
            }
            if vmin.iter().chain(&vdiff).any(|v| !v.is_finite()) || vdiff.iter().any(|&v| v < 0.0) {
                return Err(r.err("the trained ranges must be finite, with vdiff >= 0"));
            }
            if !vmin.is_empty() {
                sq.set_range(vmin, vdiff, steps);
            }
        }
        if let Some(b) = qtype.lloyd_max_bits() {
            sq.lm = Some(Rotated::read_from(r, d, b)?);
        }
        Ok(sq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::simd::level;

    fn data(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut r = Rng::new(seed);
        (0..n * d).map(|_| r.normal() as f32).collect()
    }

    #[test]
    fn kernel_distances_equal_distances_to_the_decoded_vectors() {
        let (d, n) = (37, 50);
        let x = data(n, d, 1);
        let q = data(1, d, 2);
        for qt in QuantizerType::ALL {
            let mut sq = ScalarQuantizer::new(d, qt).unwrap();
            assert_eq!(sq.is_trained(), qt.uniform_steps().is_none());
            sq.train(&x).unwrap();
            let cs = sq.code_size();
            let mut codes = vec![0u8; n * cs];
            sq.compute_codes(&x, &mut codes).unwrap();
            sq.check_codes(&codes).unwrap();
            for metric in [Metric::L2, Metric::InnerProduct] {
                let mut out = vec![0f32; n];
                sq.distances(level(), &sq.query(&q, metric), &codes, &mut out);
                for (j, c) in codes.chunks_exact(cs).enumerate() {
                    let y = sq.decode(c).unwrap();
                    let ipv: f32 = q.iter().zip(&y).map(|(a, b)| a * b).sum();
                    let l2v: f32 = q.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
                    if qt.lloyd_max_bits().is_some() {
                        // the search estimate is the bias-corrected one, not <q, decode(x)>
                        continue;
                    }
                    let want = if metric == Metric::L2 { l2v } else { -ipv };
                    assert!(
                        (out[j] - want).abs() < 1e-3 * (1.0 + want.abs()),
                        "{qt:?} {metric:?} {j}: {} vs {want}",
                        out[j]
                    );
                }
            }
        }
    }

    #[test]
    fn uniform_codes_are_faiss_codes() {
        let mut sq = ScalarQuantizer::new(3, QuantizerType::QT4).unwrap();
        sq.train(&[0.0, 0.0, 0.0, 15.0, 30.0, 1.0]).unwrap();
        let mut c = vec![0u8; 2];
        // floor(15·(x − vmin)/vdiff), clamped to [0, 1] first: 7.5/15 → 7, 14.9/30 → 7, 2/1 → 15
        sq.compute_codes(&[7.5, 14.9, 2.0], &mut c).unwrap();
        assert_eq!(c, vec![7 | (7 << 4), 15]);
        let y = sq.decode(&c).unwrap();
        assert!((y[0] - 7.5).abs() < 1e-6 && (y[1] - 15.0).abs() < 1e-5);
        assert!(ScalarQuantizer::new(3, QuantizerType::QT8)
            .unwrap()
            .compute_codes(&[0.0; 3], &mut [0u8; 3])
            .is_err());
    }
}
