//! Numpy policy, Rust side. The Python layer (`quanta/_validation.py`) coerces user input
//! (float → C-contiguous float32, 1-D query → 2-D, torch → numpy); these checks are the second
//! line for callers that reach `_core` directly: wrong dtype → DTypeError, wrong rank or layout →
//! ShapeError, always naming the argument. Nothing is ever silently cast here.

use crate::errors::{new_err, Kind};
use numpy::{
    PyArray1, PyArray2, PyArray3, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyReadonlyArray3, PyUntypedArrayMethods,
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
    exact_matrix(obj, arg, "float32")
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
    matrix_of(py, v, rows, cols)
}

/// A (rows × cols) int64 array from a flat vector.
pub fn matrix_i64(
    py: Python<'_>,
    v: Vec<i64>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'_, PyArray2<i64>>> {
    matrix_of(py, v, rows, cols)
}

/// A C-contiguous uint8 matrix (rows = codes). Codes are never cast from another dtype.
pub fn u8_matrix<'py>(obj: &Bound<'py, PyAny>, arg: &str) -> PyResult<PyReadonlyArray2<'py, u8>> {
    exact_matrix(obj, arg, "uint8")
}

/// A C-contiguous float32 3-D array (e.g. PQ codebooks M × ksub × dsub).
pub fn f32_tensor3<'py>(
    obj: &Bound<'py, PyAny>,
    arg: &str,
) -> PyResult<PyReadonlyArray3<'py, f32>> {
    let arr = obj.downcast::<PyArray3<f32>>().map_err(|_| {
        new_err(
            Kind::DType,
            format!(
                "{arg} must be a 3-D float32 numpy array, got {}",
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

/// A (rows × cols) uint8 array from a flat vector.
pub fn matrix_u8(
    py: Python<'_>,
    v: Vec<u8>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'_, PyArray2<u8>>> {
    matrix_of(py, v, rows, cols)
}

/// A (a × b × c) float32 array from a flat vector.
pub fn tensor3_f32(
    py: Python<'_>,
    v: Vec<f32>,
    a: usize,
    b: usize,
    c: usize,
) -> PyResult<Bound<'_, PyArray3<f32>>> {
    PyArray1::from_vec(py, v).reshape([a, b, c])
}

/// A C-contiguous int64 vector (ids; exact dtype).
pub fn i64_vector<'py>(obj: &Bound<'py, PyAny>, arg: &str) -> PyResult<PyReadonlyArray1<'py, i64>> {
    let arr = obj.downcast::<PyArray1<i64>>().map_err(|_| {
        new_err(
            Kind::DType,
            format!(
                "{arg} must be a 1-D int64 numpy array, got {}",
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

/// Check the byte width of a code matrix.
pub fn check_code_size(
    arr: &PyReadonlyArray2<'_, u8>,
    code_size: usize,
    arg: &str,
) -> PyResult<()> {
    let got = arr.shape()[1];
    if got != code_size {
        return Err(new_err(
            Kind::Shape,
            format!(
                "{arg} has {got} bytes per code, expected {code_size} (nbits={})",
                code_size * 8
            ),
        ));
    }
    Ok(())
}

/// A (rows × cols) int32 array from a flat vector.
pub fn matrix_i32(
    py: Python<'_>,
    v: Vec<i32>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'_, PyArray2<i32>>> {
    matrix_of(py, v, rows, cols)
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
