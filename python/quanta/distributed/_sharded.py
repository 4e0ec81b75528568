"""``ShardedIndex``: one quanta index split over Ray actors (see the package docs)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import ray
from ray.exceptions import RayActorError

from .. import io as qio
from .._merge import merge_knn
from .._validation import as_float_matrix, as_ids, positive_int, to_numpy
from ..base import Index, SearchParameters, SearchResult
from ..exceptions import (
    FingerprintMismatchError,
    FormatError,
    InvalidArgumentError,
    NotTrainedError,
    ShapeError,
    ShardLostError,
)
from ..factory import index_factory
from ..index import IndexIDMap
from ._routing import Router
from ._shard import Shard, State, file_sha256, write_atomic

__all__ = ["ShardedIndex"]

_FORMAT = "quanta-sharded-index"
_VERSION = 1
_ShardActor = ray.remote(Shard)


def _ensure_ray(address: str | None) -> None:
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)


class ShardedIndex:
    """A quanta index (any :func:`~quanta.index_factory` string) split over ``shards`` Ray
    actors. Train once, add, search, remove, save, load; every shard holds the same trained
    parameters, which each records as a fingerprint (:meth:`quanta.Index.fingerprint`) and which
    searches and loads check.

    Args:
        factory: the index, e.g. ``"IVF4096,PQ32x4fs"`` (a positional index such as ``"PQ32"``
            is wrapped in :class:`~quanta.IndexIDMap` on every shard: ids are global).
        d: dimension. ``metric``: ``"l2"`` or ``"ip"``.
        shards: number of shard actors.
        routing: ``"ivf"`` (rows by inverted list; queries only to the shards owning the lists
            they probe), ``"hash"`` (rows by a hash of the id; queries to every shard), or
            ``"auto"`` (``ivf`` for IVF indexes).
        ray_address: the cluster to join when Ray is not initialized yet (``None``: a local
            one).
        cpus_per_shard: CPUs each actor reserves; quanta's pool inside it uses as many threads.
        workdir: where shards keep their recovery pointers (default: a temporary directory,
            removed by :meth:`close`; on a multi-machine cluster, a directory every node can
            read).

    ``with ShardedIndex(...) as index:`` closes it on leaving the block.
    """

    def __init__(
        self,
        factory: str,
        d: int,
        shards: int = 2,
        metric: str = "l2",
        *,
        routing: str = "auto",
        ray_address: str | None = None,
        cpus_per_shard: float = 1.0,
        workdir: str | None = None,
    ) -> None:
        self.factory = factory
        self.d = positive_int(d, "d")
        self.nshards = positive_int(shards, "shards", 4096)
        self._template: Index = index_factory(self.d, factory, metric)
        self.metric = self._template.metric
        self._routing_arg = routing
        self._router = Router(self._template, self.nshards, routing)  # checks `routing` now
        self._ray_address = ray_address
        self._cpus = float(cpus_per_shard)
        # a directory quanta made is quanta's to remove (close); a caller's is left alone
        self._own_workdir = workdir is None
        self._workdir = Path(workdir or tempfile.mkdtemp(prefix="quanta-shards-"))
        self._actors: list[Any] = []
        self._states: list[State] = []
        self._fingerprint: str | None = None
        self._template_bytes = b""
        self._next_id = 0

    # -- training and shards ----------------------------------------------------------------

    @property
    def is_trained(self) -> bool:
        return bool(self._actors)

    @property
    def fingerprint(self) -> str | None:
        """SHA-256 of the trained parameters every shard holds (``None`` before training)."""
        return self._fingerprint

    @property
    def routing(self) -> str:
        return self._router.routing

    def train(self, x: Any, *, verbose: bool = False) -> None:
        """Train once (on the driver), then start the shards, each from the trained index's
        bytes in quanta's checksummed format."""
        if self._actors:
            raise InvalidArgumentError("the sharded index is already trained")
        self._template.train(x, verbose=verbose)
        template = self._template if self._template.stores_ids else IndexIDMap(self._template)
        self._set_template(template)
        self._start([None] * self.nshards)

    def _set_template(self, template: Index) -> None:
        self._template = template
        self._template_bytes = qio.serialize_index(template)
        self._fingerprint = template.fingerprint()
        self._router = Router(template, self.nshards, self._routing_arg)

    def _start(self, initial: Sequence[tuple[str, int, str] | None]) -> None:
        _ensure_ray(self._ray_address)
        self._workdir.mkdir(parents=True, exist_ok=True)  # again after a close()
        # held here: Ray restarts a dead shard from these constructor arguments
        self._template_ref = ray.put(self._template_bytes)
        threads = max(1, round(self._cpus))
        self._actors = [
            _ShardActor.options(num_cpus=self._cpus, max_restarts=-1, max_task_retries=0).remote(
                s,
                self._template_ref,
                self._fingerprint,
                str(self._workdir / f"shard-{s:05d}.pointer.json"),
                initial[s],
                threads,
            )
            for s in range(self.nshards)
        ]
        replies = ray.get([a.info.remote() for a in self._actors])
        infos = [r[0] for r in replies]
        bad = [i for i in infos if i["error"] is not None]
        if bad:
            self._stop()
            first = bad[0]["error"]
            if "FingerprintMismatch" in first or "trained parameters" in first:
                raise FingerprintMismatchError(
                    f"shard(s) {[i['no'] for i in bad]}: {first}; refusing to merge them"
                )
            raise FormatError(f"shard(s) {[i['no'] for i in bad]} cannot start: {first}")
        wrong = [i["no"] for i in infos if i["fingerprint"] != self._fingerprint]
        if wrong:
            self._stop()
            raise FingerprintMismatchError(
                f"shard(s) {wrong} hold other trained parameters than the index's "
                f"({self._fingerprint!s:.12}): trained separately, they would silently "
                "degrade every search"
            )
        self._states = [tuple(r[1]) for r in replies]

    def _stop(self) -> None:
        for a in self._actors:
            ray.kill(a, no_restart=True)
        self._actors, self._states = [], []

    def close(self) -> None:
        """Stop the shard actors (their saved files stay) and remove the temporary workdir
        quanta made for them (a ``workdir`` given by the caller stays)."""
        self._stop()
        if self._own_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> ShardedIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_trained(self) -> None:
        if not self._actors:
            raise NotTrainedError("ShardedIndex: call train(x) (or ShardedIndex.load) first")

    # -- calling shards, with recovery ------------------------------------------------------

    def _accept(self, s: int, state: State, delta: int, what: str) -> None:
        """Check shard ``s``'s reply state against what the driver expects (see ``_shard``)."""
        inc, gen = self._states[s]
        if state[0] == inc:
            self._states[s] = state
            return
        restored = state[1] - delta
        if restored != gen:
            lost = gen - restored
            raise ShardLostError(
                f"shard {s} died and came back from its last save (generation {restored}); "
                f"{lost} later change(s) are lost (during {what}): ShardedIndex.load the last "
                "save again, or add the lost vectors again"
            )
        self._states[s] = state

    def _run(self, calls: dict[int, tuple[str, tuple[Any, ...]]], what: str) -> dict[int, Any]:
        """Run ``method(*args)`` on each shard; a shard that died is asked again once after
        Ray restarted it, if it came back whole. Never returns without every shard's answer."""
        refs = {s: getattr(self._actors[s], m).remote(*a) for s, (m, a) in calls.items()}
        out: dict[int, Any] = {}
        for s, ref in refs.items():
            try:
                value, state, changed = ray.get(ref)
            except RayActorError:
                try:
                    _, restarted, _ = ray.get(self._actors[s].info.remote())
                except RayActorError as e:
                    raise ShardLostError(f"shard {s} is lost (during {what}): {e}") from e
                self._accept(s, tuple(restarted), 0, what)
                m, a = calls[s]
                value, state, changed = ray.get(getattr(self._actors[s], m).remote(*a))
            self._accept(s, tuple(state), changed, what)
            out[s] = value
        return out

    # -- adding and removing ----------------------------------------------------------------

    def add(self, x: Any, ids: Any = None) -> None:
        """Add ``x`` (n, d) with int64 ``ids`` (default: ``ntotal``-style counting from the
        largest id given so far), each row to its shard (see ``routing``)."""
        self._require_trained()
        xs = as_float_matrix(x, "x", self.d, allow_empty=True)
        n = xs.shape[0]
        if ids is None:
            idv = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        else:
            idv = as_ids(ids)
            if idv.shape != (n,):
                raise ShapeError(f"ids has shape {idv.shape}, expected ({n},)")
        if n == 0:
            return
        self._next_id = max(self._next_id, int(idv.max()) + 1)
        owner = self._router.rows(xs, idv)
        calls = {}
        for s in range(self.nshards):
            rows = np.flatnonzero(owner == s)
            if len(rows):
                calls[s] = ("add", (xs[rows], idv[rows]))
        self._run(calls, "add")

    def add_from(
        self,
        source: Any,
        *,
        vector_column: str = "vector",
        id_column: str = "id",
        batch_size: int = 8192,
    ) -> int:
        """Add every row of ``source``, read and routed in parallel on the workers: a
        ``ray.data.Dataset`` (columns ``vector_column``, ``id_column``; ``map_batches``), a
        list of Parquet paths (read as a Dataset) or of ``.npy`` files of (n, d) vectors (one
        task per file; ids continue the index's counting, file after file). Returns the number
        of rows added."""
        self._require_trained()
        import ray.data

        paths = [str(p) for p in source] if isinstance(source, (list, tuple)) else None
        if paths is not None and all(p.endswith(".npy") for p in paths):
            return self._add_npy(paths)
        ds = ray.data.read_parquet(paths) if paths is not None else source
        if not isinstance(ds, ray.data.Dataset):
            raise InvalidArgumentError(
                "source must be a ray.data.Dataset or a list of .npy or .parquet paths, got "
                f"{type(source).__name__}"
            )
        done = ds.map_batches(
            _AddBatches,
            fn_constructor_kwargs={
                "template": self._template_bytes,
                "shards": self.nshards,
                "routing": self.routing,
                "actors": self._actors,
                "vector_column": vector_column,
                "id_column": id_column,
                "d": self.d,
            },
            batch_size=batch_size,
            batch_format="numpy",
            concurrency=1,
            num_cpus=0,
        ).take_all()
        n = int(sum(int(r["n"]) for r in done))
        if n:
            self._next_id = max(self._next_id, max(int(r["max_id"]) for r in done) + 1)
        self._resync("add_from")
        return n

    def _add_npy(self, paths: list[str]) -> int:
        counts = [int(np.load(p, mmap_mode="r").shape[0]) for p in paths]
        starts = np.cumsum([self._next_id, *counts])[:-1]
        tasks = [
            _add_npy_file.options(num_cpus=0).remote(
                p, int(i0), self._template_bytes, self.nshards, self.routing, self._actors, self.d
            )
            for p, i0 in zip(paths, starts)
        ]
        n = int(sum(ray.get(tasks)))
        self._next_id += n
        self._resync("add_from")
        return n

    def _resync(self, what: str) -> None:
        """After changes made by worker tasks: every shard must still be the same incarnation
        (a restart in between cannot be checked), then its generation is taken as it is."""
        replies = ray.get([a.info.remote() for a in self._actors])
        for s, (_, state, _) in enumerate(replies):
            if state[0] != self._states[s][0]:
                raise ShardLostError(f"shard {s} died during {what}; what it had added is lost")
            self._states[s] = tuple(state)

    def remove_ids(self, ids: Any) -> int:
        """Remove the entries whose id is in ``ids`` (int64 ids or a bool mask indexed by id);
        returns how many were removed."""
        self._require_trained()
        a = np.atleast_1d(to_numpy(ids, "ids"))
        if a.dtype == np.bool_:
            calls = {s: ("remove_ids", (a,)) for s in range(self.nshards)}
        else:
            idv = as_ids(a, "ids")
            owner = self._router.id_owners(idv)
            calls = {}
            for s in range(self.nshards):
                mine = idv if owner is None else idv[owner == s]
                if len(mine):
                    calls[s] = ("remove_ids", (mine,))
        out = self._run(calls, "remove_ids")
        return int(sum(out.values()))

    def reset(self) -> None:
        """Remove every vector (training is kept)."""
        self._require_trained()
        self._run({s: ("reset", ()) for s in range(self.nshards)}, "reset")
        self._next_id = 0

    @property
    def ntotal(self) -> int:
        if not self._actors:
            return 0
        out = self._run({s: ("info", ()) for s in range(self.nshards)}, "ntotal")
        return int(sum(r["ntotal"] for r in out.values()))

    def __len__(self) -> int:
        return self.ntotal

    # -- search -----------------------------------------------------------------------------

    def search(
        self, q: Any, k: int, *, params: SearchParameters | None = None, **shortcuts: Any
    ) -> SearchResult:
        """k nearest of each query over all shards, merged as one index ranks (ties by id,
        ``-1`` padding); the filters (``ids_allowed=``, ``ids_denied=``) and search parameters
        (``nprobe=``, ``k_factor=``, ...) go to every shard asked."""
        self._require_trained()
        k = positive_int(k, "k")
        p = (params or SearchParameters())._merged(shortcuts)
        p._core_kwargs()  # argument errors here, not in k shards
        qs = as_float_matrix(q, "queries", self.d, allow_1d=True, allow_empty=True)
        nq = qs.shape[0]
        subsets = self._router.queries(qs, p.nprobe)
        fields = {f.name: getattr(p, f.name) for f in dataclasses.fields(p)}
        calls = {
            s: ("search", (qs[rows], k, fields)) for s, rows in enumerate(subsets) if len(rows)
        }
        out = self._run(calls, "search")
        pad = np.float32(np.inf if self.metric == "l2" else -np.inf)
        dists, ids = [], []
        for s, (d, i) in out.items():
            full_d = np.full((nq, k), pad, np.float32)
            full_i = np.full((nq, k), -1, np.int64)
            full_d[subsets[s]], full_i[subsets[s]] = d, i
            dists.append(full_d)
            ids.append(full_i)
        return merge_knn(dists, ids, k, self.metric)

    # -- files ------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        """One file per shard (each written atomically, ``shard-NNNNN.quanta``), the trained
        template, and ``manifest.json`` (fingerprint, routing, each shard's SHA-256) last."""
        self._require_trained()
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        files = {s: str(path / f"shard-{s:05d}.quanta") for s in range(self.nshards)}
        out = self._run({s: ("save", (f,)) for s, f in files.items()}, "save")
        write_atomic(path / "template.quanta", self._template_bytes)
        manifest = {
            "format": _FORMAT,
            "version": _VERSION,
            "factory": self.factory,
            "d": self.d,
            "metric": self.metric,
            "routing": self.routing,
            "fingerprint": self._fingerprint,
            "template_sha256": hashlib.sha256(self._template_bytes).hexdigest(),
            "next_id": self._next_id,
            "shards": [
                {
                    "file": Path(files[s]).name,
                    "sha256": out[s][0],
                    "ntotal": out[s][1],
                    "generation": self._states[s][1],
                }
                for s in range(self.nshards)
            ],
        }
        write_atomic(path / "manifest.json", json.dumps(manifest, indent=1).encode())

    @classmethod
    def load(
        cls,
        directory: str | Path,
        ray_address: str | None = None,
        *,
        cpus_per_shard: float = 1.0,
        workdir: str | None = None,
    ) -> ShardedIndex:
        """The index :meth:`save` wrote: every shard file is checked (SHA-256, then its
        fingerprint against the manifest's) before any search."""
        path = Path(directory)
        try:
            m = json.loads((path / "manifest.json").read_text())
        except (OSError, ValueError) as e:
            raise FormatError(f"no readable sharded-index manifest in {str(path)!r}: {e}") from e
        if m.get("format") != _FORMAT or m.get("version") != _VERSION:
            raise FormatError(f"{str(path)!r} is not a quanta sharded index of version {_VERSION}")
        template = (path / "template.quanta").read_bytes()
        if hashlib.sha256(template).hexdigest() != m["template_sha256"]:
            raise FormatError("template.quanta does not match the manifest (SHA-256)")
        out = cls(
            m["factory"],
            m["d"],
            len(m["shards"]),
            m["metric"],
            routing=m["routing"],
            ray_address=ray_address,
            cpus_per_shard=cpus_per_shard,
            workdir=workdir,
        )
        out._set_template(qio.deserialize_index(template))
        if out._fingerprint != m["fingerprint"]:
            raise FingerprintMismatchError("the template's fingerprint is not the manifest's")
        out._next_id = int(m["next_id"])
        initial = []
        for s, rec in enumerate(m["shards"]):
            f = path / rec["file"]
            if not f.is_file():
                raise FormatError(f"shard {s}: {f.name} is missing")
            if file_sha256(f) != rec["sha256"]:
                raise FormatError(f"shard {s}: {f.name} does not match the manifest (SHA-256)")
            initial.append((str(f), int(rec["generation"]), rec["sha256"]))
        out._start(initial)
        return out

    def to_local(self) -> Index:
        """Every shard merged into one ordinary quanta index (:meth:`quanta.Index.merge_from`;
        positional kinds come back in an :class:`~quanta.IndexIDMap` with the global ids)."""
        self._require_trained()
        out = self._run({s: ("to_bytes", ()) for s in range(self.nshards)}, "to_local")
        parts = [qio.deserialize_index(out[s]) for s in range(self.nshards)]
        merged: Index = parts[0]
        for p in parts[1:]:
            merged.merge_from(p)
        return merged

    def shard_pids(self) -> list[int]:
        """Process id of each shard actor (to watch memory, or to test recovery)."""
        self._require_trained()
        return list(ray.get([a.pid.remote() for a in self._actors]))

    def kill_shard(self, s: int) -> None:
        """Kill shard ``s``'s process as a crash would (Ray restarts it from its last save)."""
        self._require_trained()
        ray.kill(self._actors[s], no_restart=False)

    def __repr__(self) -> str:
        return (
            f"ShardedIndex({self.factory!r}, d={self.d}, shards={self.nshards}, "
            f"metric={self.metric!r}, routing={self.routing!r})"
        )


def _route_and_add(
    x: npt.NDArray[np.float32],
    ids: npt.NDArray[np.int64],
    router: Router,
    actors: list[Any],
) -> None:
    owner = router.rows(x, ids)
    refs = []
    for s in range(router.shards):
        rows = np.flatnonzero(owner == s)
        if len(rows):
            refs.append(actors[s].add.remote(x[rows], ids[rows]))
    # a failed add raises here, so the task (and add_from) fails rather than losing rows
    ray.get(refs)


@ray.remote
def _add_npy_file(
    path: str, id0: int, template: bytes, shards: int, routing: str, actors: list[Any], d: int
) -> int:
    router = Router(qio.deserialize_index(template), shards, routing)
    x = np.load(path, mmap_mode="r")
    if x.ndim != 2 or x.shape[1] != d:
        raise ShapeError(f"{path}: shape {x.shape}, expected (n, {d})")
    step = 1 << 16
    for i in range(0, x.shape[0], step):
        chunk = as_float_matrix(np.asarray(x[i : i + step]), "x", d)
        _route_and_add(
            chunk, np.arange(id0 + i, id0 + i + len(chunk), dtype=np.int64), router, actors
        )
    return int(x.shape[0])


class _AddBatches:
    """``map_batches`` worker: routes each batch's rows and hands them to their shards."""

    def __init__(
        self,
        template: bytes,
        shards: int,
        routing: str,
        actors: list[Any],
        vector_column: str,
        id_column: str,
        d: int,
    ) -> None:
        self.router = Router(qio.deserialize_index(template), shards, routing)
        self.actors, self.vcol, self.icol, self.d = actors, vector_column, id_column, d

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        if self.vcol not in batch or self.icol not in batch:
            raise InvalidArgumentError(
                f"the dataset needs columns {self.vcol!r} and {self.icol!r}, has {sorted(batch)}"
            )
        v = batch[self.vcol]
        x = as_float_matrix(np.stack(v) if v.dtype == object else v, self.vcol, self.d)
        ids = as_ids(batch[self.icol], self.icol)
        if len(ids):
            _route_and_add(x, ids, self.router, self.actors)
        return {"n": np.array([len(ids)]), "max_id": np.array([ids.max() if len(ids) else -1])}
