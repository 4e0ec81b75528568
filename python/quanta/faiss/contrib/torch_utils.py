"""``import quanta.faiss.contrib.torch_utils`` (faiss ``contrib.torch_utils``): from then on the
quanta.faiss indexes return torch tensors (on the input's device) when given torch tensors, and
``reconstruct``/``reconstruct_n`` return CPU tensors; numpy in still gives numpy out.

quanta reads torch tensors itself (CPU tensors without a copy), so inputs need no patching;
this module only switches the outputs. torch is imported here, not by ``quanta.faiss``.
"""

from __future__ import annotations

import importlib

from .._indexes import _TORCH

importlib.import_module("torch")  # fail at import, as faiss's module does, without torch
_TORCH[0] = True
