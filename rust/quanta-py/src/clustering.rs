//! k-means bindings: argument conversion only.

use crate::arrays::{check_dim, f32_matrix, f32_vector, matrix_f32};
use crate::errors::{new_err, CoreResultExt, Kind};
use crate::gil::run_released;
use crate::indexes::positive;
use numpy::{PyArray1, PyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use quanta_core::kmeans::{self, Init, KMeansParams};

type KMeansOut<'py> = (
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray1<f64>>,
    usize,
    Vec<String>,
);

/// Train k-means. Returns (centroids (k, d), objective per iteration, number of splits, warnings).
#[pyfunction]
#[pyo3(signature = (x, k, *, niter=25, nredo=1, seed=1234, init="random", max_points_per_centroid=256,
                    min_points_per_centroid=39, spherical=false, int_centroids=false, use_bounds=true, candidates=None, weights=None, progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn kmeans_train<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    k: i64,
    niter: i64,
    nredo: i64,
    seed: u64,
    init: &str,
    max_points_per_centroid: i64,
    min_points_per_centroid: i64,
    spherical: bool,
    int_centroids: bool,
    use_bounds: bool,
    candidates: Option<i64>,
    weights: Option<&Bound<'py, PyAny>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<KMeansOut<'py>> {
    let x = f32_matrix(x, "x")?;
    let d = x.shape()[1];
    let params = KMeansParams {
        k: positive(k, "k")?,
        niter: positive(niter, "niter")?,
        nredo: positive(nredo, "nredo")?,
        seed,
        init: Init::parse(init).py()?,
        max_points_per_centroid: positive(max_points_per_centroid, "max_points_per_centroid")?,
        min_points_per_centroid: usize::try_from(min_points_per_centroid).unwrap_or(0),
        spherical,
        inner_product: false,
        int_centroids,
        use_bounds,
        candidates: candidates
            .map(|c| {
                usize::try_from(c)
                    .map_err(|_| new_err(Kind::Value, format!("candidates must be >= 0, got {c}")))
            })
            .transpose()?,
    };
    let w = weights.map(|w| f32_vector(w, "weights")).transpose()?;
    let xs = x.as_slice()?;
    let ws = match &w {
        Some(w) => Some(w.as_slice()?),
        None => None,
    };
    let r = run_released(py, progress, |ctl| kmeans::train(xs, d, &params, ws, ctl))?;
    let kk = r.centroids.len() / d.max(1);
    Ok((
        matrix_f32(py, r.centroids, kk, d)?,
        PyArray1::from_vec(py, r.obj),
        r.nsplit,
        r.warnings,
    ))
}

/// (squared distances (n,), labels (n,)).
type AssignOut<'py> = (Bound<'py, PyArray1<f32>>, Bound<'py, PyArray1<i64>>);

/// Nearest centroid of each row: (squared distances (n,), labels (n,) int64).
#[pyfunction]
pub fn assign_nearest<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    centroids: &Bound<'py, PyAny>,
) -> PyResult<AssignOut<'py>> {
    let c = f32_matrix(centroids, "centroids")?;
    let x = f32_matrix(x, "x")?;
    let d = c.shape()[1];
    check_dim(&x, d, "x")?;
    if c.shape()[0] == 0 {
        return Err(new_err(Kind::Shape, "centroids is empty"));
    }
    let (xs, cs) = (x.as_slice()?, c.as_slice()?);
    let (lab, dis) = run_released(py, None, |ctl| {
        quanta_core::validate::check_batch(xs, d, "x")?;
        let xn = quanta_core::distance::row_norms(xs, d);
        let cn = quanta_core::distance::row_norms(cs, d);
        quanta_core::distance::assign_nearest(xs, &xn, cs, &cn, d, ctl)
    })?;
    let lab: Vec<i64> = lab.into_iter().map(i64::from).collect();
    Ok((PyArray1::from_vec(py, dis), PyArray1::from_vec(py, lab)))
}
