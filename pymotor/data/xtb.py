"""GFN2-xTB as an in-process ASE calculator, with two interchangeable backends.

* ``"tblite"`` (default): ``tblite.ase.TBLite(method="GFN2-xTB", verbosity=0)``.
* ``"xtb-python"``: the xtb-python API (``xtb.interface.Calculator``, muted), which
  bundles xtb 6.5.

Both give energies in eV and forces in eV/Angstrom; for the same CPNX geometry they agree
to ~1e-6 eV and ~2e-4 eV/Angstrom. Do not mix the two backends in one dataset: the
backend name and version are part of :meth:`GFN2xTB.metadata`.

Input checks (errors name the argument): elements outside H..Rn (Z 1-86, the range of the
GFN2-xTB parametrisation), a ``charge`` that is not an integer or leaves no electrons, a
``spin`` (number of unpaired electrons, 2S) whose parity differs from the electron count.
An SCF that does not converge is retried (fresh start guess, then more iterations and a
damped mixer); if it still fails, :class:`SCFConvergenceError` names the force evaluation.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _pkg_version

import numpy as np
from ase.calculators.calculator import Calculator, CalculationFailed, all_changes

__all__ = [
    "BACKENDS",
    "MAX_Z",
    "XTBError",
    "SCFConvergenceError",
    "GFN2xTB",
    "make_calculator",
    "check_system",
    "backend_version",
    "backend_available",
]

BACKENDS = ("tblite", "xtb-python")
#: heaviest element in the GFN2-xTB parametrisation (radon)
MAX_Z = 86

_HARTREE_EV = 27.211386245988  # CODATA 2018, as ase.units.Hartree
_BOHR_A = 0.529177210903


class XTBError(RuntimeError):
    """A GFN2-xTB calculation failed."""


class SCFConvergenceError(XTBError):
    """The GFN2-xTB SCF did not converge, also after the retries."""


def _module_for(backend: str) -> str:
    return {"tblite": "tblite", "xtb-python": "xtb"}[backend]


def backend_version(backend: str) -> str:
    """Installed version of a backend's Python package (``"tblite"`` or ``"xtb-python"``)."""
    _check_backend(backend)
    try:
        return _pkg_version(_module_for(backend))
    except PackageNotFoundError:
        return "not installed"


def backend_available(backend: str) -> bool:
    """True when the backend's package can be imported."""
    _check_backend(backend)
    import importlib.util

    return importlib.util.find_spec(_module_for(backend)) is not None


def _check_backend(backend) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}")


def check_system(numbers, charge=0, spin=None) -> int:
    """Validate a molecule for GFN2-xTB; returns the number of unpaired electrons.

    Parameters
    ----------
    numbers : array of int
        Atomic numbers.
    charge : int
        Total charge (e).
    spin : int or None
        Number of unpaired electrons (2S, xtb's ``--uhf``); None picks 0 for an even and 1
        for an odd number of electrons.
    """
    from ase.data import chemical_symbols

    z = np.asarray(numbers)
    if z.ndim != 1 or len(z) == 0:
        raise ValueError(f"`atoms` must contain at least one atom, got atomic numbers of shape {z.shape}")
    bad = sorted({int(x) for x in z if x < 1 or x > MAX_Z})
    if bad:
        names = ", ".join(
            f"{chemical_symbols[b] if 0 <= b < len(chemical_symbols) else '?'} (Z={b})" for b in bad)
        raise ValueError(f"`atoms` contains {names}: GFN2-xTB treats only Z = 1..{MAX_Z} (H..Rn)")
    if isinstance(charge, (bool, np.bool_)) or not float(charge).is_integer():
        raise ValueError(f"`charge` must be an integer, got {charge!r}")
    charge = int(charge)
    n_el = int(z.sum()) - charge
    if n_el <= 0:
        raise ValueError(f"`charge`={charge} leaves {n_el} electrons for {int(z.sum())} protons")
    if spin is None:
        return n_el % 2
    if isinstance(spin, (bool, np.bool_)) or not float(spin).is_integer() or spin < 0:
        raise ValueError(f"`spin` (number of unpaired electrons, 2S) must be an integer >= 0, got {spin!r}")
    spin = int(spin)
    if spin % 2 != n_el % 2:
        raise ValueError(
            f"`spin`={spin} unpaired electrons is impossible with {n_el} electrons "
            f"(charge {charge}): the parity must match, e.g. spin={n_el % 2}")
    if spin > n_el:
        raise ValueError(f"`spin`={spin} exceeds the number of electrons ({n_el})")
    return spin


class GFN2xTB(Calculator):
    """ASE calculator for GFN2-xTB through tblite or xtb-python, with SCF retries.

    Parameters (keywords; also ``calc.parameters``)
    ----------
    backend : "tblite" | "xtb-python"
    charge : int, total charge (e)
    spin : int or None, unpaired electrons (2S); None: 0 or 1 by electron-count parity
    accuracy : float, xTB accuracy (1.0 default)
    electronic_temperature : float, Fermi smearing temperature in K (300 default)
    max_iterations : int, SCF iterations per attempt (250 default)
    retries : int, extra attempts after a failed SCF (2 default)
    reuse_wavefunction : bool, start each SCF from the previous call's wavefunction
        (default True, ~1.6x faster for CPNX). False starts every SCF from the same guess,
        so results do not depend on the call history: a restarted MD run then repeats an
        uninterrupted one bit for bit (with True they agree to SCF precision, ~1e-5 eV/A).
    """

    implemented_properties = ["energy", "free_energy", "forces"]
    default_parameters = dict(backend="tblite", charge=0, spin=None, accuracy=1.0,
                              electronic_temperature=300.0, max_iterations=250, retries=2,
                              reuse_wavefunction=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        _check_backend(self.parameters.backend)
        if not backend_available(self.parameters.backend):
            raise ImportError(
                f"`backend`={self.parameters.backend!r} needs the Python package "
                f"{_module_for(self.parameters.backend)!r} (pip install "
                f"{_module_for(self.parameters.backend)})")
        if isinstance(self.parameters.charge, (bool, np.bool_)) or \
                not float(self.parameters.charge).is_integer():
            raise ValueError(f"`charge` must be an integer, got {self.parameters.charge!r}")
        self._impl = None
        self._impl_key = None
        self._checked_numbers = None
        self.n_evaluations = 0
        self.n_retries = 0

    # -- metadata ---------------------------------------------------------------------
    @property
    def backend(self) -> str:
        return self.parameters.backend

    @property
    def version(self) -> str:
        return backend_version(self.backend)

    def metadata(self) -> dict:
        """``{"method", "backend", "version", "charge", "spin", ...}`` for dataset metadata."""
        p = self.parameters
        return {"method": "GFN2-xTB", "backend": p.backend, "version": self.version,
                "charge": int(p.charge), "spin": None if p.spin is None else int(p.spin),
                "accuracy": float(p.accuracy),
                "electronic_temperature_K": float(p.electronic_temperature),
                "max_iterations": int(p.max_iterations),
                "reuse_wavefunction": bool(p.reuse_wavefunction)}

    # -- ASE interface ----------------------------------------------------------------
    def reset(self):
        super().reset()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        numbers = self.atoms.get_atomic_numbers()
        if self._checked_numbers is None or not np.array_equal(numbers, self._checked_numbers):
            uhf = check_system(numbers, self.parameters.charge, self.parameters.spin)
            self._uhf = uhf
            self._checked_numbers = numbers.copy()
            self._impl = None
        if self.atoms.pbc.any():
            raise ValueError("`atoms` must be an isolated molecule (pbc=False) for pymotor's GFN2-xTB")
        self.n_evaluations += 1
        last_error = None
        attempts = 1 + int(self.parameters.retries)
        for attempt in range(attempts):
            if attempt > 0:
                self.n_retries += 1
                self._impl = None  # fresh start guess instead of the previous wavefunction
            try:
                energy, forces = self._evaluate(attempt)
            except (CalculationFailed, RuntimeError) as exc:
                last_error = exc
                continue
            if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
                last_error = XTBError("non-finite energy or forces")
                continue
            self.results["energy"] = energy
            self.results["free_energy"] = energy
            self.results["forces"] = forces
            return
        self._impl = None
        tried = ["previous wavefunction" if self.n_evaluations > 1 else "start guess"]
        if attempts > 1:
            tried.append("a fresh start guess")
        if attempts > 2:
            tried.append(f"{4 * int(self.parameters.max_iterations)} SCF iterations")
        raise SCFConvergenceError(
            f"GFN2-xTB ({self.backend} {self.version}) failed at force evaluation "
            f"{self.n_evaluations} after {attempts} attempt(s) ({', '.join(tried)}): {last_error}")

    # -- backends ---------------------------------------------------------------------
    def _evaluate(self, attempt: int):
        p = self.parameters
        max_iter = int(p.max_iterations) * (4 if attempt >= 2 else 1)
        key = (attempt >= 2,)
        if self._impl is None or self._impl_key != key:
            self._impl = (self._make_tblite if p.backend == "tblite" else self._make_xtb)(
                max_iter, damped=attempt >= 2)
            self._impl_key = key
        return self._impl(self.atoms)

    def _make_tblite(self, max_iter: int, damped: bool):
        from tblite.ase import TBLite

        p = self.parameters
        kw = dict(method="GFN2-xTB", charge=int(p.charge), multiplicity=int(self._uhf) + 1,
                  accuracy=float(p.accuracy), electronic_temperature=float(p.electronic_temperature),
                  max_iterations=max_iter, verbosity=0)
        if damped:
            kw["mixer_damping"] = 0.2
        calc = TBLite(**kw)

        # one private Atoms (no initial charges/magmoms: charge and spin are parameters);
        # only its positions change, so tblite reuses the previous wavefunction
        own = self.atoms.copy()
        own.set_initial_charges(None)
        own.set_initial_magnetic_moments(None)
        own.calc = calc

        reuse = bool(p.reuse_wavefunction)
        if not reuse:
            kw["cache_api"] = False  # reset() then drops the wavefunction
            own.calc = calc = TBLite(**kw)

        def run(atoms):
            if not reuse:
                calc.reset()
            own.set_positions(atoms.get_positions())
            return float(own.get_potential_energy()), np.array(own.get_forces())

        return run

    def _make_xtb(self, max_iter: int, damped: bool):
        from xtb.interface import Calculator as XCalc, Param, XTBException
        from xtb.libxtb import VERBOSITY_MUTED

        p = self.parameters
        state = {"calc": None, "res": None}

        def run(atoms):
            pos = atoms.get_positions() / _BOHR_A
            try:
                if state["calc"] is None:
                    c = XCalc(Param.GFN2xTB, atoms.get_atomic_numbers(), pos,
                              float(p.charge), int(self._uhf))
                    c.set_verbosity(VERBOSITY_MUTED)
                    c.set_accuracy(float(p.accuracy))
                    c.set_electronic_temperature(float(p.electronic_temperature))
                    c.set_max_iterations(max_iter)
                    state["calc"] = c
                else:
                    state["calc"].update(pos)
                if not p.reuse_wavefunction:
                    state["res"] = None
                state["res"] = state["calc"].singlepoint(state["res"])
            except XTBException as exc:
                state["calc"] = state["res"] = None
                raise CalculationFailed(f"xtb: {exc}") from exc
            e = state["res"].get_energy() * _HARTREE_EV
            f = -np.asarray(state["res"].get_gradient()) * (_HARTREE_EV / _BOHR_A)
            return float(e), f

        return run


def make_calculator(backend: str = "tblite", charge: int = 0, spin: int | None = None,
                    atoms=None, **kwargs) -> GFN2xTB:
    """A GFN2-xTB ASE calculator for ``backend`` ("tblite" or "xtb-python").

    When ``atoms`` is given, the elements, ``charge`` and ``spin`` are checked now (not at the
    first force call). Extra keywords: ``accuracy``, ``electronic_temperature``,
    ``max_iterations``, ``retries``.
    """
    _check_backend(backend)
    if atoms is not None:
        check_system(atoms.get_atomic_numbers(), charge, spin)
    elif spin is not None:
        if isinstance(spin, (bool, np.bool_)) or not float(spin).is_integer() or spin < 0:
            raise ValueError(f"`spin` (number of unpaired electrons, 2S) must be an integer >= 0, got {spin!r}")
    return GFN2xTB(backend=backend, charge=charge, spin=spin, **kwargs)
