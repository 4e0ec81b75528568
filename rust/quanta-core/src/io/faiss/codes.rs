//! Code layouts that differ between faiss and quanta.
//!
//! * **PQ codes.** faiss packs the `M` sub-codes of `nbits` bits of a vector into
//!   `ceil(M·nbits / 8)` bytes, least significant bit first (`PQEncoderGeneric`); quanta keeps
//!   one byte per sub-code. For `nbits = 8` both are the same bytes.
//! * **4-bit fast-scan blocks.** faiss (`pq4_pack_codes`) stores blocks of `bbs` vectors;
//!   inside a block, for each pair of sub-quantizers `(2p, 2p+1)` and each run of 32 vectors,
//!   32 bytes: byte `j < 16` holds sub-quantizer `2p` of vectors `perm(j)` (low nibble) and
//!   `perm(j) + 16` (high nibble), byte `16 + j` the same for `2p + 1`, with
//!   `perm = [0, 8, 1, 9, ..., 7, 15]`. quanta's layout (`crate::fastscan`) has no
//!   permutation, so codes go through the one-byte-per-sub-code form in both directions.

/// faiss's in-register permutation of 16 vectors (`perm0` of `pq4_pack_codes`).
const PERM0: [usize; 16] = [0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15];

/// Bytes of one faiss PQ code.
pub(super) fn pq_code_size(m: usize, nbits: usize) -> usize {
    (m * nbits).div_ceil(8)
}

/// faiss PQ codes (`n` × `pq_code_size`) to one byte per sub-code (`n` × `m`).
pub(super) fn unpack_pq(packed: &[u8], n: usize, m: usize, nbits: usize) -> Vec<u8> {
    if nbits == 8 {
        return packed[..n * m].to_vec();
    }
    let cs = pq_code_size(m, nbits);
    let mut out = vec![0u8; n * m];
    for (code, row) in packed.chunks_exact(cs).take(n).zip(out.chunks_exact_mut(m)) {
        for (j, o) in row.iter_mut().enumerate() {
            let mut v = 0u32;
            for b in 0..nbits {
                let bit = j * nbits + b;
                v |= u32::from((code[bit / 8] >> (bit % 8)) & 1) << b;
            }
            *o = v as u8;
        }
    }
    out
}

/// One byte per sub-code (each `< 2^nbits`) to faiss PQ codes.
pub(super) fn pack_pq(codes: &[u8], m: usize, nbits: usize) -> Vec<u8> {
    if nbits == 8 {
        return codes.to_vec();
    }
    let cs = pq_code_size(m, nbits);
    let n = codes.len() / m;
    let mut out = vec![0u8; n * cs];
    for (row, code) in codes.chunks_exact(m).zip(out.chunks_exact_mut(cs)) {
        for (j, &c) in row.iter().enumerate() {
            for b in 0..nbits {
                let bit = j * nbits + b;
                code[bit / 8] |= ((c >> b) & 1) << (bit % 8);
            }
        }
    }
    out
}

/// Byte offset in a faiss block list and nibble shift of sub-quantizer `sq` of vector `i`.
fn pq4_place(i: usize, sq: usize, bbs: usize, m2: usize) -> (usize, u32) {
    let (block, r) = (i / bbs, i % bbs);
    let (run, v) = (r / 32, r % 32);
    let (pair, odd) = (sq / 2, sq % 2);
    // position j of vector v within its 16-byte half: PERM0[j] == v % 16
    let j = 2 * (v % 16 % 8) + (v % 16) / 8;
    debug_assert_eq!(PERM0[j], v % 16);
    let off = block * bbs * m2 / 2 + pair * bbs + run * 32 + 16 * odd + j;
    (off, if v >= 16 { 4 } else { 0 })
}

/// Bytes of `n` vectors in faiss blocks of `bbs` with `m2` (even) sub-quantizers.
pub(super) fn pq4_blocks_len(n: usize, bbs: usize, m2: usize) -> usize {
    n.div_ceil(bbs) * bbs * m2 / 2
}

/// Read `n` codes (`m` sub-codes each, one per byte) out of faiss blocks.
pub(super) fn unpack_pq4(blocks: &[u8], n: usize, m: usize, bbs: usize) -> Vec<u8> {
    let m2 = m + (m & 1);
    let mut out = vec![0u8; n * m];
    for i in 0..n {
        for sq in 0..m {
            let (off, shift) = pq4_place(i, sq, bbs, m2);
            out[i * m + sq] = (blocks[off] >> shift) & 15;
        }
    }
    out
}

/// Write codes (`m` sub-codes `< 16` each, one per byte) into faiss blocks of `bbs`.
pub(super) fn pack_pq4(codes: &[u8], m: usize, bbs: usize) -> Vec<u8> {
    let m2 = m + (m & 1);
    let n = codes.len() / m;
    let mut out = vec![0u8; pq4_blocks_len(n, bbs, m2)];
    for (i, row) in codes.chunks_exact(m).enumerate() {
        for (sq, &c) in row.iter().enumerate() {
            let (off, shift) = pq4_place(i, sq, bbs, m2);
            out[off] |= (c & 15) << shift;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pq_bit_packing_round_trips_and_is_lsb_first() {
        for nbits in 1..=8 {
            for m in [1, 3, 8, 13] {
                let codes: Vec<u8> = (0..5 * m)
                    .map(|i| ((i * 37 + 11) % (1 << nbits)) as u8)
                    .collect();
                let p = pack_pq(&codes, m, nbits);
                assert_eq!(p.len(), 5 * pq_code_size(m, nbits));
                assert_eq!(unpack_pq(&p, 5, m, nbits), codes);
            }
        }
        // two 4-bit codes: the first is the low nibble (faiss PQEncoderGeneric)
        assert_eq!(pack_pq(&[0x3, 0xA], 2, 4), vec![0xA3]);
    }

    #[test]
    fn pq4_blocks_match_faiss_layout() {
        // pq4_pack_codes for one block of 32 vectors and M=2: byte j holds vector PERM0[j]
        // (low nibble) and PERM0[j] + 16 (high nibble) of sub-quantizer 0
        let m = 2;
        let codes: Vec<u8> = (0..32)
            .flat_map(|v| [v as u8 % 16, 15 - v as u8 % 16])
            .collect();
        let b = pack_pq4(&codes, m, 32);
        assert_eq!(b.len(), 32);
        for j in 0..16 {
            let (lo, hi) = (PERM0[j], PERM0[j] + 16);
            assert_eq!(b[j], codes[lo * m] | codes[hi * m] << 4);
            assert_eq!(b[16 + j], codes[lo * m + 1] | codes[hi * m + 1] << 4);
        }
        for (n, m, bbs) in [(1, 1, 32), (45, 5, 32), (100, 8, 64), (64, 3, 96)] {
            let codes: Vec<u8> = (0..n * m).map(|i| (i * 7 % 16) as u8).collect();
            let b = pack_pq4(&codes, m, bbs);
            assert_eq!(b.len(), pq4_blocks_len(n, bbs, m + (m & 1)));
            assert_eq!(unpack_pq4(&b, n, m, bbs), codes);
        }
    }
}
