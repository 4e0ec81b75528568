//! The E8 lattice: Conway & Sloane nearest-point decoding and spherical shell codes.
//!
//! `E8 = D8 ∪ (D8 + ½·1)` with `D8 = { x ∈ Z⁸ : Σ x_i even }`. [`E8Lattice`] decodes each
//! 8-dim block of a vector to its nearest lattice point (kernel in `kernels::lattice`, scalar
//! twin + AVX2). [`E8ShellCodec`] quantizes to the points of one or more shells
//! `{ y ∈ E8 : ‖y‖² = 2m }` normalized to the unit sphere, block by block, and numbers the
//! product codebook compactly (mixed radix over blocks, block 0 least significant).
//!
//! Lattice points are exchanged as *doubled* integer coordinates `z = 2y` (all even or all odd,
//! `Σ z ≡ 0 (mod 4)`), which represent every point exactly.

use crate::control::Control;
use crate::error::{Error, Result};
use crate::kernels::lattice as kern;
use crate::lattice::zn::{check_codes_len, code_size_of, read_le};
use rayon::prelude::*;

/// Largest shell index `m` of [`E8ShellCodec`] (`240·σ₃(8) = 140 400` points).
pub const MAX_SHELL: u32 = 8;
/// Largest `|x / scale|` the nearest-point decoder accepts (integers stay exact in f32 far
/// beyond it, and doubled coordinates fit in i32).
pub const MAX_COORD: f32 = (1u32 << 21) as f32;
const ROWS_PER_TASK: usize = 512;

fn check_blocks(d: usize, arg: &str) -> Result<usize> {
    if d == 0 || !d.is_multiple_of(8) {
        return Err(Error::shape(format!(
            "{arg} has d={d} columns, not a positive multiple of 8 (E8 works on 8-dim blocks)"
        )));
    }
    Ok(d / 8)
}

/// Whether doubled coordinates `z` are an E8 point.
pub fn is_e8_doubled(z: &[i32]) -> bool {
    let par = z[0].rem_euclid(2);
    z.iter().all(|v| v.rem_euclid(2) == par) && z.iter().map(|&v| v as i64).sum::<i64>() % 4 == 0
}

/// The E8 lattice scaled by `scale`: nearest-point decoding of 8-dim blocks.
#[derive(Debug, Clone, Copy)]
pub struct E8Lattice {
    scale: f32,
}

impl E8Lattice {
    /// `scale` must be finite and > 0.
    pub fn new(scale: f32) -> Result<Self> {
        if !(scale.is_finite() && scale > 0.0 && scale.is_normal()) {
            return Err(Error::invalid(format!(
                "scale must be a finite number > 0, got {scale}"
            )));
        }
        Ok(E8Lattice { scale })
    }

    /// Lattice scale.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    fn check(&self, x: &[f32], d: usize) -> Result<usize> {
        check_blocks(d, "x")?;
        let n = crate::validate::check_batch(x, d, "x")?;
        let lim = MAX_COORD * self.scale;
        if let Some(p) = x.iter().position(|v| v.abs() / self.scale > MAX_COORD) {
            return Err(Error::invalid(format!(
                "x[{}, {}] = {} is too large: |x / scale| must be <= {MAX_COORD} (|x| <= {lim})",
                p / d,
                p % d,
                x[p]
            )));
        }
        Ok(n)
    }

    /// Nearest points of `scale·E8` to every 8-dim block of the rows of `x` (n × d).
    pub fn nearest(&self, x: &[f32], d: usize, ctl: &Control) -> Result<Vec<f32>> {
        self.check(x, d)?;
        let s = self.scale;
        let mut out = vec![0f32; x.len()];
        x.par_chunks(ROWS_PER_TASK * d)
            .zip(out.par_chunks_mut(ROWS_PER_TASK * d))
            .try_for_each(|(xc, oc)| {
                ctl.check()?;
                let xs: Vec<f32> = xc.iter().map(|v| v / s).collect();
                kern::e8_nearest(&xs, oc);
                for v in oc.iter_mut() {
                    *v *= s;
                }
                Ok(())
            })?;
        Ok(out)
    }

    /// Doubled integer coordinates `2y` of the nearest points `scale·y` (n × d `i32`).
    pub fn encode(&self, x: &[f32], d: usize, ctl: &Control) -> Result<Vec<i32>> {
        self.check(x, d)?;
        let s = self.scale;
        let mut out = vec![0i32; x.len()];
        x.par_chunks(ROWS_PER_TASK * d)
            .zip(out.par_chunks_mut(ROWS_PER_TASK * d))
            .try_for_each(|(xc, oc)| {
                ctl.check()?;
                let xs: Vec<f32> = xc.iter().map(|v| v / s).collect();
                let mut y = vec![0f32; xs.len()];
                kern::e8_nearest(&xs, &mut y);
                for (o, v) in oc.iter_mut().zip(&y) {
                    *o = (v * 2.0) as i32;
                }
                Ok(())
            })?;
        Ok(out)
    }

    /// Points `scale · z / 2` of doubled coordinates (n × d); each block must be an E8 point.
    pub fn decode(&self, z: &[i32], d: usize) -> Result<Vec<f32>> {
        check_blocks(d, "codes")?;
        if !z.len().is_multiple_of(d) {
            return Err(Error::shape(format!(
                "codes has {} values, not a multiple of d={d}",
                z.len()
            )));
        }
        let lim = 2 * MAX_COORD as i32;
        for (b, blk) in z.chunks_exact(8).enumerate() {
            if blk.iter().any(|v| v.abs() > lim) || !is_e8_doubled(blk) {
                return Err(Error::invalid(format!(
                    "codes row {} block {} = {blk:?} is not an E8 point in doubled coordinates \
                     (all even or all odd, sum divisible by 4, |z| <= {lim})",
                    b * 8 / d,
                    b % (d / 8)
                )));
            }
        }
        let s = self.scale;
        Ok(z.iter().map(|&v| v as f32 * 0.5 * s).collect())
    }
}

/// Points of the E8 shell `‖y‖² = 2m` in doubled coordinates, lexicographically increasing.
pub fn shell_points(m: u32) -> Vec<[i8; 8]> {
    fn rec(pos: usize, rem: i32, par: i32, cur: &mut [i8; 8], out: &mut Vec<[i8; 8]>) {
        if pos == 8 {
            let s: i32 = cur.iter().map(|&v| v as i32).sum();
            if rem == 0 && s.rem_euclid(4) == 0 {
                out.push(*cur);
            }
            return;
        }
        let mut top = 0;
        while (top + 1) * (top + 1) <= rem {
            top += 1;
        }
        let left = (8 - pos) as i32;
        for v in -top..=top {
            if v.rem_euclid(2) != par {
                continue;
            }
            let r = rem - v * v;
            // every later coordinate is odd (>= 1 in square) or even (>= 0)
            if r < (left - 1) * par {
                continue;
            }
            cur[pos] = v as i8;
            rec(pos + 1, r, par, cur, out);
        }
    }
    let mut out = Vec::new();
    for par in [0, 1] {
        rec(0, 8 * m as i32, par, &mut [0; 8], &mut out);
    }
    out.sort_unstable();
    out
}

/// Spherical E8 codes: each 8-dim block is quantized to the nearest normalized point of the
/// chosen shells; the decoded vector is the concatenation scaled by `1/sqrt(d/8)` (unit norm).
#[derive(Debug, Clone)]
pub struct E8ShellCodec {
    d: usize,
    nblocks: usize,
    shells: Vec<u32>,
    /// K × 8 doubled coordinates, shells in increasing order, each lexicographically sorted.
    points: Vec<[i8; 8]>,
    /// 8 × K normalized points (scoring table).
    score_t: Vec<f32>,
    /// K × 8 normalized points scaled by `1/sqrt(nblocks)` (decoding table).
    table: Vec<f32>,
    nv: u128,
    code_size: usize,
}

impl E8ShellCodec {
    /// Codec of dimension `d` (a multiple of 8) over the union of the shells `m ∈ shells`.
    pub fn new(d: usize, shells: &[u32]) -> Result<Self> {
        let nblocks = check_blocks(d, "d")?;
        if shells.is_empty() {
            return Err(Error::invalid("shells must not be empty"));
        }
        let mut sh = shells.to_vec();
        sh.sort_unstable();
        sh.dedup();
        if sh.len() != shells.len() {
            return Err(Error::invalid(format!(
                "shells must not repeat a shell, got {shells:?}"
            )));
        }
        if let Some(&m) = sh.iter().find(|&&m| m == 0 || m > MAX_SHELL) {
            return Err(Error::invalid(format!(
                "shells must be in 1..={MAX_SHELL}, got {m}"
            )));
        }
        let mut points = Vec::new();
        for &m in &sh {
            points.extend(shell_points(m));
        }
        let k = points.len();
        let mut nv: u128 = 1;
        for _ in 0..nblocks {
            nv = nv.checked_mul(k as u128).ok_or_else(|| {
                Error::invalid(format!(
                    "d={d} with shells {sh:?} ({k} points per block) needs codes wider than \
                     128 bits"
                ))
            })?;
        }
        let mut score_t = vec![0f32; 8 * k];
        let mut table = vec![0f32; 8 * k];
        let bscale = 1.0 / (nblocks as f64).sqrt();
        for (j, p) in points.iter().enumerate() {
            let n2: i64 = p.iter().map(|&v| v as i64 * v as i64).sum();
            let inv = 1.0 / (n2 as f64).sqrt();
            for i in 0..8 {
                score_t[i * k + j] = (p[i] as f64 * inv) as f32;
                table[j * 8 + i] = (p[i] as f64 * inv * bscale) as f32;
            }
        }
        Ok(E8ShellCodec {
            d,
            nblocks,
            shells: sh,
            points,
            score_t,
            table,
            nv,
            code_size: code_size_of(nv),
        })
    }

    /// Dimension.
    pub fn d(&self) -> usize {
        self.d
    }

    /// Number of 8-dim blocks.
    pub fn nblocks(&self) -> usize {
        self.nblocks
    }

    /// Shells, increasing.
    pub fn shells(&self) -> &[u32] {
        &self.shells
    }

    /// Points per 8-dim block.
    pub fn points_per_block(&self) -> usize {
        self.points.len()
    }

    /// Block codebook in doubled coordinates (K × 8).
    pub fn points(&self) -> &[[i8; 8]] {
        &self.points
    }

    /// Number of codes: `K^(d/8)`.
    pub fn nv(&self) -> u128 {
        self.nv
    }

    /// Bytes per code.
    pub fn code_size(&self) -> usize {
        self.code_size
    }

    /// `ceil(log2 nv)`.
    pub fn nbits(&self) -> u32 {
        128 - (self.nv - 1).leading_zeros()
    }

    /// Code of the nearest product-codebook point to one row (scratch: K scores).
    pub fn encode_one(&self, x: &[f32], scores: &mut Vec<f32>) -> u128 {
        let k = self.points.len();
        scores.resize(k, 0.0);
        let mut code = 0u128;
        for blk in x.chunks_exact(8).rev() {
            let j = kern::score_argmax(&self.score_t, blk, scores);
            code = code * k as u128 + j as u128;
        }
        code
    }

    /// Unit vector of a code (`code < nv`, unchecked).
    pub fn decode_one(&self, mut code: u128, out: &mut [f32]) {
        let k = self.points.len() as u128;
        for ob in out.chunks_exact_mut(8) {
            let j = (code % k) as usize;
            code /= k;
            ob.copy_from_slice(&self.table[j * 8..j * 8 + 8]);
        }
    }

    /// Read one code; error if `>= nv`.
    pub fn read_code(&self, row: &[u8], i: usize) -> Result<u128> {
        let c = read_le(row);
        if c >= self.nv {
            return Err(Error::invalid(format!(
                "codes row {i} holds {c}, not a valid code (must be < nv={})",
                self.nv
            )));
        }
        Ok(c)
    }

    /// Encode rows on the calling thread.
    pub fn encode_rows(&self, x: &[f32], codes: &mut [u8], scores: &mut Vec<f32>) {
        let cs = self.code_size;
        for (xr, cr) in x.chunks_exact(self.d).zip(codes.chunks_exact_mut(cs)) {
            cr.copy_from_slice(&self.encode_one(xr, scores).to_le_bytes()[..cs]);
        }
    }

    /// Decode rows on the calling thread; `i0` numbers rows in error messages.
    pub fn decode_rows(&self, codes: &[u8], out: &mut [f32], i0: usize) -> Result<()> {
        for (i, (cr, or)) in codes
            .chunks_exact(self.code_size)
            .zip(out.chunks_exact_mut(self.d))
            .enumerate()
        {
            let c = self.read_code(cr, i0 + i)?;
            self.decode_one(c, or);
        }
        Ok(())
    }

    /// Codes (n × code_size) of the rows of `x` (n × d).
    pub fn encode(&self, x: &[f32], ctl: &Control) -> Result<Vec<u8>> {
        let n = crate::validate::check_batch(x, self.d, "x")?;
        let mut codes = vec![0u8; n * self.code_size];
        x.par_chunks(ROWS_PER_TASK * self.d)
            .zip(codes.par_chunks_mut(ROWS_PER_TASK * self.code_size))
            .try_for_each_init(Vec::new, |s, (xc, cc)| {
                ctl.check()?;
                self.encode_rows(xc, cc, s);
                Ok(())
            })?;
        Ok(codes)
    }

    /// Unit vectors (n × d) of codes.
    pub fn decode(&self, codes: &[u8], ctl: &Control) -> Result<Vec<f32>> {
        let n = check_codes_len(codes, self.code_size)?;
        let mut out = vec![0f32; n * self.d];
        codes
            .par_chunks(ROWS_PER_TASK * self.code_size)
            .zip(out.par_chunks_mut(ROWS_PER_TASK * self.d))
            .enumerate()
            .try_for_each(|(t, (cc, oc))| {
                ctl.check()?;
                self.decode_rows(cc, oc, t * ROWS_PER_TASK)
            })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::lattice::{e8_nearest_with, scalar};
    use crate::rng::Rng;
    use crate::SimdLevel;

    fn roots() -> Vec<[f32; 8]> {
        shell_points(1)
            .iter()
            .map(|p| p.map(|v| v as f32 * 0.5))
            .collect()
    }

    fn dist2(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| ((*x as f64) - (*y as f64)).powi(2))
            .sum()
    }

    #[test]
    fn shell_sizes() {
        // 240·σ3(m)
        for (m, n) in [(1, 240), (2, 2160), (3, 6720), (4, 17520)] {
            let pts = shell_points(m);
            assert_eq!(pts.len(), n, "m={m}");
            for p in &pts {
                let z: Vec<i32> = p.iter().map(|&v| v as i32).collect();
                assert!(is_e8_doubled(&z));
                assert_eq!(z.iter().map(|v| v * v).sum::<i32>(), 8 * m as i32);
            }
            assert!(pts.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn nearest_is_lattice_point_and_no_root_neighbour_is_closer() {
        let mut r = Rng::new(3);
        let roots = roots();
        for lvl in SimdLevel::available() {
            for it in 0..3000 {
                let s = if it % 3 == 0 { 0.5 } else { 3.0 };
                let mut x: Vec<f32> = (0..8).map(|_| (r.normal() * s) as f32).collect();
                if it % 5 == 0 {
                    // half-integers and integers: the tie rules
                    x.iter_mut().for_each(|v| *v = (*v * 2.0).round() * 0.5);
                }
                let mut y = vec![0f32; 8];
                e8_nearest_with(lvl, &x, &mut y);
                let z: Vec<i32> = y.iter().map(|v| (v * 2.0) as i32).collect();
                assert!(is_e8_doubled(&z), "{x:?} -> {y:?}");
                let mut yr = vec![0f32; 8];
                scalar::e8_nearest(&x, &mut yr);
                assert_eq!(
                    y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    yr.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{lvl:?} {x:?}"
                );
                let d0 = dist2(&x, &y);
                for rho in &roots {
                    let c: Vec<f32> = y.iter().zip(rho).map(|(a, b)| a + b).collect();
                    assert!(dist2(&x, &c) >= d0 - 1e-9, "{x:?}: {y:?} beaten by {c:?}");
                }
                // idempotent on lattice points
                let mut y2 = vec![0f32; 8];
                e8_nearest_with(lvl, &y, &mut y2);
                assert_eq!(y, y2);
            }
        }
    }

    #[test]
    fn lattice_encode_decode() {
        let lat = E8Lattice::new(0.25).unwrap();
        let mut r = Rng::new(4);
        let x: Vec<f32> = (0..16 * 10).map(|_| r.normal() as f32).collect();
        let ctl = Control::new();
        let z = lat.encode(&x, 16, &ctl).unwrap();
        let y = lat.decode(&z, 16).unwrap();
        assert_eq!(y, lat.nearest(&x, 16, &ctl).unwrap());
        assert_eq!(lat.encode(&y, 16, &ctl).unwrap(), z);
        assert!(lat.nearest(&x[..12], 12, &ctl).is_err());
        assert!(lat.decode(&[1, 0, 0, 0, 0, 0, 0, 0], 8).is_err());
        assert!(lat.nearest(&[1e9; 8], 8, &ctl).is_err());
        assert!(E8Lattice::new(0.0).is_err());
        assert!(E8Lattice::new(f32::NAN).is_err());
    }

    #[test]
    fn shell_codec_brute_force_and_roundtrip() {
        let ctl = Control::new();
        for shells in [vec![1u32], vec![2], vec![1, 2]] {
            let c = E8ShellCodec::new(16, &shells).unwrap();
            let k = c.points_per_block();
            assert_eq!(c.nv(), (k * k) as u128);
            let mut r = Rng::new(5);
            let x: Vec<f32> = (0..16 * 200).map(|_| r.normal() as f32).collect();
            let codes = c.encode(&x, &ctl).unwrap();
            let dec = c.decode(&codes, &ctl).unwrap();
            for (xr, dr) in x.chunks_exact(16).zip(dec.chunks_exact(16)) {
                let n: f32 = dr.iter().map(|v| v * v).sum();
                assert!((n - 1.0).abs() < 1e-5);
                for b in 0..2 {
                    let xb = &xr[b * 8..b * 8 + 8];
                    let got: f64 = xb
                        .iter()
                        .zip(&dr[b * 8..])
                        .map(|(a, b)| (a * b) as f64)
                        .sum();
                    // brute force over every normalized codebook point (scaled like the table)
                    for p in c.points() {
                        let nn: f64 = p.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
                        let ip: f64 = xb
                            .iter()
                            .zip(p)
                            .map(|(a, &v)| *a as f64 * v as f64 / nn / 2f64.sqrt())
                            .sum();
                        assert!(ip <= got + 1e-5, "{shells:?}");
                    }
                }
            }
            // decode∘encode is the identity on codebook points
            let all: Vec<u8> = (0..(k * k) as u128)
                .step_by(97)
                .flat_map(|v| v.to_le_bytes()[..c.code_size()].to_vec())
                .collect();
            let pts = c.decode(&all, &ctl).unwrap();
            assert_eq!(c.encode(&pts, &ctl).unwrap(), all);
        }
        assert!(E8ShellCodec::new(12, &[1]).is_err());
        assert!(E8ShellCodec::new(8, &[]).is_err());
        assert!(E8ShellCodec::new(8, &[9]).is_err());
        assert!(E8ShellCodec::new(8, &[1, 1]).is_err());
        // 17520^16 > 2^128
        assert!(E8ShellCodec::new(128, &[4]).is_err());
        let c = E8ShellCodec::new(8, &[1]).unwrap();
        assert!(c.decode(&[240, 0], &ctl).is_err());
    }
}
