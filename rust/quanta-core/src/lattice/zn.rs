//! Spherical Zn codec: the points of Zᵈ with squared norm r², scaled to the unit sphere
//! (faiss `ZnSphereCodec` counts, code layout and codes).
//!
//! * **Atoms** are the non-increasing non-negative integer vectors of squared norm r²,
//!   enumerated in lexicographically decreasing order (faiss's `sum_of_sq` order). Every point
//!   is an atom with its coordinates permuted and its non-zero entries sign-flipped.
//! * **Code** = `c0[atom] + signs + (perm_rank << nnz)`: `c0` is the number of points of the
//!   atoms before, `signs` one bit per non-zero coordinate in increasing coordinate order
//!   (1 = negative), `perm_rank` the rank of the arrangement. The rank is faiss's: the atom's
//!   distinct values are taken from largest to smallest; the positions of value v among the
//!   `F` still-free positions (relative indices `p_0 < p_1 < …`) get the combinatorial rank
//!   `Σ_j C(p_j, j+1)`, and the ranks are combined mixed-radix with the *first* value as the
//!   least significant digit (radix `C(F, mult)`).
//! * **Encode** = nearest point on the sphere = maximum inner product: sort `|x|` decreasing
//!   (ties: lower coordinate first), score every atom against the sorted magnitudes (the
//!   rearrangement inequality makes that the best permutation for the atom), keep the best atom
//!   (lowest index on ties) and give each coordinate the sign bit of `x` (faiss `copysign`).
//!
//! * **Decode** of a codec with `d <= 64` and codes below 2⁶⁴ (every faiss codec) runs the flat
//!   plan kernel of `kernels::lattice::zn` (bucketed atom lookup, digits by reciprocal
//!   multiplication, colex subset tables, bit deposit); other codecs use the generic `unrank`,
//!   which is also the kernel's reference in the tests.
//!
//! Counts go beyond 2⁶⁴ for large r², so ranking is done in `u128` where needed; a (d, r²) whose
//! point count does not fit in `u128` is refused. Codes are stored little-endian in `code_size` bytes
//! (faiss's `code_size`: the byte length of `nv`).

use crate::control::Control;
use crate::error::{Error, Result};
use crate::kernels::lattice as kern;
use rayon::prelude::*;

/// Largest supported dimension (coordinate masks are `u128`).
pub const MAX_D: usize = 128;
/// Largest supported squared radius (beyond it every useful `d` overflows 128-bit codes).
pub const MAX_R2: u32 = 1 << 20;
/// Largest number of atoms a codec may enumerate (memory and encode-time guard).
pub const MAX_ATOMS: usize = 1 << 20;
/// Largest `natom × d` (the atom table is at most 64 MiB).
pub const MAX_ATOM_VALUES: usize = 1 << 24;
/// Rows per parallel task in the batch calls.
const ROWS_PER_TASK: usize = 512;

/// Binomial coefficients `C(n, k)`, `n <= MAX_D`, exact in `u128` (`C(128, 64) < 2¹²⁵`).
#[derive(Debug, Clone)]
pub(crate) struct Binom {
    nmax: usize,
    tab: Vec<u128>,
}

impl Binom {
    pub(crate) fn new(nmax: usize) -> Self {
        let w = nmax + 1;
        let mut tab = vec![0u128; w * w];
        for n in 0..=nmax {
            tab[n * w] = 1;
            for k in 1..=n {
                tab[n * w + k] = tab[(n - 1) * w + k] + tab[(n - 1) * w + k - 1];
            }
        }
        Binom { nmax, tab }
    }

    #[inline]
    pub(crate) fn get(&self, n: usize, k: usize) -> u128 {
        if k > n {
            0
        } else {
            self.tab[n * (self.nmax + 1) + k]
        }
    }
}

/// Per-atom layout: first code, sign bits, and the runs of equal values (largest first).
#[derive(Debug, Clone)]
struct Segment {
    c0: u128,
    nnz: u32,
    /// Runs of equal values, in atom order (largest value first).
    groups: Vec<Group>,
}

/// One run of equal values of an atom.
#[derive(Debug, Clone)]
struct Group {
    val: u32,
    /// `val / sqrt(r2)`.
    unit: f32,
    mult: u32,
    /// `C(free positions, mult)`.
    radix: u128,
}

/// Scratch buffers of one encoding thread.
#[derive(Debug, Default)]
pub struct ZnScratch {
    keys: Vec<u64>,
    xp: Vec<f32>,
    scores: Vec<f32>,
}

/// Spherical Zn codec of dimension `d` and squared radius `r2`.
#[derive(Debug, Clone)]
pub struct ZnSphereCodec {
    d: usize,
    r2: u32,
    /// natom × d, each row non-increasing.
    atoms: Vec<u32>,
    natom: usize,
    /// Largest number of non-zero entries of an atom: only that many sorted magnitudes matter.
    nz: usize,
    /// Scoring table, nz × natom (row i = i-th largest entry of every atom).
    atoms_t: Vec<f32>,
    segments: Vec<Segment>,
    /// First code of each atom, in both widths.
    c0s: Vec<u128>,
    c0s64: Vec<u64>,
    /// Codes need more than 64 bits: rank in `u128`.
    wide: bool,
    nv: u128,
    code_size: usize,
    binom: Binom,
    /// `bt64[k][n] = C(n, k)` for `n, k < 128`, saturated to `u64` (exact wherever a 64-bit codec
    /// reads it); fixed-size so that masked indices need no bounds checks in the hot loops.
    bt64: Box<[[u64; MAX_D]; MAX_D]>,
    /// The same in `u128`, built only for codecs wider than 64 bits.
    bt128: Option<Box<[[u128; MAX_D]; MAX_D]>>,
    /// Flat decoding plan, for `d <= 64` and codes below 2⁶⁴ (the kernel path of `decode`).
    plan: Option<Box<kern::zn::ZnPlan>>,
}

fn isqrt(v: u64) -> u64 {
    let mut r = (v as f64).sqrt() as u64;
    while r * r > v {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= v {
        r += 1;
    }
    r
}

/// Atoms of squared norm `r2` in dimension `d`, lexicographically decreasing.
fn enumerate_atoms(d: usize, r2: u32) -> Result<Vec<u32>> {
    fn rec(
        d: usize,
        pos: usize,
        rem: u64,
        vmax: u64,
        cur: &mut Vec<u32>,
        out: &mut Vec<u32>,
    ) -> std::result::Result<(), ()> {
        let left = (d - pos) as u64;
        if pos + 1 == d {
            let v = isqrt(rem);
            if v <= vmax && v * v == rem {
                if out.len() / d >= MAX_ATOMS || out.len() + d > MAX_ATOM_VALUES {
                    return Err(());
                }
                out.extend_from_slice(cur);
                out.push(v as u32);
            }
            return Ok(());
        }
        let top = vmax.min(isqrt(rem));
        for v in (0..=top).rev() {
            // the remaining `left` coordinates are all <= v: they cannot reach `rem` any more
            if left * v * v < rem {
                break;
            }
            cur.push(v as u32);
            let r = rec(d, pos + 1, rem - v * v, v, cur, out);
            cur.pop();
            r?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    let mut cur = Vec::with_capacity(d);
    rec(d, 0, r2 as u64, u64::MAX, &mut cur, &mut out).map_err(|_| {
        Error::invalid(format!(
            "r2={r2} is too large for d={d}: more than {} atoms to enumerate",
            MAX_ATOMS.min(MAX_ATOM_VALUES / d)
        ))
    })?;
    Ok(out)
}

/// Byte length of `nv` (faiss's `code_size` rule).
pub(crate) fn code_size_of(nv: u128) -> usize {
    (128 - nv.leading_zeros() as usize).div_ceil(8)
}

#[inline]
fn low_mask(p: u32) -> u128 {
    if p >= 128 {
        u128::MAX
    } else {
        (1u128 << p) - 1
    }
}

/// Code arithmetic: `u64` when every code fits (all of faiss's range, fast division), else
/// `u128`.
trait Word:
    Copy
    + Ord
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Rem<Output = Self>
    + std::ops::Shl<u32, Output = Self>
    + std::ops::Shr<u32, Output = Self>
    + std::ops::BitAnd<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    fn from_u128(v: u128) -> Self;
    fn binom(c: &ZnSphereCodec, n: usize, k: usize) -> Self;
    fn c0s(c: &ZnSphereCodec) -> &[Self];
    fn bit(self, j: u32) -> bool;
    /// Low bits as `usize` (for values known to be small).
    fn low_usize(self) -> usize;
    /// Column `k` of the binomial table: `C(n, k)` for `n < MAX_D`.
    fn col(c: &ZnSphereCodec, k: usize) -> &[Self; MAX_D];
    /// `(self % m, self / m)`.
    fn rem_div(self, m: Self) -> (Self, Self);
}

impl Word for u64 {
    const ZERO: Self = 0;
    const ONE: Self = 1;
    #[inline]
    fn from_u128(v: u128) -> Self {
        v as u64
    }
    #[inline]
    fn binom(c: &ZnSphereCodec, n: usize, k: usize) -> Self {
        c.bt64[k & (MAX_D - 1)][n & (MAX_D - 1)]
    }
    #[inline]
    fn c0s(c: &ZnSphereCodec) -> &[Self] {
        &c.c0s64
    }
    #[inline]
    fn bit(self, j: u32) -> bool {
        (self >> j) & 1 == 1
    }
    #[inline]
    fn low_usize(self) -> usize {
        self as usize
    }
    #[inline]
    fn col(c: &ZnSphereCodec, k: usize) -> &[Self; MAX_D] {
        &c.bt64[k & (MAX_D - 1)]
    }
    #[inline]
    fn rem_div(self, m: Self) -> (Self, Self) {
        // 32-bit division is several times faster than 64-bit on common x86 cores
        if (self | m) >> 32 == 0 {
            let (a, b) = (self as u32, m as u32);
            ((a % b) as u64, (a / b) as u64)
        } else {
            (self % m, self / m)
        }
    }
}

impl Word for u128 {
    const ZERO: Self = 0;
    const ONE: Self = 1;
    #[inline]
    fn from_u128(v: u128) -> Self {
        v
    }
    #[inline]
    fn binom(c: &ZnSphereCodec, n: usize, k: usize) -> Self {
        match &c.bt128 {
            Some(t) => t[k & (MAX_D - 1)][n & (MAX_D - 1)],
            None => c.binom.get(n, k),
        }
    }
    #[inline]
    fn c0s(c: &ZnSphereCodec) -> &[Self] {
        &c.c0s
    }
    #[inline]
    fn bit(self, j: u32) -> bool {
        (self >> j) & 1 == 1
    }
    #[inline]
    fn low_usize(self) -> usize {
        self as usize
    }
    #[inline]
    fn col(c: &ZnSphereCodec, k: usize) -> &[Self; MAX_D] {
        &c.bt128
            .as_ref()
            .expect("codecs wider than 64 bits have u128 tables")[k & (MAX_D - 1)]
    }
    #[inline]
    fn rem_div(self, m: Self) -> (Self, Self) {
        (self % m, self / m)
    }
}

/// Code of the point whose i-th largest magnitude sits at coordinate `pos(i)` (atom `seg`),
/// signs from `x`.
#[inline]
fn rank_code<W: Word>(
    c: &ZnSphereCodec,
    seg: &Segment,
    x: &[f32],
    pos: impl Fn(usize) -> u32,
) -> W {
    let mut nzmask = 0u128;
    let mut negmask = 0u128;
    for i in 0..seg.nnz as usize {
        let p = pos(i);
        nzmask |= 1u128 << p;
        if x[p as usize].is_sign_negative() {
            negmask |= 1u128 << p;
        }
    }
    let mut signs = W::ZERO;
    let mut m = negmask;
    while m != 0 {
        let p = m.trailing_zeros();
        signs = signs + (W::ONE << (nzmask & low_mask(p)).count_ones());
        m &= m - 1;
    }
    let mut free = low_mask(c.d as u32);
    let mut rank = W::ZERO;
    let mut shift = W::ONE;
    let mut start = 0usize;
    let ng = seg.groups.len();
    for g in &seg.groups[..ng - 1] {
        let mut gm = 0u128;
        for i in start..start + g.mult as usize {
            gm |= 1u128 << pos(i);
        }
        let mut cc = W::ZERO;
        let mut j = 1usize;
        let mut b = gm;
        while b != 0 {
            let p = b.trailing_zeros();
            let r = (free & low_mask(p)).count_ones() as usize;
            cc = cc + W::binom(c, r, j);
            j += 1;
            b &= b - 1;
        }
        rank = rank + shift * cc;
        shift = shift * W::from_u128(g.radix);
        free &= !gm;
        start += g.mult as usize;
    }
    W::from_u128(seg.c0) + signs + (rank << seg.nnz)
}

/// Unit vector of `code` (`< nv`, unchecked) into `out`.
#[inline]
fn unrank<W: Word>(c: &ZnSphereCodec, code: W, out: &mut [f32]) {
    // masked indices (`& M`) are no-ops (every index is < d <= MAX_D) that spare bounds checks
    const M: usize = MAX_D - 1;
    let d = c.d;
    let t = W::c0s(c).partition_point(|&c0| c0 <= code) - 1;
    let seg = &c.segments[t];
    let rel = code - W::c0s(c)[t];
    let signs = rel & ((W::ONE << seg.nnz) - W::ONE);
    let mut rest = rel >> seg.nnz;
    let mut val = [0f32; MAX_D];
    // free positions, increasing, ping-ponged between two buffers
    let mut bufs = [[0u8; MAX_D]; 2];
    for (i, f) in bufs[0].iter_mut().enumerate().take(d) {
        *f = i as u8;
    }
    let mut cur = 0;
    let mut nfree = d;
    let ng = seg.groups.len();
    let last = &seg.groups[ng - 1];
    let mut nzmask = 0u128;
    let mut ranks = [0usize; MAX_D];
    for (gi, g) in seg.groups[..ng - 1].iter().enumerate() {
        // the last digit needs no division: what is left is below its radix
        let (mut cc, q) = if gi + 2 == ng {
            (rest, W::ZERO)
        } else {
            rest.rem_div(W::from_u128(g.radix))
        };
        rest = q;
        let m = g.mult as usize;
        let (a, b) = bufs.split_at_mut(1);
        let (src, dst) = if cur == 0 {
            (&a[0], &mut b[0])
        } else {
            (&b[0], &mut a[0])
        };
        let nf = nfree;
        // ranks (among the free positions) of the run's positions, increasing
        if m == 1 {
            // the rank is the digit itself
            ranks[0] = cc.low_usize();
        } else if m == 2 {
            // r0 < r1 with C(r1, 2) + r0 = digit: r1 from the square root
            let v = cc.low_usize();
            let mut r1 = ((1.0 + (1.0 + 8.0 * v as f64).sqrt()) / 2.0) as usize;
            while r1 * r1.saturating_sub(1) / 2 > v {
                r1 -= 1;
            }
            while (r1 + 1) * r1 / 2 <= v {
                r1 += 1;
            }
            ranks[0] = v - r1 * (r1 - 1) / 2;
            ranks[1] = r1;
        } else {
            // combinatorial number system, largest rank first: the rank of the j-th position
            // is the largest r with C(r, j) <= digit, i.e. the number of such r minus one
            // (C(., j) is non-decreasing), counted without a data-dependent branch
            let mut top = nf;
            for j in (1..=m).rev() {
                let col = W::col(c, j);
                let cnt = col[..top]
                    .iter()
                    .fold(0usize, |a, &b| a + (b <= cc) as usize);
                let r = cnt - 1; // >= j - 1: C(j - 1, j) = 0 is always counted
                cc = cc - col[r & M];
                ranks[(j - 1) & M] = r;
                top = r;
            }
        }
        let mut chosen = 0u128;
        for &r in &ranks[..m] {
            let p = src[r & M] as usize & M;
            val[p] = g.unit;
            nzmask |= 1u128 << p;
            chosen |= 1u128 << (r & M);
        }
        nfree -= m;
        // the zero run is always last (smallest value): if it follows, the free positions
        // need not be listed any more
        if gi + 2 == ng && last.val == 0 {
            break;
        }
        if m <= 2 {
            // cut the chosen entries out of the list
            let mut w = 0;
            let mut from = 0;
            for &r in &ranks[..m] {
                dst[w..w + r - from].copy_from_slice(&src[from..r]);
                w += r - from;
                from = r + 1;
            }
            dst[w..w + nf - from].copy_from_slice(&src[from..nf]);
        } else {
            let mut w = 0usize;
            for (r, &p) in src[..nf].iter().enumerate() {
                dst[w & M] = p;
                w += 1 - ((chosen >> (r as u32 & 127)) & 1) as usize;
            }
        }
        cur ^= 1;
    }
    if last.val != 0 {
        for &p in &bufs[cur][..nfree] {
            val[p as usize & M] = last.unit;
        }
        nzmask = low_mask(d as u32);
    }
    // signs of the non-zero coordinates, in increasing coordinate order (branch-free)
    let mut m = nzmask;
    let mut k = 0u32;
    while m != 0 {
        let p = m.trailing_zeros() as usize & M;
        val[p] = f32::from_bits(val[p].to_bits() ^ ((signs.bit(k) as u32) << 31));
        k += 1;
        m &= m - 1;
    }
    out[..d].copy_from_slice(&val[..d]);
}

impl ZnSphereCodec {
    /// Build the codec: enumerate the atoms and the code layout.
    ///
    /// Errors: `d` outside `1..=128`, `r2` outside `1..=2^20`, no point of Zᵈ with squared norm
    /// `r2`, more than [`MAX_ATOMS`] atoms, or more than 2¹²⁸ − 1 points (codes wider than 128
    /// bits).
    pub fn new(d: usize, r2: u32) -> Result<Self> {
        if d == 0 || d > MAX_D {
            return Err(Error::invalid(format!("d must be in 1..={MAX_D}, got {d}")));
        }
        if r2 == 0 || r2 > MAX_R2 {
            return Err(Error::invalid(format!(
                "r2 must be in 1..={MAX_R2}, got {r2}"
            )));
        }
        let atoms = enumerate_atoms(d, r2)?;
        let natom = atoms.len() / d;
        if natom == 0 {
            return Err(Error::invalid(format!(
                "no point of Z^{d} has squared norm r2={r2}"
            )));
        }
        let binom = Binom::new(d);
        let r = (r2 as f32).sqrt();
        let mut segments = Vec::with_capacity(natom);
        let mut nv: u128 = 0;
        let too_big = || {
            Error::invalid(format!(
                "r2={r2} is too large for d={d}: the codec would have more than 2^128 points, \
                 so codes would not fit in 128 bits"
            ))
        };
        let mut nz = 0;
        for a in atoms.chunks_exact(d) {
            let nnz = a.iter().filter(|&&v| v != 0).count();
            nz = nz.max(nnz);
            let mut groups = Vec::new();
            let mut free = d;
            let mut count: u128 = 1;
            let mut i = 0;
            while i < d {
                let mut j = i;
                while j < d && a[j] == a[i] {
                    j += 1;
                }
                let m = j - i;
                let radix = binom.get(free, m);
                count = count.checked_mul(radix).ok_or_else(too_big)?;
                groups.push(Group {
                    val: a[i],
                    unit: a[i] as f32 / r,
                    mult: m as u32,
                    radix,
                });
                free -= m;
                i = j;
            }
            let orbit = 1u128
                .checked_shl(nnz as u32)
                .and_then(|s| count.checked_mul(s))
                .ok_or_else(too_big)?;
            segments.push(Segment {
                c0: nv,
                nnz: nnz as u32,
                groups,
            });
            nv = nv.checked_add(orbit).ok_or_else(too_big)?;
        }
        let mut atoms_t = vec![0f32; nz * natom];
        for (t, a) in atoms.chunks_exact(d).enumerate() {
            for i in 0..nz {
                atoms_t[i * natom + t] = a[i] as f32;
            }
        }
        let c0s: Vec<u128> = segments.iter().map(|s| s.c0).collect();
        let wide = nv > u64::MAX as u128;
        let c0s64 = c0s
            .iter()
            .map(|&c| c.min(u64::MAX as u128) as u64)
            .collect();
        let full = Binom::new(MAX_D);
        let mut bt64: Box<[[u64; MAX_D]; MAX_D]> = vec![[0u64; MAX_D]; MAX_D]
            .into_boxed_slice()
            .try_into()
            .expect("MAX_D rows");
        for (k, row) in bt64.iter_mut().enumerate() {
            for (n, v) in row.iter_mut().enumerate() {
                *v = full.get(n, k).min(u64::MAX as u128) as u64;
            }
        }
        let bt128 = wide.then(|| {
            let mut t: Box<[[u128; MAX_D]; MAX_D]> = vec![[0u128; MAX_D]; MAX_D]
                .into_boxed_slice()
                .try_into()
                .expect("MAX_D rows");
            for (k, row) in t.iter_mut().enumerate() {
                for (n, v) in row.iter_mut().enumerate() {
                    *v = full.get(n, k);
                }
            }
            t
        });
        let plan = if wide {
            None
        } else {
            let runs: Vec<Vec<kern::zn::Run>> = segments
                .iter()
                .map(|s| {
                    s.groups
                        .iter()
                        .map(|g| kern::zn::Run {
                            unit: g.unit,
                            mult: g.mult,
                        })
                        .collect()
                })
                .collect();
            kern::zn::ZnPlan::new(
                d,
                nv as u64,
                segments
                    .iter()
                    .zip(&runs)
                    .map(|(s, r)| (s.c0 as u64, s.nnz, r.as_slice())),
            )
            .map(Box::new)
        };
        Ok(ZnSphereCodec {
            d,
            r2,
            plan,
            c0s,
            c0s64,
            wide,
            bt64,
            bt128,
            atoms,
            natom,
            nz,
            atoms_t,
            segments,
            nv,
            code_size: code_size_of(nv),
            binom,
        })
    }

    /// Dimension.
    pub fn d(&self) -> usize {
        self.d
    }

    /// Squared radius of the integer points.
    pub fn r2(&self) -> u32 {
        self.r2
    }

    /// Number of points (codes are `0..nv`).
    pub fn nv(&self) -> u128 {
        self.nv
    }

    /// Bytes per code (faiss `code_size`).
    pub fn code_size(&self) -> usize {
        self.code_size
    }

    /// Bits needed to tell the points apart: `ceil(log2 nv)`.
    pub fn nbits(&self) -> u32 {
        128 - (self.nv - 1).leading_zeros()
    }

    /// The flat decoding plan (`d <= 64`, codes below 2⁶⁴), for the decode kernel.
    pub fn decode_plan(&self) -> Option<&kern::zn::ZnPlan> {
        self.plan.as_deref()
    }

    /// Number of atoms.
    pub fn natom(&self) -> usize {
        self.natom
    }

    /// The atoms, `natom × d` row-major, each non-increasing, lexicographically decreasing.
    pub fn atoms(&self) -> &[u32] {
        &self.atoms
    }

    /// Code of the nearest point (max inner product) to one vector of length `d`.
    pub fn encode_one(&self, x: &[f32], s: &mut ZnScratch) -> u128 {
        let d = self.d;
        debug_assert_eq!(x.len(), d);
        // keys sort by |x| decreasing, then coordinate increasing
        s.keys.clear();
        s.keys.extend(
            x.iter()
                .enumerate()
                .map(|(i, v)| ((!v.abs().to_bits()) as u64) << 32 | i as u64),
        );
        let nz = self.nz;
        if nz < d {
            s.keys.select_nth_unstable(nz - 1);
            s.keys[..nz].sort_unstable();
        } else {
            s.keys.sort_unstable();
        }
        s.xp.clear();
        s.xp.extend(
            s.keys[..nz]
                .iter()
                .map(|&k| f32::from_bits(!((k >> 32) as u32))),
        );
        s.scores.resize(self.natom, 0.0);
        let t = kern::score_argmax(&self.atoms_t, &s.xp, &mut s.scores);
        let seg = &self.segments[t];
        let pos = |i: usize| (s.keys[i] & 0xffff_ffff) as u32;
        if self.wide {
            rank_code::<u128>(self, seg, x, pos)
        } else {
            rank_code::<u64>(self, seg, x, pos) as u128
        }
    }

    /// Integer lattice point of a code (`code < nv`, unchecked) into `out` (len `d`).
    pub fn decode_int(&self, code: u128, out: &mut [i32]) {
        let mut f = [0f32; MAX_D];
        self.decode_one(code, &mut f[..self.d]);
        let r = (self.r2 as f64).sqrt();
        for (o, v) in out.iter_mut().zip(&f[..self.d]) {
            *o = (*v as f64 * r).round() as i32;
        }
    }

    /// Unit-norm point of a code (`code < nv`, unchecked) into `out` (len `d`).
    #[inline]
    pub fn decode_one(&self, code: u128, out: &mut [f32]) {
        if let Some(p) = &self.plan {
            kern::zn_unrank(p, &[code as u64], out)
        } else if self.wide {
            unrank::<u128>(self, code, out)
        } else {
            unrank::<u64>(self, code as u64, out)
        }
    }

    /// Read the code of one row (`code_size` little-endian bytes); error if `>= nv`.
    #[inline]
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

    /// Encode rows of `x` (n × d, finite) into `codes` (n × code_size), on the calling thread.
    pub fn encode_rows(&self, x: &[f32], codes: &mut [u8], s: &mut ZnScratch) {
        let cs = self.code_size;
        for (xr, cr) in x.chunks_exact(self.d).zip(codes.chunks_exact_mut(cs)) {
            cr.copy_from_slice(&self.encode_one(xr, s).to_le_bytes()[..cs]);
        }
    }

    /// Decode rows of `codes` into unit vectors, on the calling thread; `i0` numbers the rows
    /// in error messages.
    pub fn decode_rows(&self, codes: &[u8], out: &mut [f32], i0: usize) -> Result<()> {
        if let Some(p) = &self.plan {
            const B: usize = 256;
            let mut buf = [0u64; B];
            let cs = self.code_size;
            for (bi, (cb, ob)) in codes
                .chunks(B * cs)
                .zip(out.chunks_mut(B * self.d))
                .enumerate()
            {
                let nb = cb.len() / cs;
                // codes of a plan fit in 8 bytes: read 8 and mask where the buffer allows
                let mask = u64::MAX >> (64 - 8 * cs);
                let mut top = 0u64;
                for (i, v) in buf[..nb].iter_mut().enumerate() {
                    let o = i * cs;
                    *v = match cb.get(o..o + 8) {
                        Some(w) => u64::from_le_bytes(w.try_into().expect("8 bytes")) & mask,
                        None => read_le(&cb[o..o + cs]) as u64,
                    };
                    top = top.max(*v);
                }
                if top as u128 >= self.nv {
                    for (i, cr) in cb.chunks_exact(cs).enumerate() {
                        self.read_code(cr, i0 + bi * B + i)?;
                    }
                }
                kern::zn_unrank(p, &buf[..nb], &mut ob[..nb * self.d]);
            }
            return Ok(());
        }
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

    /// Codes (n × code_size bytes) of the nearest points of the rows of `x`.
    pub fn encode(&self, x: &[f32], ctl: &Control) -> Result<Vec<u8>> {
        let n = crate::validate::check_batch(x, self.d, "x")?;
        let mut codes = vec![0u8; n * self.code_size];
        x.par_chunks(ROWS_PER_TASK * self.d)
            .zip(codes.par_chunks_mut(ROWS_PER_TASK * self.code_size))
            .try_for_each_init(ZnScratch::default, |s, (xc, cc)| {
                ctl.check()?;
                self.encode_rows(xc, cc, s);
                Ok(())
            })?;
        Ok(codes)
    }

    /// Unit vectors (n × d) of codes (n × code_size bytes).
    pub fn decode(&self, codes: &[u8], ctl: &Control) -> Result<Vec<f32>> {
        let n = check_codes_len(codes, self.code_size)?;
        let mut out = zeroed_par(n * self.d);
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

    /// Nearest unit-norm lattice points of the rows of `x` (encode then decode, fused).
    pub fn quantize(&self, x: &[f32], ctl: &Control) -> Result<Vec<f32>> {
        let n = crate::validate::check_batch(x, self.d, "x")?;
        let mut out = vec![0f32; n * self.d];
        x.par_chunks(ROWS_PER_TASK * self.d)
            .zip(out.par_chunks_mut(ROWS_PER_TASK * self.d))
            .try_for_each_init(ZnScratch::default, |s, (xc, oc)| {
                ctl.check()?;
                for (xr, or) in xc.chunks_exact(self.d).zip(oc.chunks_exact_mut(self.d)) {
                    let c = self.encode_one(xr, s);
                    self.decode_one(c, or);
                }
                Ok(())
            })?;
        Ok(out)
    }
}

/// A zeroed vector of `len` floats, zeroed in parallel when large: a freshly allocated big
/// buffer usually comes from the heap (glibc raises its mmap threshold once one is freed), and
/// `calloc` then clears it on one thread, which would serialize a good part of a fast decode.
pub(crate) fn zeroed_par(len: usize) -> Vec<f32> {
    if len < 1 << 16 {
        return vec![0f32; len];
    }
    let mut v = Vec::with_capacity(len);
    v.par_extend(rayon::iter::repeat_n(0f32, len));
    v
}

/// Little-endian integer of up to 16 bytes.
#[inline]
pub(crate) fn read_le(row: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    b[..row.len()].copy_from_slice(row);
    u128::from_le_bytes(b)
}

/// Number of codes in a flat byte buffer, or a shape error.
pub(crate) fn check_codes_len(codes: &[u8], code_size: usize) -> Result<usize> {
    if !codes.len().is_multiple_of(code_size) {
        return Err(Error::shape(format!(
            "codes has {} bytes, not a multiple of code_size={code_size}",
            codes.len()
        )));
    }
    Ok(codes.len() / code_size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn counts_match_faiss() {
        // (d, r2, nv, code_size, natom) from faiss.ZnSphereCodec
        let cases: [(usize, u32, u128, usize, usize); 16] = [
            (16, 4, 29152, 2, 2),
            (16, 21, 3392205824, 4, 11),
            (16, 200, 24284122352540448, 7, 2091),
            (24, 3, 16192, 2, 1),
            (24, 10, 2319457632, 4, 4),
            (24, 79, 17319684851070915840, 8, 256),
            (32, 3, 39680, 2, 1),
            (32, 8, 2724906944, 4, 3),
            (32, 36, 15221194949728018112, 8, 41),
            (40, 2, 3120, 2, 1),
            (40, 7, 2392224640, 4, 2),
            (40, 24, 12076325113647462720, 8, 16),
            (64, 2, 8064, 2, 1),
            (64, 3, 333312, 3, 1),
            (64, 5, 244000512, 4, 2),
            (64, 8, 1134318264192, 6, 3),
        ];
        for (d, r2, nv, cs, na) in cases {
            let c = ZnSphereCodec::new(d, r2).unwrap();
            assert_eq!(
                (c.nv(), c.code_size(), c.natom()),
                (nv, cs, na),
                "d={d} r2={r2}"
            );
        }
        assert_eq!(ZnSphereCodec::new(24, 3).unwrap().nbits(), 14);
        assert_eq!(ZnSphereCodec::new(16, 200).unwrap().nbits(), 55);
    }

    fn all_points(d: usize, r2: i32) -> Vec<Vec<i32>> {
        let mut out = vec![];
        let m = (r2 as f64).sqrt() as i32;
        let mut cur = vec![-m; d];
        loop {
            if cur.iter().map(|v| v * v).sum::<i32>() == r2 {
                out.push(cur.clone());
            }
            let mut i = 0;
            while i < d && cur[i] == m {
                cur[i] = -m;
                i += 1;
            }
            if i == d {
                return out;
            }
            cur[i] += 1;
        }
    }

    #[test]
    fn bijection_and_nearest_on_small_codecs() {
        let ctl = Control::new();
        for (d, r2) in [(4usize, 1u32), (4, 3), (5, 6), (6, 9), (3, 17), (8, 4)] {
            let c = ZnSphereCodec::new(d, r2).unwrap();
            let pts = all_points(d, r2 as i32);
            assert_eq!(c.nv(), pts.len() as u128, "d={d} r2={r2}");
            let mut seen = std::collections::HashSet::new();
            let mut buf = vec![0i32; d];
            for code in 0..c.nv() {
                c.decode_int(code, &mut buf);
                assert_eq!(buf.iter().map(|v| v * v).sum::<i32>(), r2 as i32);
                assert!(seen.insert(buf.clone()));
                let xf: Vec<f32> = buf.iter().map(|&v| v as f32).collect();
                let mut s = ZnScratch::default();
                assert_eq!(c.encode_one(&xf, &mut s), code, "d={d} r2={r2} {buf:?}");
            }
            // encode = max inner product over every point (random inputs: no ties)
            let mut r = Rng::new(7);
            let x: Vec<f32> = (0..d * 300).map(|_| r.normal() as f32).collect();
            let q = c.quantize(&x, &ctl).unwrap();
            let codes = c.encode(&x, &ctl).unwrap();
            assert_eq!(c.decode(&codes, &ctl).unwrap(), q);
            for (xr, qr) in x.chunks_exact(d).zip(q.chunks_exact(d)) {
                let got: f64 = xr
                    .iter()
                    .zip(qr)
                    .map(|(a, b)| (*a as f64) * (*b as f64))
                    .sum();
                let best = pts
                    .iter()
                    .map(|p| {
                        p.iter()
                            .zip(xr)
                            .map(|(&a, &b)| a as f64 * b as f64)
                            .sum::<f64>()
                            / (r2 as f64).sqrt()
                    })
                    .fold(f64::MIN, f64::max);
                assert!(got >= best - 1e-5, "d={d} r2={r2}: {got} < {best}");
            }
        }
    }

    #[test]
    fn plan_kernel_matches_reference_unrank_at_every_level() {
        // the flat-plan kernel (every level) against the generic reference `unrank`, on random
        // codes and on the first and last code of every atom
        let cases = [
            (24usize, 3u32),
            (24, 10),
            (24, 79),
            (32, 8),
            (32, 36),
            (40, 24),
            (16, 200),
            (16, 21),
            (64, 8),
            (64, 5),
            (8, 8),
            (5, 6),
            (1, 4),
            (2, 25),
            (60, 6),
            (64, 12),
        ];
        let mut rng = Rng::new(11);
        for (d, r2) in cases {
            let c = ZnSphereCodec::new(d, r2).unwrap();
            let plan = c
                .plan
                .as_ref()
                .unwrap_or_else(|| panic!("d={d} r2={r2}: no plan"));
            let nv = c.nv() as u64;
            let mut codes: Vec<u64> = (0..3000)
                .map(|_| ((rng.next_u64() as u128 * nv as u128) >> 64) as u64)
                .collect();
            for s in &c.segments {
                codes.push(s.c0 as u64);
                codes.push(s.c0 as u64 + (1u64 << s.nnz) - 1);
            }
            codes.extend(c.segments[1..].iter().map(|s| s.c0 as u64 - 1));
            codes.push(nv - 1);
            let mut want = vec![0f32; codes.len() * d];
            for (&code, o) in codes.iter().zip(want.chunks_exact_mut(d)) {
                unrank::<u64>(&c, code, o);
            }
            for lvl in crate::simd::SimdLevel::available() {
                let mut got = vec![f32::NAN; codes.len() * d];
                kern::zn_unrank_with(lvl, plan, &codes, &mut got);
                for (i, (g, w)) in got.chunks_exact(d).zip(want.chunks_exact(d)).enumerate() {
                    assert!(
                        g.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "d={d} r2={r2} {lvl:?} code {}: {g:?} != {w:?}",
                        codes[i]
                    );
                }
            }
        }
        assert!(ZnSphereCodec::new(48, 30).unwrap().plan.is_none());
        assert!(ZnSphereCodec::new(65, 3).unwrap().plan.is_none());
    }

    #[test]
    fn batch_decode_reads_and_checks_every_row() {
        // rows are read 8 bytes at a time and masked: the next rows' bytes must not
        // leak into a code, and a code >= nv must be refused with its row number
        let ctl = Control::new();
        for (d, r2) in [(16usize, 200u32), (24, 79), (24, 3), (32, 8)] {
            let c = ZnSphereCodec::new(d, r2).unwrap();
            let cs = c.code_size();
            let mut r = Rng::new(3);
            let n = 700;
            let vals: Vec<u128> = (0..n)
                .map(|i| match i % 3 {
                    0 => c.nv() - 1,
                    _ => (r.next_u64() as u128 * c.nv()) >> 64,
                })
                .collect();
            let mut codes: Vec<u8> = vals
                .iter()
                .flat_map(|v| v.to_le_bytes()[..cs].to_vec())
                .collect();
            let got = c.decode(&codes, &ctl).unwrap();
            let mut want = vec![0f32; d];
            for (v, g) in vals.iter().zip(got.chunks_exact(d)) {
                unrank::<u64>(&c, *v as u64, &mut want);
                assert_eq!(g, &want[..], "d={d} r2={r2} code {v}");
            }
            for bad in [c.nv(), (1u128 << (8 * cs)) - 1] {
                if bad < c.nv() {
                    continue;
                }
                let row = 401;
                codes[row * cs..(row + 1) * cs].copy_from_slice(&bad.to_le_bytes()[..cs]);
                let e = c.decode(&codes, &ctl).unwrap_err().to_string();
                assert!(e.contains("row 401"), "{e}");
            }
        }
    }

    #[test]
    fn wide_codes_roundtrip_beyond_64_bits() {
        let ctl = Control::new();
        let c = ZnSphereCodec::new(48, 30).unwrap();
        assert!(c.nbits() > 64, "{}", c.nbits());
        let mut r = Rng::new(8);
        let x: Vec<f32> = (0..48 * 500).map(|_| r.normal() as f32).collect();
        let codes = c.encode(&x, &ctl).unwrap();
        let dec = c.decode(&codes, &ctl).unwrap();
        assert_eq!(c.encode(&dec, &ctl).unwrap(), codes);
        let mut top = (c.nv() - 1).to_le_bytes()[..c.code_size()].to_vec();
        let p = c.decode(&top, &ctl).unwrap();
        assert_eq!(c.encode(&p, &ctl).unwrap(), top);
        top = c.nv().to_le_bytes()[..c.code_size()].to_vec();
        assert!(c.decode(&top, &ctl).is_err());
    }

    #[test]
    fn errors() {
        assert!(ZnSphereCodec::new(0, 3).is_err());
        assert!(ZnSphereCodec::new(129, 3).is_err());
        assert!(ZnSphereCodec::new(8, 0).is_err());
        assert!(ZnSphereCodec::new(1, 2).is_err());
        assert!(ZnSphereCodec::new(2, 3).is_err());
        let e = ZnSphereCodec::new(128, 400).unwrap_err().to_string();
        assert!(e.contains("r2"), "{e}");
        // atom-table guard: refused quickly, without gigabytes of atoms
        let e = ZnSphereCodec::new(128, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("atoms"), "{e}");
        let c = ZnSphereCodec::new(8, 3).unwrap();
        let ctl = Control::new();
        assert!(c.encode(&[f32::NAN; 8], &ctl).is_err());
        assert!(c.encode(&[0.0; 7], &ctl).is_err());
        assert!(c.decode(&[0; 3], &ctl).is_err());
    }
}
