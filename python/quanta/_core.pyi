# Stubs of the Rust extension `quanta._core` (checked against the module by mypy.stubtest).
import os
from collections.abc import Callable
from typing import final

import numpy as np
import numpy.typing as npt

__version__: str
__all__ = [
    "IndexFlat",
    "__version__",
    "_reset_after_fork",
    "assign_nearest",
    "available_simd_levels",
    "detected_simd_level",
    "get_num_threads",
    "kmeans_train",
    "read_index_kind",
    "set_num_threads",
    "set_simd_level",
    "simd_level",
]

_Progress = Callable[[int, int], object]

def simd_level() -> str: ...
def detected_simd_level() -> str: ...
def available_simd_levels() -> list[str]: ...
def set_simd_level(name: str) -> None: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def _reset_after_fork() -> None: ...
def kmeans_train(
    x: npt.NDArray[np.float32],
    k: int,
    *,
    niter: int = 25,
    nredo: int = 1,
    seed: int = 1234,
    init: str = "random",
    max_points_per_centroid: int = 256,
    min_points_per_centroid: int = 39,
    spherical: bool = False,
    int_centroids: bool = False,
    use_bounds: bool = True,
    weights: npt.NDArray[np.float32] | None = None,
    progress: _Progress | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64], int, list[str]]: ...
def assign_nearest(
    x: npt.NDArray[np.float32], centroids: npt.NDArray[np.float32]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...

@final
class IndexFlat:
    def __new__(cls, d: int, metric: str = "l2") -> IndexFlat: ...
    @property
    def d(self) -> int: ...
    @property
    def metric(self) -> str: ...
    @property
    def ntotal(self) -> int: ...
    def add(self, x: npt.NDArray[np.float32]) -> None: ...
    def search(
        self, queries: npt.NDArray[np.float32], k: int, progress: _Progress | None = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
    def reconstruct(self, id: int) -> npt.NDArray[np.float32]: ...
    def reconstruct_n(self, i0: int, n: int) -> npt.NDArray[np.float32]: ...
    def reset(self) -> None: ...
    def __len__(self) -> int: ...
    @property
    def is_mapped(self) -> bool: ...
    def write(self, path: str | os.PathLike[str]) -> None: ...
    @staticmethod
    def read(path: str | os.PathLike[str], mmap: bool = False) -> IndexFlat: ...

def read_index_kind(path: str | os.PathLike[str]) -> str: ...
