"""Vector transforms applied before an index: :class:`OPQMatrix` and :class:`IndexPreTransform`."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._progress import make_progress
from ._validation import as_float_matrix, as_int, positive_int
from .base import Index
from .exceptions import DTypeError, NotTrainedError

__all__ = ["IndexPreTransform", "OPQMatrix"]


class OPQMatrix:
    """Optimized product quantization rotation (Ge et al. 2013; faiss ``OPQMatrix``).

    Learns an orthogonal ``A`` (``d_out x d``) so that PQ with ``M`` sub-quantizers of the
    rotated vectors ``A x`` loses as little as possible: alternates PQ training on the rotated
    data (40 k-means iterations first, then 4 warm-started ones) and an orthogonal Procrustes
    step (SVD). Defaults follow faiss (50 alternations, training set capped at 65 536 rows) but
    for the start: ``init="eigen"`` (default) starts from parametric OPQ, the principal axes
    dealt to the sub-spaces by eigenvalue allocation (Ge et al. 2013, §4.2), which is
    deterministic and lands in a better optimum than faiss's random rotation more reliably;
    ``init="random"`` is faiss's seeded random rotation.

    The positional arguments are faiss's, ``OPQMatrix(d, M, d_out)``: the third one is the
    output dimension (default ``d``); the training settings are keywords.
    """

    def __init__(
        self,
        d: int,
        M: int,
        d_out: int | None = None,
        *,
        niter: int = 50,
        niter_pq: int = 4,
        niter_pq_0: int = 40,
        max_train_points: int = 256 * 256,
        seed: int = 123,
        init: str = "eigen",
        verbose: bool = False,
    ) -> None:
        if init not in ("eigen", "random"):
            raise ValueError(f"init must be 'eigen' or 'random', got {init!r}")
        self._opq = _core.OPQMatrix(
            positive_int(d, "d"),
            positive_int(M, "M"),
            positive_int(niter, "niter"),
            None if d_out is None else positive_int(d_out, "d_out"),
            positive_int(niter_pq, "niter_pq"),
            positive_int(niter_pq_0, "niter_pq_0"),
            positive_int(max_train_points, "max_train_points"),
            as_int(seed, "seed", 0, 2**64 - 1),
            init,
        )
        self.verbose = verbose
        self.pq_errors: list[float] = []
        """PQ reconstruction MSE after each alternation of the last :meth:`train`."""

    @property
    def d_in(self) -> int:
        """Input dimension."""
        return self._opq.d_in

    @property
    def init(self) -> str:
        """Initial rotation: ``"eigen"`` (parametric OPQ) or ``"random"`` (faiss)."""
        return self._opq.init

    @property
    def d_out(self) -> int:
        """Output dimension."""
        return self._opq.d_out

    @property
    def M(self) -> int:
        """Sub-quantizers the rotation is optimized for."""
        return self._opq.M

    @property
    def is_trained(self) -> bool:
        """Whether the rotation is learned (or set)."""
        return self._opq.is_trained

    @property
    def A(self) -> npt.NDArray[np.float32]:
        """The rotation ``(d_out, d_in)``, rows orthonormal (a copy)."""
        if not self.is_trained:
            raise NotTrainedError("OPQMatrix is not trained: call train() first")
        return self._opq.matrix

    @A.setter
    def A(self, value: Any) -> None:
        self._opq.set_matrix(as_float_matrix(value, "A", self.d_in))

    def train(self, x: Any) -> None:
        """Learn the rotation on ``x`` ``(n, d)``, n >= 256."""
        xs = as_float_matrix(x, "x", self.d_in)
        self.pq_errors = self._opq.train(xs, make_progress(self.verbose, "OPQ"))

    def apply(self, x: Any) -> npt.NDArray[np.float32]:
        """``x A^T``: rotated vectors ``(n, d_out)``."""
        return self._opq.apply(as_float_matrix(x, "x", self.d_in, allow_1d=True, allow_empty=True))

    def reverse_transform(self, y: Any) -> npt.NDArray[np.float32]:
        """``y A``: back to the input space ``(n, d_in)`` (exact on the span of ``A``)."""
        return self._opq.reverse(
            as_float_matrix(y, "y", self.d_out, allow_1d=True, allow_empty=True)
        )

    @classmethod
    def _from_core(cls, core: Any) -> OPQMatrix:
        obj = cls.__new__(cls)
        obj._opq = core
        obj.verbose = False
        obj.pq_errors = []
        return obj

    def __repr__(self) -> str:
        return (
            f"OPQMatrix(d={self.d_in}, M={self.M}, d_out={self.d_out}, trained={self.is_trained})"
        )


class IndexPreTransform(Index):
    """An index over transformed vectors (faiss ``IndexPreTransform``): ``train``/``add``/
    ``search`` apply ``transform`` (an :class:`OPQMatrix`) first, then the wrapped index;
    search parameters and filters go to the wrapped index, whose ids it returns.

    Holds copies of ``transform`` and ``index`` (read them back with :attr:`transform` and
    :attr:`index`). ``train`` trains the transform if it is not trained yet, then the index on
    the transformed training set.
    """

    _kind = "IndexPreTransform"

    def __init__(self, transform: OPQMatrix, index: Index) -> None:
        if not isinstance(transform, OPQMatrix):
            raise DTypeError(
                f"transform must be a quanta.OPQMatrix, got {type(transform).__name__}"
            )
        if not isinstance(index, Index):
            raise DTypeError(
                f"index must be a quanta Index, got {type(index).__name__} (no metric)"
            )
        self._index = _core.IndexPreTransform(transform._opq, index._index)

    @property
    def transform(self) -> OPQMatrix:
        """A copy of the transform."""
        return OPQMatrix._from_core(self._index.transform)

    @property
    def index(self) -> Index:
        """A copy of the wrapped index."""
        return Index._from_core(self._index.index)

    def _repr_fields(self) -> str:
        return f"transform={self.transform!r}, index={type(self.index).__name__}"
