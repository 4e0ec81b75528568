"""The shard: one ordinary quanta index inside a Ray actor, plus what recovery needs.

Every reply carries the shard's *state* ``(incarnation, generation)``: ``incarnation`` is new
each time the actor process starts (Ray restarts a dead actor by running ``__init__`` again),
``generation`` counts the changes applied. A restarted shard reloads its last saved file (the
recovery pointer, written by :meth:`Shard.save`), so the driver can tell a shard that came
back whole (same generation as before) from one that lost changes, and refuse the latter.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from .. import io as qio
from ..base import Index, SearchParameters
from ..exceptions import FingerprintMismatchError, FormatError

__all__ = ["Reply", "Shard", "State", "file_sha256", "write_atomic"]

State = tuple[str, int]


def write_atomic(path: Path, data: bytes) -> None:
    """``path`` holds the old bytes or the new ones, never a part."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


Reply = tuple[Any, State, int]
"""What every shard method returns: (value, state after the call, changes it applied)."""


class Shard:
    """Holds shard ``no`` of a sharded index (used as a Ray actor class).

    Starts from, in order: the file the recovery pointer names (a restart after a save), the
    file it was loaded from (``initial``: path, generation, SHA-256), or the empty trained
    template. Whatever it starts from must have the index's fingerprint; a shard that cannot
    start keeps the reason in ``error`` (reported by :meth:`info`, so that the driver names it,
    rather than Ray restarting a constructor that fails forever)."""

    def __init__(
        self,
        no: int,
        template: bytes,
        fingerprint: str,
        pointer: str,
        initial: tuple[str, int, str] | None = None,
        threads: int = 1,
    ) -> None:
        from .. import set_num_threads

        set_num_threads(threads)
        self.no = no
        self.pointer = Path(pointer)
        self.incarnation = uuid.uuid4().hex
        self.generation = 0
        self.error: str | None = None
        self.index: Index | None = None
        # of what it started from (training never changes afterwards; computing it copies the
        # index, so it is not redone for every info())
        self.fingerprint: str | None = None
        try:
            self._start(template, fingerprint, initial)
        except Exception as e:  # reported by info(): the driver raises the typed error
            self.error = f"{type(e).__name__}: {e}"

    def _start(
        self, template: bytes, fingerprint: str, initial: tuple[str, int, str] | None
    ) -> None:
        start = initial
        if self.pointer.is_file():
            saved = json.loads(self.pointer.read_text())
            start = (saved["path"], int(saved["generation"]), saved["sha256"])
        if start is None:
            self.index = qio.deserialize_index(template)
        else:
            path, self.generation, sha = start
            if file_sha256(path) != sha:
                raise FormatError(f"{path} is not the file that was saved (SHA-256)")
            self.index = qio.read_index(path)
        got = self.fingerprint = self.index.fingerprint()
        if got != fingerprint:
            raise FingerprintMismatchError(
                f"trained parameters {got[:12]} differ from the index's {fingerprint[:12]} "
                "(a shard trained separately cannot join this index)"
            )

    @property
    def _index(self) -> Index:
        if self.index is None:
            raise FormatError(f"shard {self.no} did not start: {self.error}")
        return self.index

    def _reply(self, value: Any, changed: int = 0) -> Reply:
        self.generation += changed
        return value, (self.incarnation, self.generation), changed

    def info(self) -> Reply:
        idx = self.index
        return self._reply(
            {
                "no": self.no,
                "error": self.error,
                "ntotal": 0 if idx is None else idx.ntotal,
                "fingerprint": self.fingerprint,
            }
        )

    def add(self, x: np.ndarray[Any, Any], ids: np.ndarray[Any, Any]) -> Reply:
        self._index.add_with_ids(x, ids)
        return self._reply(None, 1)

    def remove_ids(self, ids: np.ndarray[Any, Any]) -> Reply:
        n = self._index.remove_ids(ids)
        return self._reply(n, 1 if n else 0)

    def reset(self) -> Reply:
        self._index.reset()
        return self._reply(None, 1)

    def search(self, q: np.ndarray[Any, Any], k: int, params: dict[str, Any]) -> Reply:
        return self._reply(self._index.search(q, k, params=SearchParameters(**params)))

    def to_bytes(self) -> Reply:
        return self._reply(qio.serialize_index(self._index))

    def save(self, path: str) -> Reply:
        """Write the shard to ``path`` atomically, then point recovery at it; the value is
        (SHA-256, ntotal)."""
        qio.write_index(self._index, path)
        sha = file_sha256(path)
        record = {"path": str(path), "generation": self.generation, "sha256": sha}
        self.pointer.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.pointer, json.dumps(record).encode())
        return self._reply((sha, self._index.ntotal))

    def pid(self) -> int:
        return os.getpid()
