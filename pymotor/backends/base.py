"""What every neural-network backend offers: the file's contract plus a C++ potential."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from ..modelfile import ModelFile

#: Verlet-list skin (Angstrom) used with model cutoffs: the list is rebuilt only when an
#: atom has moved more than half of it.
DEFAULT_SKIN_A = 1.0


class NNModel:
    """A deployed potential evaluated by one backend.

    Subclasses set ``backend`` (the registry name) and implement :meth:`potential`; an
    optional ``supports(file)`` class method raises :class:`UnsupportedModelError` for files
    the backend cannot evaluate (``backend="auto"`` then tries the next one). The file's
    contract (units, cutoff, elements, offset, card) is a :class:`~pymotor.modelfile.ModelFile`
    in ``self.file``; its fields are also attributes of the model."""

    backend = "base"

    def __init__(self, file: ModelFile):
        self.file = file

    # the contract, delegated ---------------------------------------------------------
    path = property(lambda self: self.file.path)
    metadata = property(lambda self: self.file.metadata)
    cutoff_A = property(lambda self: self.file.cutoff_A)
    energy_unit = property(lambda self: self.file.energy_unit)
    length_unit = property(lambda self: self.file.length_unit)
    energy_unit_eV = property(lambda self: self.file.energy_unit_eV)
    length_unit_A = property(lambda self: self.file.length_unit_A)
    elements = property(lambda self: self.file.elements)
    card = property(lambda self: self.file.card)

    def check_elements(self, atomic_numbers: Sequence[int]) -> None:
        self.file.check_elements(atomic_numbers)

    def energy_offset_eV(self, atomic_numbers: Sequence[int]) -> float:
        return self.file.energy_offset_eV(atomic_numbers)

    # evaluation ----------------------------------------------------------------------
    def potential(self, atomic_numbers: Sequence[int], skin_A: float = DEFAULT_SKIN_A):
        """A C++ potential of this model for molecules with these atomic numbers."""
        raise NotImplementedError

    def compute(self, atoms: Atoms | Sequence[Atoms]):
        """Energy (eV) and forces (eV/Angstrom) of one molecule or a batch of replicas."""
        batch = [atoms] if isinstance(atoms, Atoms) else list(atoms)
        pos = np.stack([a.get_positions() for a in batch])
        e, f = self.potential(batch[0].numbers).compute(pos)
        return (e[0], f[0]) if isinstance(atoms, Atoms) else (e, f)

    def as_ase_calculator(self) -> "ModelCalculator":
        """This model as an ASE calculator (single points, optimisation, ASE's MD)."""
        return ModelCalculator(self)

    def describe(self) -> dict:
        """How a run records this potential: backend, file, its sha256, cutoff and unit."""
        return {"kind": self.backend, "path": str(self.path), "sha256": self.file.sha256(),
                "architecture": self.file.architecture, "cutoff_A": self.cutoff_A,
                "energy_unit": self.energy_unit}


class LibtorchModel(NNModel):
    """A backend whose network libtorch runs from C++ (a TorchScript module or an AOTInductor
    package, ``self._module``, on ``self.device``), driven by ``_core.TorchPotential``: the
    same neighbour list, input adapter, units and float64 energy offset for both."""

    device = "cpu"
    _module = None

    @staticmethod
    def check_device(device: str) -> str:
        if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
            raise ValueError(f"`device` must be 'cpu' or 'cuda[:i]', got {device!r}")
        return device

    def potential(self, atomic_numbers: Sequence[int], skin_A: float = DEFAULT_SKIN_A):
        from .. import _core

        z = [int(v) for v in atomic_numbers]
        self.check_elements(z)
        return _core.TorchPotential(self._module, z, self.cutoff_A, skin_A, self.length_unit_A,
                                    self.energy_unit_eV, self.energy_offset_eV(z))

    def describe(self) -> dict:
        return dict(super().describe(), device=self.device)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, cutoff_A={self.cutoff_A:g}, "
                f"energy_unit={self.energy_unit!r}, length_unit={self.length_unit!r}, device={self.device!r})")


class UnsupportedModelError(ValueError):
    """The model file holds an architecture or variant this backend cannot evaluate."""


class ModelCalculator(Calculator):
    """ASE calculator of a pymotor model (energy in eV, forces in eV/Angstrom), evaluated
    by the same C++ code as :func:`pymotor.run_md`."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, model: NNModel, **kwargs):
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
