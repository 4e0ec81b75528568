//! Small dense linear algebra in f64 for the binary encoders (PCA, QR, Procrustes SVD).
//!
//! Matrices are row-major `Vec<f64>`. Products go through the `gemm` crate (single-threaded
//! calls; parallelism, where wanted, is done by the caller on quanta's pool). Eigen- and singular
//! value decompositions use cyclic Jacobi rotations: slow for large matrices (`O(n^3)` per sweep)
//! but simple, robust and deterministic; they are only applied to `b × b` matrices here, with
//! `b` the number of bits (plus a small oversampling), while the `d × d` covariance is reduced
//! by subspace iteration.

use crate::rng::Rng;

/// `C = op(A) · op(B)`, `m × n`, with `op(A)` read through strides (row stride, column stride).
#[allow(clippy::too_many_arguments)]
fn gemm_strided(
    m: usize,
    n: usize,
    k: usize,
    a: &[f64],
    a_rs: isize,
    a_cs: isize,
    b: &[f64],
    b_rs: isize,
    b_cs: isize,
) -> Vec<f64> {
    let mut c = vec![0.0f64; m * n];
    if m == 0 || n == 0 || k == 0 {
        return c;
    }
    // SAFETY: the strides describe exactly the slices: every (i, l) with i < m, l < k gives an
    // index i·a_rs + l·a_cs inside `a` (checked by the callers' shapes), likewise for `b`; `c`
    // is m × n row-major; inputs and output do not alias.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    c
}

/// `A · B` for row-major `A` (m × k) and `B` (k × n).
pub fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    assert!(
        a.len() == m * k && b.len() == k * n,
        "matmul: shape mismatch"
    );
    gemm_strided(m, n, k, a, k as isize, 1, b, n as isize, 1)
}

/// `Aᵀ · B` for row-major `A` (k × m) and `B` (k × n).
pub fn matmul_tn(a: &[f64], b: &[f64], k: usize, m: usize, n: usize) -> Vec<f64> {
    assert!(
        a.len() == k * m && b.len() == k * n,
        "matmul_tn: shape mismatch"
    );
    gemm_strided(m, n, k, a, 1, m as isize, b, n as isize, 1)
}

/// Transpose of a row-major `rows × cols` matrix.
pub fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = a[i * cols + j];
        }
    }
    t
}

/// Orthonormalize the columns of a row-major `rows × cols` matrix in place (modified
/// Gram–Schmidt, applied twice for stability). A column that is (numerically) in the span of the
/// previous ones is replaced by the first standard basis vector that is not, so the result always
/// has orthonormal columns (`cols <= rows` required).
pub fn orthonormalize_columns(a: &mut [f64], rows: usize, cols: usize) {
    assert!(cols <= rows && a.len() == rows * cols);
    let mut col = vec![0.0f64; rows];
    let mut next_basis = 0usize;
    for j in 0..cols {
        for (i, c) in col.iter_mut().enumerate() {
            *c = a[i * cols + j];
        }
        let norm0 = col.iter().map(|v| v * v).sum::<f64>().sqrt();
        let mut ok = project_out(a, rows, cols, j, &mut col, norm0);
        while !ok {
            // degenerate column: complete the basis with a standard basis vector
            col.fill(0.0);
            col[next_basis % rows] = 1.0;
            next_basis += 1;
            ok = project_out(a, rows, cols, j, &mut col, 1.0);
            if next_basis > 2 * rows {
                break;
            }
        }
        for (i, c) in col.iter().enumerate() {
            a[i * cols + j] = *c;
        }
    }
}

/// Remove from `col` its components along columns `0..j` of `a` (twice), normalize; false when
/// what is left is negligible relative to `scale`.
fn project_out(a: &[f64], rows: usize, cols: usize, j: usize, col: &mut [f64], scale: f64) -> bool {
    for _ in 0..2 {
        for p in 0..j {
            let dot: f64 = (0..rows).map(|i| a[i * cols + p] * col[i]).sum();
            for (i, c) in col.iter_mut().enumerate() {
                *c -= dot * a[i * cols + p];
            }
        }
    }
    let norm = col.iter().map(|v| v * v).sum::<f64>().sqrt();
    // written so that a NaN norm also counts as degenerate
    if norm.is_nan() || norm <= 1e-10 * scale.max(f64::MIN_POSITIVE) {
        return false;
    }
    col.iter_mut().for_each(|c| *c /= norm);
    true
}

/// `rows × cols` matrix with orthonormal columns from a seeded Gaussian (QR with the sign
/// convention `diag(R) > 0`, which modified Gram–Schmidt gives by construction).
pub fn random_orthonormal(rows: usize, cols: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let mut a: Vec<f64> = (0..rows * cols).map(|_| rng.normal()).collect();
    orthonormalize_columns(&mut a, rows, cols);
    a
}

/// Eigen-decomposition of a symmetric `n × n` matrix by cyclic Jacobi rotations.
///
/// Returns (eigenvalues descending, eigenvectors as the columns of a row-major `n × n` matrix).
/// Ties keep the lower original index; every eigenvector is sign-normalized so that its
/// largest-magnitude component (the first one on ties) is positive.
pub fn sym_eig(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(a.len(), n * n);
    let mut m = a.to_vec();
    let mut v = vec![0.0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let fro: f64 = m.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j] * m[i * n + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * fro || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let (app, aqq) = (m[p * n + p], m[q * n + q]);
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A <- Jᵀ A J on rows/columns p, q
                for k in 0..n {
                    let (akp, akq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * akp - s * akq;
                    m[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * apk - s * aqk;
                    m[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    // stable sort: ties keep the lower index
    order.sort_by(|&i, &j| m[j * n + j].total_cmp(&m[i * n + i]));
    let vals: Vec<f64> = order.iter().map(|&i| m[i * n + i]).collect();
    let mut vecs = vec![0.0f64; n * n];
    for (c, &i) in order.iter().enumerate() {
        for r in 0..n {
            vecs[r * n + c] = v[r * n + i];
        }
    }
    sign_normalize_columns(&mut vecs, n, n);
    (vals, vecs)
}

/// Flip each column so that its largest-magnitude component (first on ties) is positive.
pub fn sign_normalize_columns(a: &mut [f64], rows: usize, cols: usize) {
    for j in 0..cols {
        let mut best = 0usize;
        for i in 1..rows {
            if a[i * cols + j].abs() > a[best * cols + j].abs() {
                best = i;
            }
        }
        if a[best * cols + j] < 0.0 {
            for i in 0..rows {
                a[i * cols + j] = -a[i * cols + j];
            }
        }
    }
}

/// Top-`b` eigenpairs of a symmetric positive semi-definite `d × d` matrix.
///
/// Small `d`: full Jacobi. Otherwise subspace iteration on `b + p` vectors (p = oversampling)
/// with a Rayleigh–Ritz step each round, until the top-`b` eigenvalues are stable to 1e-12
/// (relative) or 300 rounds. Returns (eigenvalues descending, `d × b` eigenvectors as columns),
/// sign-normalized as in [`sym_eig`]. Deterministic (fixed internal seed).
pub fn top_eig(c: &[f64], d: usize, b: usize) -> (Vec<f64>, Vec<f64>) {
    assert!(b <= d && c.len() == d * d);
    let s = (b + 16).max(2 * b).min(d);
    if s == d || d <= 64 {
        let (vals, vecs) = sym_eig(c, d);
        let mut out = vec![0.0; d * b];
        for r in 0..d {
            out[r * b..(r + 1) * b].copy_from_slice(&vecs[r * d..r * d + b]);
        }
        return (vals[..b].to_vec(), out);
    }
    let mut q = random_orthonormal(d, s, 0x5EED_1A6E);
    let mut prev: Vec<f64> = vec![f64::INFINITY; b];
    let mut vals = vec![0.0; s];
    for _round in 0..300 {
        let mut z = matmul(c, &q, d, d, s);
        orthonormalize_columns(&mut z, d, s);
        // Rayleigh–Ritz: H = Zᵀ C Z, rotate Z by H's eigenvectors
        let cz = matmul(c, &z, d, d, s);
        let h = matmul_tn(&z, &cz, d, s, s);
        let h = symmetrize(&h, s);
        let (hv, hw) = sym_eig(&h, s);
        q = matmul(&z, &hw, d, s, s);
        vals = hv;
        let scale = vals[0].abs().max(f64::MIN_POSITIVE);
        let done = (0..b).all(|i| (vals[i] - prev[i]).abs() <= 1e-12 * scale);
        prev.copy_from_slice(&vals[..b]);
        if done {
            break;
        }
    }
    let mut out = vec![0.0; d * b];
    for r in 0..d {
        out[r * b..(r + 1) * b].copy_from_slice(&q[r * s..r * s + b]);
    }
    sign_normalize_columns(&mut out, d, b);
    (vals[..b].to_vec(), out)
}

fn symmetrize(h: &[f64], n: usize) -> Vec<f64> {
    let mut o = h.to_vec();
    for i in 0..n {
        for j in 0..n {
            o[i * n + j] = 0.5 * (h[i * n + j] + h[j * n + i]);
        }
    }
    o
}

/// Orthogonal Procrustes: the orthogonal `R` (n × n) maximizing `tr(Rᵀ M)`, i.e. `R = U Vᵀ` for
/// the SVD `M = U Σ Vᵀ` (one-sided Jacobi). Null singular directions are completed to an
/// orthonormal basis, so `R` is orthogonal even for a rank-deficient `M`.
pub fn procrustes(m: &[f64], n: usize) -> Vec<f64> {
    assert_eq!(m.len(), n * n);
    // work on the columns of M as rows of `a` (= Mᵀ), accumulate V likewise (rows = columns)
    let mut a = transpose(m, n, n);
    let mut v = vec![0.0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let mut rotated = false;
        for i in 0..n {
            for j in i + 1..n {
                let (mut al, mut be, mut ga) = (0.0f64, 0.0f64, 0.0f64);
                for k in 0..n {
                    let (x, y) = (a[i * n + k], a[j * n + k]);
                    al += x * x;
                    be += y * y;
                    ga += x * y;
                }
                if ga.abs() <= 1e-15 * (al * be).sqrt() || ga == 0.0 {
                    continue;
                }
                rotated = true;
                let zeta = (be - al) / (2.0 * ga);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let t = if zeta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                for k in 0..n {
                    let (x, y) = (a[i * n + k], a[j * n + k]);
                    a[i * n + k] = c * x - s * y;
                    a[j * n + k] = s * x + c * y;
                    let (x, y) = (v[i * n + k], v[j * n + k]);
                    v[i * n + k] = c * x - s * y;
                    v[j * n + k] = s * x + c * y;
                }
            }
        }
        if !rotated {
            break;
        }
    }
    // U's columns: normalized rows of `a`; tiny ones are left zero and completed below
    let norms: Vec<f64> = (0..n)
        .map(|i| {
            (0..n)
                .map(|k| a[i * n + k] * a[i * n + k])
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    let smax = norms.iter().cloned().fold(0.0, f64::max);
    // order columns by singular value (descending) so completion touches only the null space
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&x, &y| norms[y].total_cmp(&norms[x]));
    let mut u = vec![0.0f64; n * n]; // row-major n × n, column c = u_c
    let mut vv = vec![0.0f64; n * n];
    for (c, &i) in order.iter().enumerate() {
        let keep = norms[i] > 1e-12 * smax && smax > 0.0;
        for k in 0..n {
            u[k * n + c] = if keep { a[i * n + k] / norms[i] } else { 0.0 };
            vv[k * n + c] = v[i * n + k];
        }
    }
    orthonormalize_columns(&mut u, n, n);
    // R = U Vᵀ
    let vt = transpose(&vv, n, n);
    matmul(&u, &vt, n, n, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand_mat(r: &mut Rng, rows: usize, cols: usize) -> Vec<f64> {
        (0..rows * cols).map(|_| r.normal()).collect()
    }

    fn is_orthogonal(q: &[f64], n: usize, tol: f64) -> bool {
        let qtq = matmul_tn(q, q, n, n, n);
        (0..n).all(|i| (0..n).all(|j| (qtq[i * n + j] - f64::from(i == j)).abs() < tol))
    }

    #[test]
    fn eig_reconstructs() {
        let mut r = Rng::new(1);
        for &n in &[1usize, 2, 5, 17] {
            let x = rand_mat(&mut r, n + 3, n);
            let c = matmul_tn(&x, &x, n + 3, n, n);
            let (vals, vecs) = sym_eig(&c, n);
            assert!(is_orthogonal(&vecs, n, 1e-10));
            for w in vals.windows(2) {
                assert!(w[0] >= w[1]);
            }
            // C v = λ v
            let cv = matmul(&c, &vecs, n, n, n);
            for i in 0..n {
                for j in 0..n {
                    assert!(
                        (cv[i * n + j] - vals[j] * vecs[i * n + j]).abs() < 1e-8 * (1.0 + vals[0])
                    );
                }
            }
        }
    }

    #[test]
    fn top_eig_matches_full() {
        let mut r = Rng::new(2);
        let (d, b) = (120usize, 6usize);
        // spread spectrum so the top-b space is well separated
        let mut x = rand_mat(&mut r, 400, d);
        for row in x.chunks_exact_mut(d) {
            for (j, v) in row.iter_mut().enumerate() {
                *v *= 1.0 + 10.0 / (1.0 + j as f64);
            }
        }
        let c = matmul_tn(&x, &x, 400, d, d);
        let (v1, e1) = top_eig(&c, d, b);
        let (v2, e2) = sym_eig(&c, d);
        for i in 0..b {
            assert!((v1[i] - v2[i]).abs() < 1e-8 * v2[0]);
            for k in 0..d {
                assert!((e1[k * b + i] - e2[k * d + i]).abs() < 1e-5, "vec {i}");
            }
        }
    }

    #[test]
    fn procrustes_is_optimal_rotation() {
        let mut r = Rng::new(3);
        for &n in &[1usize, 3, 8, 20] {
            let rot = random_orthonormal(n, n, 9);
            assert!(is_orthogonal(&rot, n, 1e-12));
            // M = rot · S with S symmetric positive definite: the polar factor is rot
            let g = rand_mat(&mut r, n, n);
            let mut s = matmul_tn(&g, &g, n, n, n);
            for i in 0..n {
                s[i * n + i] += 0.5;
            }
            let m = matmul(&rot, &s, n, n, n);
            let got = procrustes(&m, n);
            for (a, b) in got.iter().zip(&rot) {
                assert!((a - b).abs() < 1e-8, "n={n}");
            }
            // rank-deficient input still gives an orthogonal matrix
            let zero = vec![0.0; n * n];
            assert!(is_orthogonal(&procrustes(&zero, n), n, 1e-10));
        }
    }
}
