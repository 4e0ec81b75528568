"""quanta.distributed on a local Ray cluster started here (2 CPUs): sharded search equals the
single index built from the same trained parameters, filters, removal, files, fingerprints,
recovery of a killed shard, and parallel adds from files and Ray datasets."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ray = pytest.importorskip("ray")

import quanta  # noqa: E402
from quanta.distributed import ShardedIndex  # noqa: E402

pytestmark = pytest.mark.slow  # a Ray cluster takes seconds to start
D, N, NQ, K = 32, 3000, 25, 10


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Any:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _data(seed: int = 0) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((20, D)).astype(np.float32) * 3
    x = centers[rng.integers(0, 20, N)] + rng.standard_normal((N, D)).astype(np.float32)
    q = centers[rng.integers(0, 20, NQ)] + rng.standard_normal((NQ, D)).astype(np.float32)
    return x, q


def _single(index: ShardedIndex, x: np.ndarray[Any, Any], ids: np.ndarray[Any, Any]) -> Any:
    """The one index built from the same trained parameters."""
    one = quanta.deserialize_index(index._template_bytes)
    one.add_with_ids(x, ids)
    return one


def _sharded(spec: str, routing: str = "auto", shards: int = 2, seed: int = 0) -> ShardedIndex:
    x, _ = _data(seed)
    index = ShardedIndex(spec, D, shards=shards, routing=routing, cpus_per_shard=0.5)
    index.train(x)
    return index


def _same(a: tuple[Any, Any], b: tuple[Any, Any], shortlist: bool = False) -> None:
    """Same results; for an index re-ranking a shortlist, each shard re-ranks a shortlist of
    its own, and their union holds the single index's shortlist: every rank's distance is
    then as small or smaller (L2) than the single index's, equal when the shortlists agree."""
    if shortlist:
        assert (a[0] <= b[0] + 1e-5).all()
        assert np.mean(a[1] == b[1]) > 0.5
        return
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6, atol=1e-6)


def _same_up_to_ties(a: tuple[Any, Any], b: tuple[Any, Any]) -> None:
    """Same distances, and the same ids at each distance but the last one of a row (an
    IndexIDMap breaks ties by position, and merged shards hold their entries in shard order)."""
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6, atol=1e-6)
    for da, ia, ib in zip(a[0], a[1], b[1]):
        inner = da < da[-1]
        assert set(ia[inner].tolist()) == set(ib[inner].tolist())


@pytest.mark.parametrize(
    ("spec", "routing"),
    [
        ("Flat", "hash"),
        ("IVF16,PQ8", "ivf"),
        ("IVF16,PQ8", "hash"),
        ("IVF16,PQ8x4fs", "ivf"),
        ("OPQ8,IVF16,Flat", "ivf"),
        ("RaBitQ4", "hash"),
        ("IVF16,RaBitQ", "ivf"),
        ("IVF16,SQ8", "ivf"),
        ("PQ8x4fs", "hash"),
    ],
)
def test_sharded_search_equals_the_single_index(spec: str, routing: str) -> None:
    x, q = _data()
    index = _sharded(spec, routing)
    try:
        assert index.routing == routing
        ids = np.arange(N, dtype=np.int64) * 3 + 7
        index.add(x, ids)
        one = _single(index, x, ids)
        assert index.ntotal == N == one.ntotal
        probe = {"nprobe": 4} if "IVF" in spec else {}
        rerank = spec == "RaBitQ4"  # shortlist of k * 8 re-ranked by the 4-bit estimate
        _same(index.search(q, K, **probe), one.search(q, K, **probe), rerank)
        # filters go into every shard
        allowed = ids[::5]
        _same(
            index.search(q, K, ids_allowed=allowed, **probe),
            one.search(q, K, ids_allowed=allowed, **probe),
            rerank,
        )
        # removal, then the merged local copy, which is the single index exactly
        gone = ids[:700:3]
        assert index.remove_ids(gone) == len(gone) == one.remove_ids(gone)
        _same(index.search(q, K, **probe), one.search(q, K, **probe), rerank)
        local = index.to_local()
        assert local.ntotal == N - len(gone)
        _same_up_to_ties(local.search(q, K, **probe), one.search(q, K, **probe))
    finally:
        index.close()


def test_ivf_routing_asks_only_the_shards_owning_the_probed_lists() -> None:
    x, q = _data()
    index = _sharded("IVF16,Flat", "ivf", shards=4)
    try:
        index.add(x)
        asked = index._router.queries(q, 1)
        assert sum(len(a) for a in asked) == NQ  # nprobe 1: each query asks one shard
        _same(index.search(q, K), _single(index, x, np.arange(N)).search(q, K))
    finally:
        index.close()


def test_save_load_fingerprints_and_damage(tmp_path: Path) -> None:
    x, q = _data()
    a = _sharded("IVF16,PQ8", "ivf")
    b = _sharded("IVF16,PQ8", "ivf", seed=1)  # trained on other data
    try:
        assert a.fingerprint != b.fingerprint
        a.add(x)
        b.add(x)
        want = a.search(q, K, nprobe=4)
        a.save(tmp_path / "a")
        b.save(tmp_path / "b")
    finally:
        a.close()
        b.close()
    loaded = ShardedIndex.load(tmp_path / "a", cpus_per_shard=0.5)
    try:
        _same(loaded.search(q, K, nprobe=4), want)
        assert loaded.ntotal == N
    finally:
        loaded.close()
    # a shard of the other index, with a manifest made to match its bytes: refused by
    # fingerprint, never searched
    mixed = tmp_path / "mixed"
    shutil.copytree(tmp_path / "a", mixed)
    shutil.copy(tmp_path / "b" / "shard-00001.quanta", mixed / "shard-00001.quanta")
    m = json.loads((mixed / "manifest.json").read_text())
    m["shards"][1]["sha256"] = json.loads((tmp_path / "b" / "manifest.json").read_text())["shards"][
        1
    ]["sha256"]
    (mixed / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(quanta.FingerprintMismatchError, match=r"shard\(s\) \[1\]"):
        ShardedIndex.load(mixed, cpus_per_shard=0.5)
    # a damaged shard file: its SHA-256 is not the manifest's
    bad = tmp_path / "bad"
    shutil.copytree(tmp_path / "a", bad)
    data = bytearray((bad / "shard-00000.quanta").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / "shard-00000.quanta").write_bytes(bytes(data))
    with pytest.raises(quanta.FormatError, match="shard 0"):
        ShardedIndex.load(bad, cpus_per_shard=0.5)
    with pytest.raises(quanta.FormatError, match="manifest"):
        ShardedIndex.load(tmp_path / "nothing-here")


def _wait_restarted(index: ShardedIndex, s: int, old_pid: int) -> None:
    for _ in range(200):
        try:
            if index.shard_pids()[s] != old_pid:
                return
        except ray.exceptions.RayActorError:
            pass
        time.sleep(0.1)


def test_killed_shard_recovers_from_its_save_or_is_named(tmp_path: Path) -> None:
    x, q = _data()
    index = _sharded("IVF16,Flat", "hash")
    try:
        index.add(x[:2000], np.arange(2000))
        want = index.search(q, K, nprobe=16)
        index.save(tmp_path / "s")
        pid = index.shard_pids()[0]
        index.kill_shard(0)
        _wait_restarted(index, 0, pid)
        # came back from its save, whole: the same answers
        _same(index.search(q, K, nprobe=16), want)
        # changes after the save, then a crash: the search names the shard, never returns
        # the survivors' results alone
        index.add(x[2000:], np.arange(2000, N))
        pid = index.shard_pids()[1]
        index.kill_shard(1)
        _wait_restarted(index, 1, pid)
        with pytest.raises(quanta.ShardLostError, match="shard 1"):
            index.search(q, K, nprobe=16)
    finally:
        index.close()


def test_add_from_npy_files_and_datasets(tmp_path: Path) -> None:
    x, q = _data()
    index = _sharded("IVF16,PQ8x4fs", "ivf")
    try:
        parts = [tmp_path / f"part-{i}.npy" for i in range(3)]
        for p, chunk in zip(parts, np.array_split(x[:1500], 3)):
            np.save(p, chunk)
        assert index.add_from([str(p) for p in parts]) == 1500
        ds = ray.data.from_items(
            [{"vector": x[i], "id": i} for i in range(1500, N)], override_num_blocks=2
        )
        assert index.add_from(ds, batch_size=512) == N - 1500
        assert index.ntotal == N
        _same(
            index.search(q, K, nprobe=4),
            _single(index, x, np.arange(N)).search(q, K, nprobe=4),
        )
        index.add(x[:5])  # ids continue after the largest one added
        assert index.search(x[:1], 1, nprobe=16)[1][0, 0] in (0, N)
    finally:
        index.close()


def test_bad_arguments() -> None:
    with pytest.raises(quanta.InvalidArgumentError, match="routing"):
        ShardedIndex("Flat", D, routing="ivf")
    with pytest.raises(quanta.InvalidArgumentError, match="routing"):
        ShardedIndex("Flat", D, routing="random")
    index = ShardedIndex("Flat", D, cpus_per_shard=0.5)
    with pytest.raises(quanta.NotTrainedError):
        index.search(np.zeros((1, D), np.float32), 3)
    index.train(np.zeros((10, D), np.float32))
    try:
        with pytest.raises(quanta.ShapeError):
            index.add(np.zeros((3, D + 1), np.float32))
        with pytest.raises(quanta.InvalidArgumentError, match="k"):
            index.search(np.zeros((1, D), np.float32), 0)
        with pytest.raises(quanta.InvalidArgumentError, match="nprob"):
            index.search(np.zeros((1, D), np.float32), 1, nprob=3)
        d, i = index.search(np.zeros((2, D), np.float32), 3)  # empty: padded
        assert (i == -1).all() and np.isinf(d).all()
    finally:
        index.close()


def test_close_removes_only_the_workdir_quanta_made(tmp_path: Path) -> None:
    x, q = _data()
    own = tmp_path / "mine"
    with ShardedIndex("Flat", D, shards=2, cpus_per_shard=0.5, workdir=str(own)) as given:
        given.train(x)
        given.add(x[:100])
    assert own.is_dir()  # the caller's directory stays
    index = _sharded("Flat", "hash")
    made = index._workdir
    assert made.is_dir()
    index.add(x[:100])
    index.close()
    assert not made.exists()
    with pytest.raises(quanta.NotTrainedError):
        index.search(q, K)
