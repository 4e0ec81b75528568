"""Scalar quantization: :class:`IndexScalarQuantizer` (faiss ``IndexScalarQuantizer``)."""

from __future__ import annotations

from . import _core
from ._validation import as_int, positive_int
from .base import Index
from .exceptions import DTypeError, InvalidArgumentError
from .index import check_metric

__all__ = ["QTYPES", "IndexScalarQuantizer"]

#: Code types: faiss's ``QT_8bit``, ``QT_4bit``, ``QT_fp16``, ``QT_bf16`` and the rotated
#: Lloyd-Max codes ``lm2``/``lm3``/``lm4`` (no faiss equivalent).
QTYPES = ("8bit", "4bit", "fp16", "bf16", "lm2", "lm3", "lm4")


def check_qtype(qtype: str) -> str:
    """``qtype`` normalised to a name of :data:`QTYPES` (faiss's ``"QT_8bit"`` spelling is
    accepted too), else an :class:`InvalidArgumentError`."""
    if not isinstance(qtype, str):
        raise DTypeError(f"qtype must be a str, got {type(qtype).__name__}")
    name = qtype.strip().lower()
    name = name[3:] if name.startswith("qt_") else name
    if name not in QTYPES:
        raise InvalidArgumentError(f"qtype must be one of {', '.join(QTYPES)}, got {qtype!r}")
    return name


class IndexScalarQuantizer(Index):
    """Exhaustive search over scalar-quantized codes (faiss ``IndexScalarQuantizer``); ids are
    positions (``remove_ids`` renumbers, as faiss).

    ``qtype``:

    * ``"8bit"`` / ``"4bit"``: uniform codes over the per-dimension min/max range learned by
      :meth:`train` (faiss ``QT_8bit`` / ``QT_4bit``; the codes are byte-identical to faiss's for
      the same range). ``code_size`` = ``d`` / ``ceil(d/2)``.
    * ``"fp16"`` / ``"bf16"``: 16-bit floats, no training (round to nearest even, saturating at
      the largest finite value; faiss's bf16 truncates). ``code_size`` = ``2 d``.
    * ``"lm2"`` / ``"lm3"`` / ``"lm4"``: rotated Lloyd-Max codes (TurboQuant-style): the unit
      vector is rotated by a seeded random orthogonal matrix (``seed``) and every coordinate
      coded with the ``b``-bit Lloyd-Max quantizer of N(0, 1/d); each code also stores the norm
      and a bias-correction factor, so the inner-product estimate is (nearly) unbiased
      (RaBitQ's estimator). No training needed; :meth:`train` optionally calibrates the
      codebook per rotated dimension (mean / std of the training rows): better recall and a
      smaller estimate spread, at the cost of a small bias (+0.4 % relative at 2 bits on SIFT).
      ``code_size`` = ``ceil(d b / 8) + 8``. :meth:`reconstruct` returns the MSE reconstruction
      ``‖x‖ Rᵀ û``, which search does not use.

    Distances are computed on the codes (no decoded copy), with SIMD kernels. Results like
    faiss: ``D`` float32 ``(nq, k)`` (squared L2 ascending, or inner products descending),
    ``I`` int64, ``-1`` padding.
    """

    _kind = "IndexScalarQuantizer"

    def __init__(
        self, d: int, qtype: str = "8bit", metric: str = "l2", *, seed: int = 1234
    ) -> None:
        self._index = _core.IndexScalarQuantizer(
            positive_int(d, "d"),
            check_qtype(qtype),
            check_metric(metric),
            as_int(seed, "seed", 0, 2**64 - 1),
        )

    @property
    def qtype(self) -> str:
        """Code type (a name of :data:`QTYPES`)."""
        return str(self._index.qtype)

    @property
    def code_size(self) -> int:
        """Bytes per stored vector."""
        return int(self._index.code_size)

    def _repr_fields(self) -> str:
        return f"qtype={self.qtype!r}"
