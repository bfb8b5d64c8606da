"""Potentials for pymotor's C++ engine.

* :func:`load_model` reads a TorchScript model in SchNetPack's deployed format (the
  format of ``spkdeploy`` and of ``pymotor export``) with its cutoff and units;
* :class:`HarmonicPotential` and :class:`LennardJonesPotential` are analytic references;
* any ASE calculator (for example tblite's GFN2-xTB) is driven through a callback, so that
  NN and xTB trajectories differ only in the potential.

All energies are in eV and forces in eV/Angstrom at this interface.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from . import _core
from .units import energy_unit_in_eV, length_unit_in_A

#: Verlet-list skin (Angstrom) used with model cutoffs: the list is rebuilt only when an
#: atom has moved more than half of it.
DEFAULT_SKIN_A = 1.0


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def energy_offset(atomrefs: dict, mean_per_atom: float, atomic_numbers: Sequence[int]) -> float:
    """Energy offset of one molecule in the model's energy unit, in float64:
    sum_i atomrefs[Z_i] + n_atoms * mean_per_atom (the convention of pymotor's export
    metadata). ``atomrefs`` maps Z (int or str) to energies; empty: no per-element part.
    An element without an atomref, when there are atomrefs, is an error."""
    refs = {int(k): float(v) for k, v in (atomrefs or {}).items()}
    z = [int(v) for v in np.asarray(atomic_numbers).ravel()]
    missing = sorted(set(z) - set(refs)) if refs else []
    if missing:
        raise ValueError(f"`atomic_numbers`: no atomref (energy offset) for element(s) Z = {missing}; "
                         f"the model has atomrefs for Z = {sorted(refs)}")
    return float(sum(refs[v] for v in z) if refs else 0.0) + len(z) * float(mean_per_atom)


class Model:
    """A deployed TorchScript potential with its metadata.

    Parameters
    ----------
    path
        TorchScript file with ``_extra_files`` ``cutoff`` (and, from ``pymotor export``,
        ``metadata``: units, elements, energy offset, model card).
    energy_unit, length_unit
        Units of a plain ``spkdeploy`` file, which stores only the cutoff (for example
        ``"kcal/mol"`` and ``"Angstrom"``). When the file states its units these must agree.
    device
        ``"cpu"`` or ``"cuda"``; default: CUDA when torch has it.
    jit_optimize
        Freeze the module and run TorchScript's optimising (profiling) graph executor.
        Default: on CUDA only; on CPU the plain interpreter measured 12-20 % faster for
        SchNet (BENCHMARKS.md).
    """

    def __init__(self, path: str | os.PathLike, energy_unit: str | None = None,
                 length_unit: str | None = None, device: str | None = None,
                 jit_optimize: bool | None = None):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"`path`: model file {str(path)!r} does not exist")
        self.path = path
        self.device = device or _default_device()
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"`device` must be 'cpu' or 'cuda', got {self.device!r}")
        try:
            if jit_optimize is None:
                jit_optimize = self.device.startswith("cuda")
            self._module = _core.TorchModel(str(path), self.device, bool(jit_optimize))
        except RuntimeError as exc:
            raise ValueError(f"`path`: {path} is not a loadable TorchScript model ({exc})") from exc
        extra = {k: v.decode() for k, v in self._module.extra_files.items()}
        self.metadata: dict[str, Any] = {}
        if extra.get("metadata"):
            try:
                self.metadata = json.loads(extra["metadata"])
            except json.JSONDecodeError as exc:
                raise ValueError(f"`path`: {path} has corrupt metadata JSON ({exc})") from exc
        cutoff = self.metadata.get("cutoff", extra.get("cutoff") or None)
        if cutoff is None:
            raise ValueError(
                f"`path`: {path} has no cutoff in its metadata; deploy it with SchNetPack's "
                "spkdeploy or `pymotor export`, which store `cutoff` in the TorchScript extra files"
            )
        self.energy_unit = self._unit("energy_unit", energy_unit)
        self.length_unit = self._unit("length_unit", length_unit)
        self.energy_unit_eV = energy_unit_in_eV(self.energy_unit)
        self.length_unit_A = length_unit_in_A(self.length_unit)
        self.cutoff_A = float(cutoff) * self.length_unit_A
        self.elements = sorted(int(z) for z in self.metadata.get("elements", [])) or None
        offset = self.metadata.get("energy_offset") or {}
        self._atomrefs = {int(z): float(e) for z, e in (offset.get("atomrefs") or {}).items()}
        self._mean_per_atom = float(offset.get("mean_per_atom", 0.0))

    def _unit(self, key: str, given: str | None) -> str:
        stored = self.metadata.get(key)
        if stored is None and given is None:
            raise ValueError(
                f"`path`: {self.path} does not state its {key.replace('_', ' ')}; pass "
                f"`{key}=` (e.g. load_model(path, energy_unit='kcal/mol', length_unit='Angstrom'))"
            )
        if stored is not None and given is not None and stored != given:
            raise ValueError(f"`{key}`={given!r} contradicts the model file, which states {stored!r}")
        return given if given is not None else stored

    # ------------------------------------------------------------------------------
    @property
    def card(self) -> dict:
        """The model card stored with the file (data set, hyperparameters, metrics)."""
        return self.metadata.get("card", {})

    def check_elements(self, atomic_numbers: Sequence[int]) -> None:
        """Raise ValueError if an element was not in the model's training data."""
        if self.elements is None:
            return
        unknown = sorted(set(int(z) for z in atomic_numbers) - set(self.elements))
        if unknown:
            from ase.data import chemical_symbols

            raise ValueError(
                f"`atoms` contains {[chemical_symbols[z] for z in unknown]}, which the model "
                f"{self.path.name} was not trained on (it knows "
                f"{[chemical_symbols[z] for z in self.elements]})"
            )

    def energy_offset_eV(self, atomic_numbers: Sequence[int]) -> float:
        """The energy offset kept out of the float32 model, in eV (added in float64)."""
        return energy_offset(self._atomrefs, self._mean_per_atom, atomic_numbers) * self.energy_unit_eV

    def potential(self, atomic_numbers: Sequence[int], skin_A: float = DEFAULT_SKIN_A):
        """A C++ potential of this model for molecules with these atomic numbers."""
        z = [int(v) for v in atomic_numbers]
        self.check_elements(z)
        return _core.TorchPotential(self._module, z, self.cutoff_A, skin_A, self.length_unit_A,
                                    self.energy_unit_eV, self.energy_offset_eV(z))

    def compute(self, atoms: Atoms | Sequence[Atoms]):
        """Energy (eV) and forces (eV/Angstrom) of one molecule or a batch of replicas."""
        batch = [atoms] if isinstance(atoms, Atoms) else list(atoms)
        pos = np.stack([a.get_positions() for a in batch])
        e, f = self.potential(batch[0].numbers).compute(pos)
        return (e[0], f[0]) if isinstance(atoms, Atoms) else (e, f)

    def as_ase_calculator(self) -> "ModelCalculator":
        """This model as an ASE calculator (single points, optimisation, ASE's MD)."""
        return ModelCalculator(self)

    def __repr__(self) -> str:
        return (f"Model({str(self.path)!r}, cutoff_A={self.cutoff_A:g}, energy_unit={self.energy_unit!r}, "
                f"length_unit={self.length_unit!r}, device={self.device!r})")


def load_model(path: str | os.PathLike, energy_unit: str | None = None,
               length_unit: str | None = None, device: str | None = None,
               backend: str = "torchscript", **fast_options) -> Model:
    """Load a deployed TorchScript potential; see :class:`Model`.

    ``backend`` chooses the evaluator: ``"torchscript"`` (default) runs the file through
    libtorch; ``"fast"`` reads the weights of a SchNetPack SchNet and evaluates it with
    pymotor's C++ SchNet kernels (tabulated filters, analytic forces; CPU; see
    :class:`pymotor.fast_schnet.FastSchNetModel`, which takes ``fast_options`` such as
    ``dtype="float64"`` or ``n_threads``) and raises ``UnsupportedModelError`` (a ValueError)
    for other architectures; ``"auto"`` takes the fast one when the model is a SchNet it can
    read (and the device is the CPU), else the TorchScript one.
    """
    if backend not in ("torchscript", "fast", "auto"):
        raise ValueError(f"`backend` must be 'torchscript', 'fast' or 'auto', got {backend!r}")
    if backend != "torchscript":
        from .fast_schnet import FastSchNetModel, UnsupportedModelError

        if backend == "fast":
            return FastSchNetModel(path, energy_unit=energy_unit, length_unit=length_unit, device=device,
                                   **fast_options)
        if (device or _default_device()) == "cpu":
            try:
                return FastSchNetModel(path, energy_unit=energy_unit, length_unit=length_unit, device=device,
                                       **fast_options)
            except UnsupportedModelError:
                pass
    elif fast_options:
        raise TypeError(f"load_model: {sorted(fast_options)} are options of backend='fast' only")
    return Model(path, energy_unit=energy_unit, length_unit=length_unit, device=device)


class ModelCalculator(Calculator):
    """ASE calculator of a pymotor :class:`Model` (energy in eV, forces in eV/Angstrom),
    evaluated by the same C++ code as :func:`pymotor.run_md`."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, model: Model, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self._pot = None
        self._numbers = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if self._numbers is None or not np.array_equal(self._numbers, self.atoms.numbers):
            self._numbers = self.atoms.numbers.copy()
            self._pot = self.model.potential(self._numbers)
        e, f = self._pot.compute(self.atoms.get_positions()[None])
        self.results = {"energy": float(e[0]), "free_energy": float(e[0]), "forces": f[0]}


class HarmonicPotential:
    """E = sum_i k/2 |r_i - c_i|^2: isotropic oscillators tethered to ``centers_A``.

    ``k_eV_per_A2`` is the force constant in eV/Angstrom^2; the angular frequency of atom i
    is sqrt(k/m_i). An analytic reference for integrator tests."""

    def __init__(self, k_eV_per_A2: float, centers_A):
        self.k_eV_per_A2 = float(k_eV_per_A2)
        self.centers_A = np.ascontiguousarray(centers_A, dtype=float)
        if self.k_eV_per_A2 <= 0:
            raise ValueError(f"`k_eV_per_A2` must be positive, got {k_eV_per_A2}")
        if self.centers_A.ndim != 2 or self.centers_A.shape[1] != 3:
            raise ValueError(f"`centers_A` must be an (n_atoms, 3) array, got {self.centers_A.shape}")

    def potential(self, atomic_numbers):
        if len(atomic_numbers) != len(self.centers_A):
            raise ValueError(f"`atoms` has {len(atomic_numbers)} atoms but the harmonic potential "
                             f"has {len(self.centers_A)} centres")
        return _core.HarmonicPotential(self.k_eV_per_A2, self.centers_A)


class LennardJonesPotential:
    """Lennard-Jones 12-6 (``epsilon_eV``, ``sigma_A``), truncated and shifted at ``cutoff_A``,
    on a Verlet list with ``skin_A``."""

    def __init__(self, epsilon_eV: float, sigma_A: float, cutoff_A: float, skin_A: float = 0.5):
        for name, v in (("epsilon_eV", epsilon_eV), ("sigma_A", sigma_A), ("cutoff_A", cutoff_A)):
            if not v > 0:
                raise ValueError(f"`{name}` must be positive, got {v}")
        if not skin_A >= 0:
            raise ValueError(f"`skin_A` must be >= 0, got {skin_A}")
        self.args = (float(epsilon_eV), float(sigma_A), float(cutoff_A), float(skin_A))

    def potential(self, atomic_numbers):
        return _core.LennardJonesPotential(*self.args)


def ase_callback_potential(calc: Calculator, template: Atoms):
    """A C++ potential that asks the ASE calculator ``calc`` for energies and forces.

    Each replica is evaluated on its own copy of ``template`` (so a calculator that reuses
    its previous wavefunction, such as tblite's, keeps doing so along a trajectory)."""
    copies: list[Atoms] = []

    def forces(positions: np.ndarray):
        while len(copies) < len(positions):
            a = template.copy()
            # one calculator per replica: a fresh instance with the same parameters
            a.calc = calc if not copies else type(calc)(**calc.parameters)
            copies.append(a)
        energies = np.empty(len(positions))
        forces_out = np.empty_like(positions)
        for r, a in enumerate(copies[: len(positions)]):
            a.set_positions(positions[r])
            energies[r] = a.get_potential_energy()
            forces_out[r] = a.get_forces()
        return energies, forces_out

    name = type(calc).__name__
    return _core.CallbackPotential(forces, name)


def make_potential(model: Any, template: Atoms):
    """A C++ potential from a path, a :class:`Model`, an analytic potential or an ASE calculator."""
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    if isinstance(model, Model):
        return model.potential(template.numbers)
    if isinstance(model, (HarmonicPotential, LennardJonesPotential)):
        return model.potential(template.numbers)
    if isinstance(model, _core.Potential):
        return model
    if isinstance(model, Calculator) or hasattr(model, "get_potential_energy"):
        return ase_callback_potential(model, template)
    raise TypeError(
        "`model` must be a model path, a pymotor.Model, an analytic pymotor potential or an "
        f"ASE calculator, got {type(model).__name__}"
    )
