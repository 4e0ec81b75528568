//! Scalar twins of the bit-sliced kernels: the reference semantics, on `[u64; 4]` lanes.

use super::{Plane, LANES};

#[inline]
fn and(a: Plane, b: Plane) -> Plane {
    [a[0] & b[0], a[1] & b[1], a[2] & b[2], a[3] & b[3]]
}
#[inline]
fn xor(a: Plane, b: Plane) -> Plane {
    [a[0] ^ b[0], a[1] ^ b[1], a[2] ^ b[2], a[3] ^ b[3]]
}
#[inline]
fn or(a: Plane, b: Plane) -> Plane {
    [a[0] | b[0], a[1] | b[1], a[2] | b[2], a[3] | b[3]]
}
#[inline]
fn not(a: Plane) -> Plane {
    [!a[0], !a[1], !a[2], !a[3]]
}

/// `planes[8 * byte + bit]` lane `l` = bit `bit` of byte `byte` of code `l`; lanes past the
/// last code are zero. `codes` holds at most [`LANES`] codes of `cs` bytes.
pub fn transpose(codes: &[u8], cs: usize, planes: &mut [Plane]) {
    debug_assert!(codes.len() <= LANES * cs && planes.len() == 8 * cs);
    planes.fill([0; 4]);
    for (l, c) in codes.chunks_exact(cs.max(1)).enumerate() {
        let (w, bit) = (l / 64, 1u64 << (l % 64));
        for (i, &b) in c.iter().enumerate() {
            let mut b = b;
            while b != 0 {
                planes[8 * i + b.trailing_zeros() as usize][w] |= bit;
                b &= b - 1;
            }
        }
    }
}

/// Bit-sliced per-lane count of the set bits of `planes[idx[..]]` into `out` (least significant
/// bit first; `out.len()` bits, which must hold `idx.len()`).
pub fn count(planes: &[Plane], idx: &[u32], out: &mut [Plane]) {
    debug_assert!(super::width(idx.len()) <= out.len());
    out.fill([0; 4]);
    for &p in idx {
        // ripple-carry add of one bit per lane
        let mut c = planes[p as usize];
        for o in out.iter_mut() {
            let t = and(*o, c);
            *o = xor(*o, c);
            c = t;
        }
    }
}

/// Bit `i` of `(x << shift)` (zero beyond the stored bits).
#[inline]
fn bit(x: &[Plane], shift: usize, i: usize) -> Plane {
    if i < shift {
        [0; 4]
    } else {
        x.get(i - shift).copied().unwrap_or([0; 4])
    }
}

/// Lanes where `(x << xs) + k < (y << ys)`, over `w` bits (enough for both sides plus `|k|`).
pub fn less(x: &[Plane], xs: usize, y: &[Plane], ys: usize, k: i64, w: usize) -> Plane {
    // move the constant to one side so that it is non-negative
    let (kx, ky) = if k >= 0 {
        (k as u64, 0)
    } else {
        (0, k.unsigned_abs())
    };
    let a = add_const(x, xs, kx, w);
    let b = add_const(y, ys, ky, w);
    // from the most significant bit: lt |= eq & !a & b; eq &= !(a ^ b)
    let mut lt = [0u64; 4];
    let mut eq = [u64::MAX; 4];
    for i in (0..w).rev() {
        lt = or(lt, and(eq, and(not(a[i]), b[i])));
        eq = and(eq, not(xor(a[i], b[i])));
    }
    lt
}

/// `(x << xs) + k` as `w` bit planes.
fn add_const(x: &[Plane], xs: usize, k: u64, w: usize) -> Vec<Plane> {
    let mut out = Vec::with_capacity(w);
    let mut c = [0u64; 4];
    for i in 0..w {
        let xi = bit(x, xs, i);
        if i < 64 && k >> i & 1 == 1 {
            out.push(not(xor(xi, c)));
            c = or(xi, c);
        } else {
            out.push(xor(xi, c));
            c = and(xi, c);
        }
    }
    out
}
