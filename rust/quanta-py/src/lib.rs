//! `quanta._core`: PyO3 bindings. Conversion, errors and GIL release only — algorithms live in
//! `quanta-core`.

mod arrays;
mod base;
mod binary;
mod binary_base;
mod clustering;
mod composite;
mod errors;
mod fastscan;
mod gil;
mod indexes;
mod io;
mod ivf;
mod lattice;
mod pq;
mod rabitq;
mod runtime;
mod shared;
mod sq;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(runtime::simd_level, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::detected_simd_level, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::available_simd_levels, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::set_simd_level, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::_reset_after_fork, m)?)?;
    m.add_function(wrap_pyfunction!(clustering::kmeans_train, m)?)?;
    m.add_function(wrap_pyfunction!(clustering::assign_nearest, m)?)?;
    m.add_class::<base::PyIndex>()?;
    m.add_function(wrap_pyfunction!(base::read_index, m)?)?;
    m.add_function(wrap_pyfunction!(base::deserialize_index, m)?)?;
    m.add_class::<indexes::PyIndexFlat>()?;
    m.add_class::<indexes::PyIndexIDMap>()?;
    m.add_class::<composite::PyIndexPreTransform>()?;
    m.add_class::<composite::PyIndexRefineFlat>()?;
    m.add_class::<pq::PyProductQuantizer>()?;
    m.add_class::<pq::PyIndexPQ>()?;
    m.add_class::<sq::PyIndexScalarQuantizer>()?;
    m.add_class::<pq::PyOpqMatrix>()?;
    m.add_class::<ivf::PyIndexIVFFlat>()?;
    m.add_class::<ivf::PyIndexIVFPQ>()?;
    m.add_class::<ivf::PyIndexIVFPQFastScan>()?;
    m.add_class::<ivf::PyIndexIVFRaBitQ>()?;
    m.add_class::<ivf::PyIndexIVFScalarQuantizer>()?;
    m.add_class::<fastscan::PyIndexPQFastScan>()?;
    m.add_class::<rabitq::PyRaBitQ>()?;
    m.add_class::<rabitq::PyIndexRaBitQ>()?;
    m.add_function(wrap_pyfunction!(io::read_index_kind, m)?)?;
    m.add_function(wrap_pyfunction!(io::is_faiss_file, m)?)?;
    m.add("FAISS_KINDS", quanta_core::io::faiss::FAISS_KINDS.to_vec())?;
    m.add_class::<binary_base::PyIndexBinary>()?;
    m.add_class::<binary::PyIndexBinaryFlat>()?;
    m.add_class::<binary::PyLsh>()?;
    m.add_class::<binary::PyItq>()?;
    m.add_function(wrap_pyfunction!(binary::sign_encode, m)?)?;
    m.add_function(wrap_pyfunction!(binary::unpack_pm1, m)?)?;
    m.add_class::<lattice::PyZnSphereCodec>()?;
    m.add_class::<lattice::PyE8Lattice>()?;
    m.add_class::<lattice::PyE8ShellCodec>()?;
    m.add_class::<lattice::PyIndexLattice>()?;
    Ok(())
}
