//! Hardware `popcnt` variants: the scalar twins' u64 loops compiled with the `popcnt` feature
//! (without it `count_ones` is a multi-instruction bit trick on a baseline x86-64 build). On
//! CPUs with four scalar ALUs that all run `popcnt` (AMD Zen) this can rival the vector
//! variants; `select.rs` measures which one wins.

/// # Safety
/// The CPU must support POPCNT; `a.len() == b.len()`.
#[target_feature(enable = "popcnt")]
pub unsafe fn hamming(a: &[u8], b: &[u8]) -> u32 {
    super::scalar::hamming_inline(a, b)
}

/// # Safety
/// The CPU must support POPCNT; `codes.len() == out.len() * q.len()`.
#[target_feature(enable = "popcnt")]
pub unsafe fn hamming_many(q: &[u8], codes: &[u8], out: &mut [u32]) {
    super::scalar::hamming_many_inline(q, codes, out)
}
