//! Scalar twins: the reference semantics of the Hamming kernels.
//!
//! `H(a, b) = Σ popcount(a_w XOR b_w)` over little-endian u64 words, then the tail bytes. Integer
//! arithmetic: every SIMD variant must agree bit-exactly.

#[inline]
fn word(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"))
}

/// Hamming distance of two equally long byte strings.
pub fn hamming(a: &[u8], b: &[u8]) -> u32 {
    hamming_inline(a, b)
}

/// Body of [`hamming`], inlined into the `popcnt` variant so `count_ones` compiles to `popcnt`.
#[inline(always)]
pub(super) fn hamming_inline(a: &[u8], b: &[u8]) -> u32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let mut s = 0u32;
    let mut i = 0;
    while i + 8 <= n {
        s += (word(a, i) ^ word(b, i)).count_ones();
        i += 8;
    }
    while i < n {
        s += (a[i] ^ b[i]).count_ones();
        i += 1;
    }
    s
}

/// `out[j] = H(q, codes[j])` for row-major `codes` of `q.len()` bytes per row.
///
/// Specialised loops for 8/16/32/64-byte codes (64/128/256/512 bits), a generic one otherwise.
pub fn hamming_many(q: &[u8], codes: &[u8], out: &mut [u32]) {
    hamming_many_inline(q, codes, out)
}

/// Body of [`hamming_many`] (see [`hamming_inline`]).
#[inline(always)]
pub(super) fn hamming_many_inline(q: &[u8], codes: &[u8], out: &mut [u32]) {
    let cs = q.len();
    debug_assert_eq!(codes.len(), out.len() * cs);
    match cs {
        0 => out.fill(0),
        8 => fixed::<1>(q, codes, out),
        16 => fixed::<2>(q, codes, out),
        32 => fixed::<4>(q, codes, out),
        64 => fixed::<8>(q, codes, out),
        _ => {
            for (o, c) in out.iter_mut().zip(codes.chunks_exact(cs)) {
                *o = hamming_inline(q, c);
            }
        }
    }
}

/// `W` query words stay in registers; the sum over a code's words is a tree, so the popcounts
/// of one code are independent.
#[inline(always)]
fn fixed<const W: usize>(q: &[u8], codes: &[u8], out: &mut [u32]) {
    let mut qw = [0u64; W];
    for (w, x) in qw.iter_mut().enumerate() {
        *x = word(q, 8 * w);
    }
    for (o, c) in out.iter_mut().zip(codes.chunks_exact(8 * W)) {
        let mut s = 0u32;
        for (w, x) in qw.iter().enumerate() {
            s += (x ^ word(c, 8 * w)).count_ones();
        }
        *o = s;
    }
}

/// First `j >= start` with `v[j] < thr`, or `v.len()`.
pub fn find_below_u32(v: &[u32], start: usize, thr: u32) -> usize {
    let mut j = start;
    while j < v.len() {
        if v[j] < thr {
            return j;
        }
        j += 1;
    }
    v.len()
}
