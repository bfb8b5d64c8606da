"""The H5MD schema of pymotor's trajectory files: one table for the writer
(:class:`pymotor.trajectory.H5MDWriter`) and both readers (:func:`pymotor.read_trajectory`,
:class:`pymotor.analysis.stream.H5MDReader`). See docs/ARCHITECTURE.md for the layout."""
from __future__ import annotations

import json

import numpy as np

from .units import EV_IN_KJ_PER_MOL

#: the particle group pymotor writes
PARTICLES = "particles/trajectory"
#: per-atom time series: attribute name -> (H5MD element, unit written, factor pymotor -> file)
VECTORS = {"positions": ("position", "Angstrom", 1.0),
           "velocities": ("velocity", "Angstrom fs-1", 1.0),
           "forces": ("force", "kJ mol-1 Angstrom-1", EV_IN_KJ_PER_MOL)}
#: per-frame observables (``/observables/<name>``) and their units
SCALARS = {"potential_energy": "eV", "kinetic_energy": "eV", "conserved_energy": "eV", "temperature": "K"}
#: pymotor's restart-state and metadata group
META = "pymotor"

#: units a reader accepts (files of other H5MD writers): unit attribute -> factor to
#: pymotor's units (Angstrom, Angstrom/fs, eV/Angstrom, fs)
READ_UNITS = {
    "position": {"Angstrom": 1.0, "nm": 10.0},
    "velocity": {"Angstrom fs-1": 1.0, "Angstrom/fs": 1.0, "nm ps-1": 0.01, "Angstrom ps-1": 1e-3},
    "force": {"eV Angstrom-1": 1.0, "eV/Angstrom": 1.0, "kJ mol-1 Angstrom-1": 1.0 / EV_IN_KJ_PER_MOL,
              "kJ mol-1 nm-1": 0.1 / EV_IN_KJ_PER_MOL},
    "time": {"fs": 1.0, "ps": 1000.0},
}
for _name, (_element, _unit, _factor) in VECTORS.items():  # what we write we can read
    assert abs(READ_UNITS[_element][_unit] * _factor - 1.0) < 1e-12


def attr_value(v):
    """A ``/pymotor`` attribute as pymotor wrote it: bytes -> str, a JSON object or list -> its
    value, a numpy scalar -> a Python number; anything else unchanged."""
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, str) and v[:1] in "{[":
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v.item() if isinstance(v, np.generic) else v


def position_steps(path) -> int | None:
    """Step of the last frame in a pymotor file (None if absent or unreadable)."""
    import h5py

    try:
        with h5py.File(path, "r", locking=False) as f:
            steps = f[f"{PARTICLES}/position/step"]
            return int(steps[-1]) if len(steps) else None
    except (OSError, KeyError):
        return None
