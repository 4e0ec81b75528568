//! Zn sphere codec decoding ("unranking") for codecs with `d <= 64` and codes below 2⁶⁴ — every
//! (d, r²) faiss supports. The code layout is the one described in `lattice/zn.rs`; this module
//! holds a flat, cache-friendly plan of it and one generic decoder, instantiated by the scalar
//! twin (portable bit deposit, scalar counting) and the x86-64 variant (BMI2 `pdep`, AVX2
//! compares). Both give bit-identical results: they perform the same integer steps.
//!
//! Per code:
//! * **atom**: a bucket table on the code's top bits gives the (usually single) candidate atom,
//!   a binary search over the few others settles it;
//! * **digits** of the permutation rank (mixed radix, first run least significant) are computed
//!   independently of each other, `q_g = rank / P_g` by multiplication with a precomputed
//!   128-bit reciprocal (`P_g` = product of the radices before run `g`) and
//!   `digit_g = q_g - radix_g · q_{g+1}`, so no division is on the critical path;
//! * **runs**: each digit is a colex rank of a `k`-subset of the `nf` free positions, `k` the
//!   run's multiplicity or, when that is more than half of `nf`, the complement's (the
//!   complement reverses colex order: `rank(S) = C(nf, m) - 1 - rank(S^c)`). The subset's
//!   largest elements are found by counting `C(r, j) <= digit` over a binomial column until
//!   the rest, `C(top, j)` subsets, is small enough to be read from a table of all `j`-subsets
//!   of `top` positions in colex order (= increasing bit masks);
//! * the relative mask is deposited into the free positions (`pdep`), values and signs written.

use std::sync::OnceLock;

/// Largest dimension of a plan (positions are `u64` masks).
pub const PLAN_MAX_D: usize = 64;
/// Largest `C(n, j)` read from the subset tables instead of searched.
const TAIL_LIMIT: u128 = 4096;
const NONE: u32 = u32::MAX;
/// Largest subset size searched: the complement keeps `k <= nf / 2 <= 32`.
const KMAX: usize = PLAN_MAX_D / 2;

/// Shared tables: binomial columns and the colex subset tables.
#[derive(Debug)]
pub struct Tables {
    /// `col[j][n] = C(n, j)`, `n < 64` (exact in `u64`, below 2⁶³).
    col: Box<[[u64; PLAN_MAX_D]; KMAX + 1]>,
    /// `off[j][n]`: start in `tab` of the `j`-subsets of `n` positions, or `NONE`.
    off: Box<[[u32; PLAN_MAX_D + 1]; KMAX + 1]>,
    /// Bit masks of the subsets, in colex (increasing) order, table after table.
    tab: Vec<u64>,
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let w = PLAN_MAX_D + 1;
        let mut b = vec![0u128; w * w];
        for n in 0..w {
            b[n * w] = 1;
            for k in 1..=n {
                b[n * w + k] = b[(n - 1) * w + k] + b[(n - 1) * w + k - 1];
            }
        }
        let c = |n: usize, k: usize| if k > n { 0 } else { b[n * w + k] };
        let mut col = Box::new([[0u64; PLAN_MAX_D]; KMAX + 1]);
        let mut off = Box::new([[NONE; PLAN_MAX_D + 1]; KMAX + 1]);
        let mut tab = Vec::new();
        for j in 0..=KMAX {
            for n in 0..PLAN_MAX_D {
                col[j][n] = c(n, j) as u64;
            }
            if j < 2 {
                continue;
            }
            for n in j..=PLAN_MAX_D {
                let cnt = c(n, j);
                if cnt > TAIL_LIMIT {
                    continue;
                }
                off[j][n] = tab.len() as u32;
                // Gosper's hack: the j-bit masks in increasing order
                let mut x = (1u64 << j) - 1;
                for i in 0..cnt {
                    tab.push(x);
                    if i + 1 < cnt {
                        let lo = x & x.wrapping_neg();
                        let r = x + lo;
                        x = (((r ^ x) >> 2) / lo) | r;
                    }
                }
            }
        }
        Tables { col, off, tab }
    })
}

/// Per-atom record.
#[derive(Debug, Clone, Copy)]
struct AtomPlan {
    /// First run in `ZnPlan::groups`.
    goff: u32,
    /// Runs decoded from digits: all but the last one.
    ndec: u32,
    nnz: u32,
    /// Bits of the last run's unit value (0.0 for the zero run).
    last_unit: u32,
}

/// One decoded run of an atom.
#[derive(Debug, Clone, Copy)]
pub struct GroupPlan {
    /// `ceil(2¹²⁸ / P_g)` for `g >= 1` (0 for the first run).
    magic: u128,
    /// `C(nf, mult)`.
    radix: u64,
    /// Bits of `val / sqrt(r2)`.
    pub(super) unit: u32,
    /// Free positions before the run.
    nf: u8,
    /// Subset size decoded: `mult`, or `nf - mult` when `flip`.
    k: u8,
    flip: bool,
}

/// One run of equal values of an atom (construction input).
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// `val / sqrt(r2)`.
    pub unit: f32,
    /// Multiplicity.
    pub mult: u32,
}

/// Flat decoding plan of one codec.
#[derive(Debug, Clone)]
pub struct ZnPlan {
    d: usize,
    nv: u64,
    c0: Vec<u64>,
    shift: u32,
    buckets: Vec<u32>,
    atoms: Vec<AtomPlan>,
    groups: Vec<GroupPlan>,
    tabs: &'static Tables,
}

#[inline(always)]
fn low64(p: u32) -> u64 {
    if p >= 64 {
        u64::MAX
    } else {
        (1u64 << p) - 1
    }
}

/// `floor(n / p)` from `magic = ceil(2¹²⁸ / p)`, exact for `n < 2⁶⁴`, `2 <= p < 2⁶⁴`.
#[inline(always)]
fn mulhi(n: u64, magic: u128) -> u64 {
    let hi = (n as u128) * (magic >> 64);
    let lo = ((n as u128) * (magic as u64 as u128)) >> 64;
    ((hi + lo) >> 64) as u64
}

impl ZnPlan {
    /// Plan of a codec of dimension `d <= 64` whose atoms (in code order) start at `c0` and
    /// consist of `runs` (largest value first; the last run's `unit` is 0 for zeros), with
    /// `nnz` non-zero entries; `nv` points in all. `None` when `d > 64`.
    pub fn new<'a>(
        d: usize,
        nv: u64,
        atoms: impl Iterator<Item = (u64, u32, &'a [Run])>,
    ) -> Option<ZnPlan> {
        if d == 0 || d > PLAN_MAX_D || nv == 0 {
            return None;
        }
        let mut c0 = Vec::new();
        let mut aps = Vec::new();
        let mut groups = Vec::new();
        for (start, nnz, runs) in atoms {
            let (last, dec) = runs.split_last()?;
            let mut nf = d;
            let mut p: u128 = 1;
            let goff = groups.len() as u32;
            for (g, r) in dec.iter().enumerate() {
                let m = r.mult as usize;
                let mut radix: u128 = 1;
                for i in 0..m {
                    radix = radix * (nf - i) as u128 / (i + 1) as u128;
                }
                let flip = 2 * m > nf;
                let magic = if g == 0 {
                    0
                } else {
                    debug_assert!(p >= 2);
                    u128::MAX / p + 1
                };
                groups.push(GroupPlan {
                    magic,
                    radix: radix as u64,
                    unit: r.unit.to_bits(),
                    nf: nf as u8,
                    k: if flip { nf - m } else { m } as u8,
                    flip,
                });
                p *= radix;
                nf -= m;
            }
            c0.push(start);
            aps.push(AtomPlan {
                goff,
                ndec: dec.len() as u32,
                nnz,
                last_unit: last.unit.to_bits(),
            });
        }
        if c0.is_empty() {
            return None;
        }
        // bucket table: atom holding the first code of each bucket of the top `bb` code bits
        let natom = c0.len();
        let bb = (usize::BITS - natom.leading_zeros() + 1).min(14);
        let codebits = 64 - (nv - 1).leading_zeros();
        let shift = codebits.saturating_sub(bb);
        let nb = ((nv - 1) >> shift) as usize + 1;
        let mut buckets = Vec::with_capacity(nb + 1);
        let mut t = 0usize;
        for b in 0..nb {
            let first = (b as u64) << shift;
            while t + 1 < natom && c0[t + 1] <= first {
                t += 1;
            }
            buckets.push(t as u32);
        }
        buckets.push((natom - 1) as u32);
        Some(ZnPlan {
            d,
            nv,
            c0,
            shift,
            buckets,
            atoms: aps,
            groups,
            tabs: tables(),
        })
    }

    /// Dimension.
    pub fn d(&self) -> usize {
        self.d
    }

    /// Number of points.
    pub fn nv(&self) -> u64 {
        self.nv
    }
}

/// Integer primitives of one instruction-set level.
pub trait ZnOps {
    /// Bit deposit: the low bits of `src` into the set bits of `mask`, lowest first.
    fn pdep(src: u64, mask: u64) -> u64;
    /// `#{r < top : col[r] <= cc}`, given `col[r] <= cc` for `r < lo` and `col[r] > cc` for
    /// `r >= top` (`lo <= top <= 64`): only `lo..top` needs comparing, and lanes past either
    /// end may be compared too.
    fn count_le(col: &[u64; PLAN_MAX_D], cc: u64, lo: usize, top: usize) -> usize;

    /// Write one row: `gs[g].unit` at the positions `masks[g]`, the last run's unit bits
    /// `last.1` at `last.0`, then negate the positions in `neg`. The masks partition `0..d`.
    #[inline(always)]
    fn write_row(
        out: &mut [f32],
        gs: &[GroupPlan],
        masks: &[u64; PLAN_MAX_D],
        last: (u64, u32),
        neg: u64,
    ) {
        for (gp, &abs) in gs.iter().zip(masks) {
            let u = f32::from_bits(gp.unit);
            let mut m = abs;
            while m != 0 {
                out[m.trailing_zeros() as usize] = u;
                m &= m - 1;
            }
        }
        let lu = f32::from_bits(last.1);
        let mut m = last.0;
        while m != 0 {
            out[m.trailing_zeros() as usize] = lu;
            m &= m - 1;
        }
        let mut m = neg;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            out[i] = -out[i];
            m &= m - 1;
        }
    }
}

/// Unit vectors of `codes` (each `< nv`, checked by the caller) into `out` (`codes.len() × d`).
#[inline(always)]
pub fn unrank_rows<O: ZnOps>(p: &ZnPlan, codes: &[u64], out: &mut [f32]) {
    for (&code, o) in codes.iter().zip(out.chunks_exact_mut(p.d)) {
        unrank_one::<O>(p, code, o);
    }
}

#[inline(always)]
fn unrank_one<O: ZnOps>(p: &ZnPlan, code: u64, out: &mut [f32]) {
    const M: usize = PLAN_MAX_D - 1;
    let t = p.tabs;
    let b = (code >> p.shift) as usize;
    let lo = p.buckets[b] as usize;
    let hi = p.buckets[b + 1] as usize;
    let a = lo + p.c0[lo + 1..=hi].partition_point(|&c| c <= code);
    let at = p.atoms[a];
    let rel = code - p.c0[a];
    let signs = rel & low64(at.nnz);
    let rank = rel.checked_shr(at.nnz).unwrap_or(0);
    let gs = &p.groups[at.goff as usize..(at.goff + at.ndec) as usize];
    let mut free = low64(p.d as u32);
    // positions of each decoded run (an atom has at most d <= 64 runs)
    let mut masks = [0u64; PLAN_MAX_D];
    let mut q = rank;
    for (g, gp) in gs.iter().enumerate() {
        // the quotients depend on `rank` only: no division chain
        let qn = match gs.get(g + 1) {
            Some(next) => mulhi(rank, next.magic),
            None => 0,
        };
        let digit = q - gp.radix * qn;
        q = qn;
        let mut cc = if gp.flip { gp.radix - 1 - digit } else { digit };
        let mut mask = 0u64;
        let mut top = gp.nf as usize;
        let mut j = gp.k as usize;
        while j >= 2 {
            let o = t.off[j][top];
            if o != NONE {
                mask |= t.tab[o as usize + cc as usize];
                j = 0;
                break;
            }
            let col = &t.col[j];
            // C(r, j) = 0 for r < j: the first j - 1 entries are known to count
            let r = O::count_le(col, cc, j - 1, top) - 1;
            cc -= col[r & M];
            mask |= 1u64 << (r & M);
            top = r;
            j -= 1;
        }
        if j == 1 {
            mask |= 1u64 << (cc & 63);
        }
        if gp.flip {
            mask = !mask & low64(gp.nf as u32);
        }
        let abs = O::pdep(mask, free);
        free &= !abs;
        masks[g & M] = abs;
    }
    let full = low64(p.d as u32);
    let nz = if at.last_unit != 0 {
        full
    } else {
        full & !free
    };
    let neg = O::pdep(signs, nz);
    O::write_row(out, gs, &masks, (free, at.last_unit), neg);
}
/// 8-bit bit-deposit table and popcounts, for the portable deposit.
struct Pdep8 {
    dep: Box<[[u8; 256]; 256]>,
    ones: [u32; 256],
}

fn pdep8() -> &'static Pdep8 {
    static T: OnceLock<Pdep8> = OnceLock::new();
    T.get_or_init(|| {
        let mut dep = Box::new([[0u8; 256]; 256]);
        let mut ones = [0u32; 256];
        for (b, row) in dep.iter_mut().enumerate() {
            ones[b] = (b as u32).count_ones();
            for (x, v) in row.iter_mut().enumerate() {
                let (mut m, mut k, mut r) = (b, 0, 0usize);
                while m != 0 {
                    let low = m & m.wrapping_neg();
                    if (x >> k) & 1 == 1 {
                        r |= low;
                    }
                    k += 1;
                    m ^= low;
                }
                *v = r as u8;
            }
        }
        Pdep8 { dep, ones }
    })
}

/// Portable primitives (the scalar twin's).
pub struct PortableOps;

impl ZnOps for PortableOps {
    /// A byte of `mask` at a time: `PDEP8[b][x] = pdep(x, b)` for 8-bit `b` (bits of `x` past
    /// `popcount(b)` are ignored), then drop the `popcount(b)` source bits used.
    #[inline(always)]
    fn pdep(src: u64, mask: u64) -> u64 {
        let t = pdep8();
        let (mut s, mut m, mut sh, mut r) = (src, mask, 0u32, 0u64);
        while m != 0 && s != 0 {
            let b = (m & 0xff) as usize;
            r |= (t.dep[b][(s & 0xff) as usize] as u64) << sh;
            s >>= t.ones[b];
            m >>= 8;
            sh += 8;
        }
        r
    }

    #[inline(always)]
    fn count_le(col: &[u64; PLAN_MAX_D], cc: u64, lo: usize, top: usize) -> usize {
        let top = top.min(PLAN_MAX_D);
        let lo = lo.min(top);
        lo + col[lo..top]
            .iter()
            .map(|&c| (c <= cc) as usize)
            .sum::<usize>()
    }
}
