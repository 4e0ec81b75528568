//! Indexes: store vectors or codes + ids and search them. Codecs live elsewhere.

pub mod binary;
pub mod flat;
pub mod pq;
pub mod pq_fastscan;
pub mod rabitq;
pub mod sq;

pub use binary::IndexBinaryFlat;
pub use flat::{IndexFlat, SearchResult};
pub use pq::IndexPQ;
pub use pq_fastscan::IndexPQFastScan;
pub use rabitq::IndexRaBitQ;
pub use sq::IndexScalarQuantizer;

mod any;
mod binary_any;
mod idmap;
mod params;
mod pretransform;
mod refine;
mod selector;

pub use any::{
    check_same_training, merge_peer, range_by_knn, read_any, read_any_bytes, read_any_path,
    unsupported, within_fn, AnyIndex, Index, RangeResult,
};
pub use binary_any::{
    is_binary_kind, read_any_binary, read_index_file, AnyBinaryIndex, BinaryIndex, LoadedIndex,
};
pub use idmap::IndexIDMap;
pub use params::SearchParams;
pub use pretransform::IndexPreTransform;
pub use refine::IndexRefineFlat;
pub use selector::{gather_rows, IdSelector, IdSet};
