"""The validated parameters of an MD run, and how they are recorded in (and compared with)
an H5MD file's ``/pymotor`` attributes."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

from .. import validation
from ..h5md import attr_value

THERMOSTATS = ("nose-hoover", None)
BOND_CHANGE_ACTIONS = ("stop", "record", "ignore")

#: settings whose change makes a restarted run a different simulation; a restart that
#: changes one is refused unless the caller asks for the change (then it is recorded).
PHYSICS_KEYS = ("timestep_fs", "thermostat", "temperature_K", "tdamp_fs", "chain_length", "n_substeps",
                "suzuki_yoshida_order", "interval", "potential")


@dataclass(frozen=True)
class MDSettings:
    """Parameters of :func:`pymotor.run_md` (units in the names), validated on creation."""

    steps: int = 5000
    timestep_fs: float = 0.5
    temperature_K: float | None = 300.0
    thermostat: str | None = "nose-hoover"
    tdamp_fs: float = 100.0
    chain_length: int = 3
    n_substeps: int = 1
    suzuki_yoshida_order: int = 3
    seed: int | None = 0
    interval: int = 1
    chunk_steps: int = 100
    max_force_eV_per_A: float = 50.0
    n_dof: float | None = None
    torch_threads: int | None = 1
    on_bond_change: str = "record"

    def __post_init__(self):
        validation.number("steps", self.steps, integer=True, strict=False)
        if isinstance(self.timestep_fs, bool) or not isinstance(self.timestep_fs, (int, float)) \
                or not math.isfinite(self.timestep_fs) or self.timestep_fs == 0:
            raise ValueError(f"`timestep_fs` must be a non-zero finite number, got {self.timestep_fs!r}")
        validation.number("interval", self.interval, integer=True)
        validation.number("chunk_steps", self.chunk_steps, integer=True)
        validation.number("max_force_eV_per_A", self.max_force_eV_per_A)
        if self.thermostat not in THERMOSTATS:
            raise ValueError(f"`thermostat` must be one of {THERMOSTATS}, got {self.thermostat!r}")
        if self.thermostat is not None:
            if self.temperature_K is None:
                raise ValueError("`temperature_K` is required with a thermostat")
            validation.number("tdamp_fs", self.tdamp_fs)
            validation.number("chain_length", self.chain_length, integer=True)
            validation.number("n_substeps", self.n_substeps, integer=True)
            if self.suzuki_yoshida_order not in (1, 3, 5, 7):
                raise ValueError(f"`suzuki_yoshida_order` must be 1, 3, 5 or 7, got {self.suzuki_yoshida_order!r}")
        validation.number("temperature_K", self.temperature_K, allow_none=True)
        validation.number("n_dof", self.n_dof, allow_none=True)
        validation.number("torch_threads", self.torch_threads, integer=True, allow_none=True)
        if self.seed is not None:
            validation.number("seed", self.seed, integer=True, minimum=0, strict=False)
        if self.on_bond_change not in BOND_CHANGE_ACTIONS:
            raise ValueError(f"`on_bond_change` must be one of {BOND_CHANGE_ACTIONS}, got {self.on_bond_change!r}")

    @property
    def chunk(self) -> int:
        """Steps per C++ call: chunk_steps rounded up to a multiple of interval."""
        return int(math.ceil(self.chunk_steps / self.interval) * self.interval)

    def attrs(self, n_dof: float, potential: dict) -> dict:
        """The ``/pymotor`` attributes of the H5MD file."""
        return dict(timestep_fs=float(self.timestep_fs), thermostat=self.thermostat or "none",
                    temperature_K=float(self.temperature_K) if self.temperature_K is not None else float("nan"),
                    tdamp_fs=float(self.tdamp_fs), chain_length=int(self.chain_length),
                    n_substeps=int(self.n_substeps), suzuki_yoshida_order=int(self.suzuki_yoshida_order),
                    seed=-1 if self.seed is None else int(self.seed), interval=int(self.interval),
                    n_dof=float(n_dof), potential=potential, on_bond_change=self.on_bond_change)

    def replace(self, **changes) -> "MDSettings":
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d.update(changes)
        return MDSettings(**d)


def differences(old: dict, new: dict) -> dict:
    """Physics settings that differ between a file's attributes and a new run's:
    ``{key: (old, new)}``. The model counts as changed when its file content (sha256) or,
    without one, its description differs; a change of evaluator for the same file does not."""
    out = {}
    for k in PHYSICS_KEYS:
        if k not in old:  # files from before the attribute existed
            continue
        a, b = attr_value(old[k]), attr_value(new[k])
        if k == "potential":
            ia, ib = _model_identity(a), _model_identity(b)
            if isinstance(a, dict) and isinstance(b, dict) and ia[0] == ib[0] == "params":
                common = set(a) & set(b)  # keys an older file did not record are not compared
                ia, ib = _model_identity({k: a[k] for k in common}), _model_identity({k: b[k] for k in common})
            if ia != ib:
                out[k] = (a, b)
        elif k == "thermostat" and a != b:
            out[k] = (a, b)
        elif k == "temperature_K" and (old.get("thermostat") in (None, "none", b"none")
                                       and new.get("thermostat") in (None, "none")):
            continue  # NVE: the temperature only set the start velocities
        elif isinstance(b, float) or isinstance(a, float):
            if not (math.isclose(float(a), float(b), rel_tol=1e-12) or (math.isnan(float(a)) and math.isnan(float(b)))):
                out[k] = (a, b)
        elif a != b:
            out[k] = (a, b)
    return out


def _model_identity(p):
    if isinstance(p, dict):
        if p.get("sha256"):
            return ("sha256", p["sha256"])
        if p.get("path"):
            return ("path", str(p["path"]))
        return ("params",) + tuple(sorted((k, str(v)) for k, v in p.items()))
    return p
