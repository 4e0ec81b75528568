"""Which shard holds a row: by a hash of its id, or by its inverted list (IVF indexes).

* ``"hash"``: shard ``splitmix64(id) % S``. Any index; every query asks every shard; removing
  an id asks only its shard.
* ``"ivf"``: the row's coarse list ``l`` (the list the index itself puts it in), shard
  ``l % S``. Each shard holds whole lists, so a query asks only the shards owning the
  ``nprobe`` lists it probes (with ``nprobe`` much smaller than ``nlist``, few of them). Every
  shard keeps all centroids, so it probes exactly the lists the one index would: the merged
  result equals the single index's. Removing an id asks every shard (its list is not known
  from the id).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ..base import Index
from ..exceptions import InvalidArgumentError
from ..index import IndexFlat, IndexIDMap
from ..transform import IndexPreTransform

__all__ = ["ROUTINGS", "Router"]

ROUTINGS = ("hash", "ivf")


def _splitmix64(ids: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
    z = ids.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _coarse(template: Index) -> tuple[Any, IndexFlat, int] | None:
    """(transform or None, flat index over the coarse centroids, default nprobe) of an IVF
    template."""
    inner: Any = template
    transform = None
    if isinstance(inner, IndexIDMap):
        inner = inner.index
    if isinstance(inner, IndexPreTransform):
        transform = inner.transform
        inner = inner.index
    centroids = getattr(inner, "centroids", None)
    if centroids is None or not hasattr(inner, "nlist"):
        return None
    flat = IndexFlat(inner.d, inner.metric)
    flat.add(np.asarray(centroids, np.float32))
    return transform, flat, int(inner.nprobe)


class Router:
    """Routes rows (by id or by vector) and queries to shards for one routing policy."""

    def __init__(self, template: Index, shards: int, routing: str) -> None:
        if routing == "auto":
            routing = "ivf" if _coarse(template) is not None else "hash"
        if routing not in ROUTINGS:
            raise InvalidArgumentError(
                f"routing must be one of {[*ROUTINGS, 'auto']}, got {routing!r}"
            )
        self.routing = routing
        self.shards = shards
        self._coarse = _coarse(template) if routing == "ivf" else None
        if routing == "ivf" and self._coarse is None:
            raise InvalidArgumentError(
                f"routing='ivf' needs an IVF index, got {type(template).__name__}; use 'hash'"
            )
        self.nprobe = 1 if self._coarse is None else self._coarse[2]

    def _lists(self, x: npt.NDArray[np.float32], n: int) -> npt.NDArray[np.int64]:
        assert self._coarse is not None
        transform, flat, _ = self._coarse
        xt = x if transform is None else transform.apply(x)
        return flat.search(xt, n)[1]

    def rows(self, x: npt.NDArray[np.float32], ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Shard of each row."""
        if self.routing == "hash":
            return (_splitmix64(ids) % np.uint64(self.shards)).astype(np.int64)
        return self._lists(x, 1)[:, 0] % self.shards

    def id_owners(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64] | None:
        """Shard of each id, or None when the id alone does not tell (``ivf``)."""
        if self.routing == "hash":
            return (_splitmix64(ids) % np.uint64(self.shards)).astype(np.int64)
        return None

    def queries(
        self, q: npt.NDArray[np.float32], nprobe: int | None
    ) -> list[npt.NDArray[np.int64]]:
        """For each shard, the queries it must answer (row numbers into ``q``)."""
        everyone = np.arange(q.shape[0], dtype=np.int64)
        if self.routing == "hash" or q.shape[0] == 0:
            return [everyone] * self.shards
        assert self._coarse is not None
        nlist = self._coarse[1].ntotal
        probed = self._lists(q, min(nprobe or self.nprobe, nlist)) % self.shards
        return [everyone[(probed == s).any(axis=1)] for s in range(self.shards)]
