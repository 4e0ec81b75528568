"""Scale-out on Ray: one quanta index sharded over Ray actors (``pip install quanta[ray]``).

>>> from quanta.distributed import ShardedIndex
>>> index = ShardedIndex("IVF4096,PQ32x4fs", d=768, shards=8)  # doctest: +SKIP
>>> index.train(sample)  # once, on the driver; shards start from its bytes  # doctest: +SKIP
>>> index.add_from(["part-000.npy", "part-001.npy"])  # on the workers  # doctest: +SKIP
>>> D, I = index.search(queries, 10, nprobe=32)  # doctest: +SKIP
>>> index.save("/shared/my-index"); ShardedIndex.load("/shared/my-index")  # doctest: +SKIP

What it guarantees:

* **One training.** Coarse centroids, codebooks and rotations are learned once; every shard
  starts from the same bytes of quanta's checksummed format and records their fingerprint
  (:meth:`quanta.Index.fingerprint`). Shards whose fingerprints differ (trained separately, or
  files mixed up) are refused with :class:`~quanta.FingerprintMismatchError`, never merged.
* **The same results as one index.** A search fans out to the shards, each searches with the
  same parameters and filters (``ids_allowed=`` is pushed into every shard), and the per-shard
  top-k are merged as one index ranks (ties by id, ``-1`` padding). For exact and IVF indexes,
  PQ, fast scan and the rotation codecs without re-ranking, that is the single index's answer.
  Indexes that re-rank a shortlist (``k_factor > 1``, ``RFlat``) re-rank per shard, from a
  shortlist at least as long: as good or better than one index, not always identical.
* **Routing** (``routing=``): ``"ivf"`` keeps whole inverted lists on one shard, so a query asks
  only the shards owning its ``nprobe`` lists; ``"hash"`` spreads rows by a hash of the id.
* **No silent partial results.** A shard that dies is restarted by Ray from its last save; if it
  lost changes since, the call raises :class:`~quanta.ShardLostError` naming the shard.
* **Files.** ``save(dir)``: one file per shard (atomic), the trained template and a manifest
  (fingerprint, routing, SHA-256 of every shard); ``load`` checks all of it. ``to_local()``
  merges the shards into one ordinary quanta index.

``import quanta`` never imports Ray; this package does.
"""

from __future__ import annotations

try:
    import ray  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised without the extra only
    raise ImportError("quanta.distributed needs Ray: pip install 'quanta[ray]'") from e

from ..exceptions import FingerprintMismatchError, ShardLostError
from ._routing import ROUTINGS
from ._sharded import ShardedIndex

__all__ = ["ROUTINGS", "FingerprintMismatchError", "ShardLostError", "ShardedIndex"]
