//! Numpy policy, Rust side. The Python layer (`quanta/_validation.py`) coerces user input
//! (float → C-contiguous float32, 1-D query → 2-D, torch → numpy); these checks are the second
//! line for callers that reach `_core` directly: wrong dtype → DTypeError, wrong rank or layout →
//! ShapeError, always naming the argument. Nothing is ever silently cast here.

use crate::errors::{new_err, Kind};
use numpy::{
    PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::prelude::*;

fn describe(obj: &Bound<'_, PyAny>) -> String {
    let ty = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    match (obj.getattr("dtype"), obj.getattr("ndim")) {
        (Ok(dt), Ok(nd)) => format!("{ty} of dtype {dt} with {nd} dimension(s)"),
        _ => ty,
    }
}

/// A C-contiguous float32 matrix (rows = vectors).
pub fn f32_matrix<'py>(obj: &Bound<'py, PyAny>, arg: &str) -> PyResult<PyReadonlyArray2<'py, f32>> {
    let arr = obj.downcast::<PyArray2<f32>>().map_err(|_| {
        new_err(
            Kind::DType,
            format!(
                "{arg} must be a 2-D float32 numpy array, got {}",
                describe(obj)
            ),
        )
    })?;
    let ro = arr.try_readonly()?;
    if !ro.is_c_contiguous() {
        return Err(new_err(Kind::Shape, format!("{arg} must be C-contiguous")));
    }
    Ok(ro)
}

/// A C-contiguous float32 vector.
pub fn f32_vector<'py>(obj: &Bound<'py, PyAny>, arg: &str) -> PyResult<PyReadonlyArray1<'py, f32>> {
    let arr = obj.downcast::<PyArray1<f32>>().map_err(|_| {
        new_err(
            Kind::DType,
            format!(
                "{arg} must be a 1-D float32 numpy array, got {}",
                describe(obj)
            ),
        )
    })?;
    let ro = arr.try_readonly()?;
    if !ro.is_c_contiguous() {
        return Err(new_err(Kind::Shape, format!("{arg} must be C-contiguous")));
    }
    Ok(ro)
}

/// Check the column count of a matrix against the object's `d`.
pub fn check_dim(arr: &PyReadonlyArray2<'_, f32>, d: usize, arg: &str) -> PyResult<()> {
    let got = arr.shape()[1];
    if got != d {
        return Err(new_err(
            Kind::Shape,
            format!("{arg} has {got} columns, expected d={d}"),
        ));
    }
    Ok(())
}

/// A (rows × cols) float32 array from a flat vector.
pub fn matrix_f32(
    py: Python<'_>,
    v: Vec<f32>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'_, PyArray2<f32>>> {
    PyArray1::from_vec(py, v).reshape([rows, cols])
}

/// A (rows × cols) int64 array from a flat vector.
pub fn matrix_i64(
    py: Python<'_>,
    v: Vec<i64>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'_, PyArray2<i64>>> {
    PyArray1::from_vec(py, v).reshape([rows, cols])
}

/// A C-contiguous 2-D array of exactly dtype `T` (codes: no silent cast), named `dtype` in errors.
pub fn exact_matrix<'py, T: numpy::Element>(
    obj: &Bound<'py, PyAny>,
    arg: &str,
    dtype: &str,
) -> PyResult<PyReadonlyArray2<'py, T>> {
    let arr = obj.downcast::<PyArray2<T>>().map_err(|_| {
        new_err(
            Kind::DType,
            format!(
                "{arg} must be a 2-D {dtype} numpy array, got {}",
                describe(obj)
            ),
        )
    })?;
    let ro = arr.try_readonly()?;
    if !ro.is_c_contiguous() {
        return Err(new_err(Kind::Shape, format!("{arg} must be C-contiguous")));
    }
    Ok(ro)
}

/// A (rows × cols) array of any numpy element type from a flat vector.
pub fn matrix_of<T: numpy::Element>(
    py: Python<'_>,
    v: Vec<T>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'_, PyArray2<T>>> {
    PyArray1::from_vec(py, v).reshape([rows, cols])
}
