"""``backend="fast"``: pymotor's hand-written C++ evaluator for the file's architecture.

The concrete evaluators are ``fast-schnet`` (:mod:`~pymotor.backends.fast_schnet`) and
``fast-painn`` (:mod:`~pymotor.backends.fast_painn`); this entry picks the one that reads
the file (the architecture named in pymotor's metadata first, otherwise each in turn), so a
user asks for "the fast evaluator" without knowing the architecture. The model records the
concrete backend (``model.backend``). A file that none reads raises
:class:`~pymotor.backends.base.UnsupportedModelError` with each evaluator's reason.
"""
from __future__ import annotations

import os

from ..modelfile import ModelFile
from .base import UnsupportedModelError

__all__ = ["FAST_BACKENDS", "load_fast"]

#: architecture (pymotor metadata) -> concrete fast backend
FAST_BACKENDS = {"schnet": "fast-schnet", "painn": "fast-painn"}


def load_fast(path: str | os.PathLike | ModelFile, energy_unit: str | None = None,
              length_unit: str | None = None, device: str | None = None, **options):
    """The fast C++ evaluator of `path` (SchNet or PaiNN); ``options`` as for those backends
    (``dtype``, ``n_intervals``, ``tolerance``, ``n_threads``, ``check``)."""
    from . import backend_class

    file = path if isinstance(path, ModelFile) else ModelFile(path, energy_unit, length_unit)
    if file.format != "torchscript":
        raise UnsupportedModelError(f"the fast evaluators read the weights of TorchScript files; {file.path} is a "
                                    f"{file.format} file (use backend='{file.format}')")
    order = list(FAST_BACKENDS.values())
    named = FAST_BACKENDS.get(str(file.architecture).lower())
    if named is not None:
        order.remove(named)
        order.insert(0, named)
    reasons = []
    for name in order:
        try:
            return backend_class(name)(file, device=device, **options)
        except UnsupportedModelError as exc:
            reasons.append(f"{name}: {exc}")
    raise UnsupportedModelError(
        f"no fast evaluator reads {file.path} (architecture {file.architecture!r}; the fast backend "
        f"supports {', '.join(FAST_BACKENDS)}): " + "; ".join(reasons))
