"""The error of an MD run that stopped."""
from __future__ import annotations

from pathlib import Path


class MDError(RuntimeError):
    """An MD run stopped; the frames before it are saved.

    Attributes
    ----------
    step : int or None
        The MD step that failed (None when the start geometry is already bad).
    replica, atom : int or None
        The replica and atom at fault, where one is (a non-finite value, a force above the
        limit, a bond that broke or formed).
    reason : str
        ``"potential"`` (the potential raised: the original exception is re-raised with this
        error as its ``__cause__``), ``"non-finite"``, ``"force-limit"``, ``"bond-change"``
        or ``"start"``.
    paths : list of Path
        Trajectory files that hold the frames before the failure (and the restart state).
    """

    def __init__(self, message: str, step: int | None = None, *, replica: int | None = None,
                 atom: int | None = None, reason: str = "", paths=()):
        super().__init__(message)
        self.step = step
        self.replica = replica
        self.atom = atom
        self.reason = reason
        self.paths = [Path(p) for p in paths]
