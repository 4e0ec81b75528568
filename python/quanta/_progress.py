"""Progress bars for long Rust calls: tqdm when installed, else a one-line stderr bar."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["make_progress"]

Callback = Callable[[int, int], None]


class _TextBar:
    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.start = time.perf_counter()
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        if total <= 0 or done == self.last:
            return
        self.last = done
        width = 30
        filled = int(width * done / total)
        elapsed = time.perf_counter() - self.start
        bar = "#" * filled + "-" * (width - filled)
        sys.stderr.write(f"\r{self.desc} [{bar}] {done}/{total} {elapsed:.1f}s")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


class _TqdmBar:
    def __init__(self, desc: str) -> None:
        from tqdm import tqdm

        self.bar: Any = tqdm(desc=desc, total=None)
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if total > 0 and self.bar.total != total:
            self.bar.total = total
        if done > self.done:
            self.bar.update(done - self.done)
            self.done = done
        if total > 0 and done >= total:
            self.bar.close()


def make_progress(verbose: bool, desc: str) -> Callback | None:
    """A ``progress(done, total)`` callback for the Rust side, or ``None`` when not verbose."""
    if not verbose:
        return None
    try:
        import tqdm  # noqa: F401

        return _TqdmBar(desc)
    except ImportError:
        return _TextBar(desc)
