"""The journal of an on-the-fly run: one JSON line per checked (step, replica).

Every check of the committee writes a line ``{"step", "replica", "round", "std"}``
(``std``: the committee's max force standard deviation, eV/Angstrom); a check above the
threshold adds the GFN2-xTB label: ``"xtb": {"energy_eV", "forces_eV_A", "positions_A"}``
(or ``"xtb_error"`` when the SCF failed). The journal is the record of truth of the labels:

* a labelled line is written, flushed and ``fsync``-ed inside the force call, before the
  forces go back to the integrator, so it is on disk before any MD state that depends on it
  can be committed to the trajectory (:func:`pymotor.run_md` commits after each chunk);
* a resumed run re-runs the steps after the trajectory's last committed state; at a step the
  journal already holds, the recorded decision (and label) is used, not recomputed: no xTB
  call is repeated and the resumed trajectory is the uninterrupted one;
* a line cut short by a kill is dropped when the journal is opened (its step was never
  committed either).

The labels' SchNetPack database is derived from the journal (:mod:`pymotor.learn.loop`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

__all__ = ["Journal"]


class Journal:
    """Append-only JSON-lines file of checks and labels, indexed by (step, replica).
    ``read_only``: only read (a report on a running loop); a cut-off last line is skipped."""

    def __init__(self, path: str | os.PathLike, read_only: bool = False):
        self.path = Path(path)
        self.entries: dict[tuple[int, int], dict] = {}
        self.order: list[tuple[int, int]] = []
        self.n_labelled = 0
        if self.path.exists():
            data = self.path.read_bytes()
            end = data.rfind(b"\n") + 1
            if end < len(data) and not read_only:  # a line cut short by a kill: its step was never committed
                with open(self.path, "r+b") as fh:
                    fh.truncate(end)
                    fh.flush()
                    os.fsync(fh.fileno())
            for k, line in enumerate(data[:end].splitlines()):
                if not line.strip():
                    continue
                try:
                    e = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{self.path}: line {k + 1} is not valid JSON ({exc}); "
                                     "the journal is damaged") from None
                self._add(e)
        self._fh = None

    def _add(self, e: dict) -> None:
        key = (int(e["step"]), int(e["replica"]))
        old = self.entries.get(key)
        if old is None:
            self.order.append(key)
        self.n_labelled += ("xtb" in e) - (old is not None and "xtb" in old)
        self.entries[key] = e

    def get(self, step: int, replica: int) -> dict | None:
        return self.entries.get((int(step), int(replica)))

    def append(self, entry: dict, durable: bool = False) -> None:
        """Write one line (flushed to the OS at once; with ``durable`` also fsync-ed)."""
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self._fh.flush()
        if durable:
            os.fsync(self._fh.fileno())
        self._add(entry)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    # views ---------------------------------------------------------------------------
    def checks(self) -> list[dict]:
        """All checks, sorted by (step, replica)."""
        return [self.entries[k] for k in sorted(self.order)]

    def labels(self, max_step: int | None = None) -> list[dict]:
        """The labelled checks (with a GFN2-xTB label), sorted by (step, replica); with
        ``max_step`` only those at or before it."""
        return [e for e in self.checks() if "xtb" in e and (max_step is None or e["step"] <= max_step)]

    def n_labels(self, max_step: int | None = None) -> int:
        return len(self.labels(max_step))

    @staticmethod
    def label_arrays(labels: list[dict]):
        """(positions (L, N, 3) Angstrom, energies (L,) eV, forces (L, N, 3) eV/Angstrom)."""
        pos = np.array([e["xtb"]["positions_A"] for e in labels], dtype=float)
        en = np.array([e["xtb"]["energy_eV"] for e in labels], dtype=float)
        fo = np.array([e["xtb"]["forces_eV_A"] for e in labels], dtype=float)
        return pos, en, fo
