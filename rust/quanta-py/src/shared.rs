//! The methods both index base classes (`Index`, `IndexBinary`) share word for word — kind,
//! size, remove_ids, reset, files, bytes, copies, pickling — generated once for each by
//! [`shared_index_methods!`] as a second `#[pymethods]` block (pyo3 `multiple-pymethods`).

/// `#[pymethods]` of a base class whose `inner` is a boxed core index with `kind`, `ntotal`,
/// `is_trained`, `reset`, `write`, `to_bytes` and `clone_box`; `$wrap` turns a core index back
/// into its Python subclass.
macro_rules! shared_index_methods {
    ($py_ty:ty, $wrap:path) => {
        #[pyo3::pymethods]
        impl $py_ty {
            /// Kind tag of the index's files (its type name).
            #[getter]
            fn kind(&self) -> &'static str {
                self.inner.kind()
            }

            #[getter]
            fn ntotal(&self) -> usize {
                self.inner.ntotal()
            }

            #[getter]
            fn is_trained(&self) -> bool {
                self.inner.is_trained()
            }

            fn __len__(&self) -> usize {
                self.inner.ntotal()
            }

            /// Remove the entries whose id is in `ids` (int64) or set in `mask`; returns how
            /// many.
            #[pyo3(signature = (ids=None, mask=None))]
            fn remove_ids(
                &mut self,
                py: pyo3::Python<'_>,
                ids: Option<&pyo3::Bound<'_, pyo3::PyAny>>,
                mask: Option<&pyo3::Bound<'_, pyo3::PyAny>>,
            ) -> pyo3::PyResult<usize> {
                let sel = crate::base::selector(ids, mask, false)?.ok_or_else(|| {
                    crate::errors::new_err(
                        crate::errors::Kind::Value,
                        "remove_ids needs ids or a mask",
                    )
                })?;
                let inner = &mut self.inner;
                crate::gil::run_released(py, None, |_| inner.remove_ids(&sel))
            }

            /// Remove every entry (training is kept).
            fn reset(&mut self) {
                self.inner.reset()
            }

            /// Save to `path` (atomic: temporary file, fsync, rename).
            fn write(&self, py: pyo3::Python<'_>, path: std::path::PathBuf) -> pyo3::PyResult<()> {
                let inner = &self.inner;
                crate::gil::run_released(py, None, |_| inner.write(&path))
            }

            /// The index file, in memory.
            fn serialize<'py>(
                &self,
                py: pyo3::Python<'py>,
            ) -> pyo3::PyResult<pyo3::Bound<'py, pyo3::types::PyBytes>> {
                let inner = &self.inner;
                let bytes = crate::gil::run_released(py, None, |_| inner.to_bytes())?;
                Ok(pyo3::types::PyBytes::new(py, &bytes))
            }

            /// The index as a faiss index file (what faiss's `write_index` writes), in memory.
            fn serialize_faiss<'py>(
                &self,
                py: pyo3::Python<'py>,
            ) -> pyo3::PyResult<pyo3::Bound<'py, pyo3::types::PyBytes>> {
                let inner = &self.inner;
                let bytes = crate::gil::run_released(py, None, |_| {
                    let native = quanta_core::io::FileReader::from_bytes(inner.to_bytes()?)?;
                    quanta_core::io::faiss::to_faiss_bytes(&native)
                })?;
                Ok(pyo3::types::PyBytes::new(py, &bytes))
            }

            /// Save as a faiss index file at `path` (atomic: temporary file, fsync, rename).
            fn write_faiss(
                &self,
                py: pyo3::Python<'_>,
                path: std::path::PathBuf,
            ) -> pyo3::PyResult<()> {
                let inner = &self.inner;
                crate::gil::run_released(py, None, |_| {
                    let native = quanta_core::io::FileReader::from_bytes(inner.to_bytes()?)?;
                    quanta_core::io::faiss::write_faiss_file(&native, &path)
                })
            }

            /// A deep copy (`copy.copy` / `copy.deepcopy`).
            fn __copy__(&self, py: pyo3::Python<'_>) -> pyo3::PyResult<pyo3::Py<pyo3::PyAny>> {
                $wrap(py, self.inner.clone_box())
            }

            fn __deepcopy__(
                &self,
                py: pyo3::Python<'_>,
                _memo: &pyo3::Bound<'_, pyo3::PyAny>,
            ) -> pyo3::PyResult<pyo3::Py<pyo3::PyAny>> {
                $wrap(py, self.inner.clone_box())
            }

            /// Pickling goes through the checksummed file format.
            #[allow(clippy::type_complexity)]
            fn __reduce__<'py>(
                slf: &pyo3::Bound<'py, Self>,
                py: pyo3::Python<'py>,
            ) -> pyo3::PyResult<(
                pyo3::Bound<'py, pyo3::PyAny>,
                (pyo3::Bound<'py, pyo3::types::PyBytes>,),
            )> {
                use pyo3::types::PyAnyMethods;
                let f = py.import("quanta._core")?.getattr("deserialize_index")?;
                Ok((f, (slf.borrow().serialize(py)?,)))
            }
        }
    };
}

pub(crate) use shared_index_methods;
