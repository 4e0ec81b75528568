"""quanta's exception hierarchy.

Every error raised by quanta is a :class:`QuantaError`. Shape and value problems are also
``ValueError``, dtype problems ``TypeError`` and file problems ``OSError``, so code that catches
the builtin classes keeps working. The Rust extension raises these exact classes.
"""

from __future__ import annotations

__all__ = [
    "DTypeError",
    "FingerprintMismatchError",
    "FormatError",
    "InvalidArgumentError",
    "NotTrainedError",
    "QuantaError",
    "ShapeError",
    "ShardLostError",
    "SimdUnavailableError",
]


class QuantaError(Exception):
    """Base class of every quanta error."""


class ShapeError(QuantaError, ValueError):
    """Array rank, dimension or length does not fit (e.g. ``d`` mismatch, empty input)."""


class DTypeError(QuantaError, TypeError):
    """Array dtype (or object type) not accepted (e.g. float codes, non-int64 ids)."""


class InvalidArgumentError(QuantaError, ValueError):
    """A value is out of range: ``k <= 0``, NaN/Inf in the data, unknown option, ..."""


class NotTrainedError(QuantaError, RuntimeError):
    """The object must be trained (``train``/``fit``) before this call."""


class FormatError(QuantaError, OSError):
    """A file is truncated, corrupted, foreign or of an unsupported version."""


class SimdUnavailableError(QuantaError, RuntimeError):
    """The requested SIMD level is not supported by this CPU."""


class FingerprintMismatchError(QuantaError, ValueError):
    """Indexes (shards) trained separately were to be merged or searched together: their
    trained parameters differ, and a merge would silently degrade the results."""


class ShardLostError(QuantaError, RuntimeError):
    """A shard of a :class:`quanta.distributed.ShardedIndex` died and could not be restored to
    its last state; the message names the shard and what was lost."""
