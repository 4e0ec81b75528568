//! Scalar twins: the reference semantics of the lattice kernels.

/// See [`super::score_argmax_with`]. Codewords are scored in blocks of 8 with the
/// accumulators in registers; every score is `((0 + x0·t0) + x1·t1) + …`, as in the SIMD twin.
pub fn score_argmax(t: &[f32], x: &[f32], scores: &mut [f32]) -> usize {
    let n = scores.len();
    let full = n / 8 * 8;
    for j0 in (0..full).step_by(8) {
        let mut acc = [0.0f32; 8];
        for (i, &xi) in x.iter().enumerate() {
            let row = &t[i * n + j0..i * n + j0 + 8];
            for l in 0..8 {
                acc[l] += xi * row[l];
            }
        }
        scores[j0..j0 + 8].copy_from_slice(&acc);
    }
    for j in full..n {
        let mut acc = 0.0f32;
        for (i, &xi) in x.iter().enumerate() {
            acc += xi * t[i * n + j];
        }
        scores[j] = acc;
    }
    argmax(scores)
}

/// Index of the largest value, lowest index on ties (values are never NaN).
#[inline]
pub fn argmax(v: &[f32]) -> usize {
    let mut best = f32::NEG_INFINITY;
    let mut arg = 0;
    for (j, &s) in v.iter().enumerate() {
        if s > best {
            best = s;
            arg = j;
        }
    }
    arg
}

/// Nearest integer, halves rounded towards zero (the E8 decoder's fixed tie rule).
#[inline]
pub fn round_half_to_zero(v: f32) -> f32 {
    let t = v.trunc();
    let f = v - t;
    if f > 0.5 {
        t + 1.0
    } else if f < -0.5 {
        t - 1.0
    } else {
        t
    }
}

/// Sum of 8 values in the association the AVX2 horizontal sum uses.
#[inline]
pub fn reduce8(a: &[f32; 8]) -> f32 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

/// Nearest point of D8 (integer vectors with an even sum) to `x`.
#[inline]
pub fn d8_nearest(x: &[f32; 8]) -> [f32; 8] {
    let mut f = [0.0f32; 8];
    let mut e = [0.0f32; 8];
    for i in 0..8 {
        f[i] = round_half_to_zero(x[i]);
        e[i] = x[i] - f[i];
    }
    let sum = reduce8(&f);
    if (sum as i64) & 1 != 0 {
        // move the coordinate with the largest rounding error one step towards x
        let mut k = 0;
        let mut m = e[0].abs();
        for (i, ei) in e.iter().enumerate().skip(1) {
            if ei.abs() > m {
                m = ei.abs();
                k = i;
            }
        }
        f[k] += if e[k] >= 0.0 { 1.0 } else { -1.0 };
    }
    f
}

/// Nearest point of E8 = D8 ∪ (D8 + ½) to one block (Conway & Sloane); D8 wins ties.
#[inline]
pub fn e8_block(x: &[f32; 8]) -> [f32; 8] {
    let y0 = d8_nearest(x);
    let mut xm = [0.0f32; 8];
    for i in 0..8 {
        xm[i] = x[i] - 0.5;
    }
    let mut y1 = d8_nearest(&xm);
    for v in y1.iter_mut() {
        *v += 0.5;
    }
    let mut s0 = [0.0f32; 8];
    let mut s1 = [0.0f32; 8];
    for i in 0..8 {
        let a = x[i] - y0[i];
        let b = x[i] - y1[i];
        s0[i] = a * a;
        s1[i] = b * b;
    }
    if reduce8(&s1) < reduce8(&s0) {
        y1
    } else {
        y0
    }
}

/// See [`super::e8_nearest_with`].
pub fn e8_nearest(x: &[f32], out: &mut [f32]) {
    for (xb, ob) in x.chunks_exact(8).zip(out.chunks_exact_mut(8)) {
        let xb: &[f32; 8] = xb.try_into().expect("chunk of 8");
        ob.copy_from_slice(&e8_block(xb));
    }
}

/// See [`super::zn_unrank_with`]: portable bit deposit and counting.
pub fn zn_unrank(plan: &super::zn::ZnPlan, codes: &[u64], out: &mut [f32]) {
    super::zn::unrank_rows::<super::zn::PortableOps>(plan, codes, out)
}
