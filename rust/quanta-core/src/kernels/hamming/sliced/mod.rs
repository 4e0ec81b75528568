//! Bit-sliced Hamming scan for many queries against one tile of up to 256 codes.
//!
//! A tile is transposed once into *planes*: plane `p = 8 * byte + bit` is a 256-bit lane mask
//! whose lane `l` holds bit `bit` of byte `byte` of code `l`. Then, per query with bit set `P`,
//!
//! `H(q, c) = |P| + pc(c) - 2 * Σ_{p ∈ P} plane_p`   and   `H(q, c) = |P| - pc(c) + 2 * Σ_{p ∉ P} plane_p`,
//!
//! where `pc(c)` (the code's own popcount) is counted once per tile and shared by every query.
//! Each query sums only the smaller of `P` / its complement (at most `nbits / 2` planes), with a
//! bit-sliced carry-save counter: one vector op advances 256 codes at once, about a quarter of
//! the vector work of a per-code `vpshufb` popcount at 256 bits. The counts are then compared
//! with the query's threshold without leaving the bit-sliced form, so the scan yields a lane mask
//! of codes with `H < thr`; exact distances are computed for those codes only (after the first
//! tiles of a query they are rare).
//!
//! The transpose costs about as much as a few dozen per-code popcounts, so the index uses this
//! path only when enough queries share each tile (the crossover is measured, see `select.rs`).
//! Integer arithmetic throughout: every variant is bit-exact with the scalar twin.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
pub mod scalar;

use crate::simd::SimdLevel;

/// Codes per tile (lanes of a plane).
pub const LANES: usize = 256;

/// One bit plane: lane `l` is bit `l % 64` of word `l / 64`.
pub type Plane = [u64; 4];

/// Bit width of a counter that can hold values up to `max`.
pub fn width(max: usize) -> usize {
    (usize::BITS - max.leading_zeros()).max(1) as usize
}

/// What a query sums over a tile: the planes of its set bits or of its clear bits, whichever
/// are fewer.
#[derive(Debug, Clone)]
pub struct SlicedQuery {
    /// Plane indices summed (each `< nbits`: the unsafe kernels index planes with them).
    planes: Vec<u32>,
    /// True if `planes` are the query's set bits (`H = |P| + pc - 2S`), else its clear bits
    /// (`H = |P| - pc + 2S`).
    ones: bool,
    /// `|P|`, the query's popcount.
    popcount: u32,
    nbits: usize,
}

impl SlicedQuery {
    /// Prepare one query of `q.len()` bytes. The plane list is padded to a multiple of 16 with
    /// the tile's zero plane (index `nbits`): the counter then runs whole Harley–Seal steps.
    pub fn new(q: &[u8]) -> Self {
        let mut s = Self::unpadded(q);
        let padded = s.planes.len().div_ceil(16).max(1) * 16;
        s.planes.resize(padded, s.nbits as u32);
        s
    }

    fn unpadded(q: &[u8]) -> Self {
        let nbits = 8 * q.len();
        let set: Vec<u32> = (0..nbits as u32)
            .filter(|&p| q[p as usize / 8] >> (p % 8) & 1 == 1)
            .collect();
        let popcount = set.len() as u32;
        if 2 * set.len() <= nbits {
            SlicedQuery {
                planes: set,
                ones: true,
                popcount,
                nbits,
            }
        } else {
            let clear = (0..nbits as u32)
                .filter(|&p| q[p as usize / 8] >> (p % 8) & 1 == 0)
                .collect();
            SlicedQuery {
                planes: clear,
                ones: false,
                popcount,
                nbits,
            }
        }
    }
}

/// A transposed tile: `8 * code_size` planes and a zero plane, plus the bit-sliced popcount of
/// every code.
#[derive(Debug, Clone)]
pub struct Tile {
    /// Codes in the tile (lanes past it are zero and never reported).
    pub len: usize,
    /// Bit planes, `8 * code_size`, then one all-zero plane (padding target).
    planes: Vec<Plane>,
    /// `pc(c)` in bit-sliced form, `width(8 * code_size)` planes (least significant first).
    pc: Vec<Plane>,
    /// Plane list of the popcount: every plane, padded like a query's.
    all: Vec<u32>,
}

impl Tile {
    /// Empty tile for codes of `code_size` bytes.
    pub fn new(code_size: usize) -> Self {
        let nbits = 8 * code_size;
        let mut all: Vec<u32> = (0..nbits as u32).collect();
        all.resize(nbits.div_ceil(16).max(1) * 16, nbits as u32);
        Tile {
            len: 0,
            planes: vec![[0; 4]; nbits + 1],
            pc: vec![[0; 4]; width(all.len()).max(4)],
            all,
        }
    }

    /// Transpose `codes` (row-major, at most [`LANES`] codes of `code_size` bytes) into the tile
    /// at a given level, and count each code's popcount.
    pub fn load_with(&mut self, lvl: SimdLevel, codes: &[u8], code_size: usize) {
        let n = codes.len() / code_size.max(1);
        assert!(
            n <= LANES && codes.len() == n * code_size,
            "tile: bad shape"
        );
        let nbits = 8 * code_size;
        assert_eq!(self.planes.len(), nbits + 1, "tile: code size changed");
        self.len = n;
        let planes = &mut self.planes[..nbits];
        match eff(lvl) {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `eff` returns Avx2 only when the CPU has AVX2 (runtime-detected); `all`
            // indexes planes 0..=nbits, is padded to 16, and `pc` holds its width (`new`).
            SimdLevel::Avx2 => unsafe {
                avx2::transpose(codes, code_size, planes);
                avx2::count(&self.planes, &self.all, &mut self.pc);
            },
            _ => {
                scalar::transpose(codes, code_size, planes);
                scalar::count(&self.planes, &self.all, &mut self.pc);
            }
        }
    }

    /// Lane mask (bit `l` of word `l / 64`) of the tile's codes at Hamming distance `< thr`
    /// from `q`, at a given level. `scratch` holds the per-query count (any length; resized).
    pub fn below_with(
        &self,
        lvl: SimdLevel,
        q: &SlicedQuery,
        thr: u32,
        scratch: &mut Vec<Plane>,
    ) -> Plane {
        let nbits = self.planes.len() - 1;
        assert_eq!(q.nbits, nbits, "sliced query and tile code sizes differ");
        let valid = lane_mask(self.len);
        if thr == 0 || self.len == 0 {
            return [0; 4];
        }
        if thr as usize > nbits {
            return valid;
        }
        scratch.resize(width(q.planes.len()).max(4), [0; 4]);
        // H < thr as "X + cx < Y + cy" over non-negative bit-sliced numbers: with S the count,
        // ones: pc + |P| < 2S + thr;  clear bits: 2S + |P| < pc + thr.
        let p = q.popcount as i64;
        let t = thr as i64;
        let w = width(3 * nbits + 2) + 1;
        let m = match eff(lvl) {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Avx2 only when the CPU has AVX2 (runtime-detected); the query's planes
            // are < nbits + 1 (same code size, asserted) and padded to 16 (`SlicedQuery::new`).
            SimdLevel::Avx2 => unsafe {
                avx2::count(&self.planes, &q.planes, scratch);
                if q.ones {
                    avx2::less(&self.pc, 0, scratch, 1, p - t, w)
                } else {
                    avx2::less(scratch, 1, &self.pc, 0, p - t, w)
                }
            },
            _ => {
                scalar::count(&self.planes, &q.planes, scratch);
                if q.ones {
                    scalar::less(&self.pc, 0, scratch, 1, p - t, w)
                } else {
                    scalar::less(scratch, 1, &self.pc, 0, p - t, w)
                }
            }
        };
        [
            m[0] & valid[0],
            m[1] & valid[1],
            m[2] & valid[2],
            m[3] & valid[3],
        ]
    }
}

/// The variant a level runs: AVX2 from the AVX2 level up (AVX-512 machines run it too).
pub fn eff(lvl: SimdLevel) -> SimdLevel {
    if lvl >= SimdLevel::Avx2 && crate::simd::detected() >= SimdLevel::Avx2 {
        SimdLevel::Avx2
    } else {
        SimdLevel::Scalar
    }
}

/// Mask of the first `n` lanes.
pub fn lane_mask(n: usize) -> Plane {
    let mut m = [0u64; 4];
    for (w, x) in m.iter_mut().enumerate() {
        let lo = 64 * w;
        *x = if n >= lo + 64 {
            u64::MAX
        } else if n > lo {
            (1u64 << (n - lo)) - 1
        } else {
            0
        };
    }
    m
}
