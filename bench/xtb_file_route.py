"""The source work's file-based GFN2-xTB route: an ASE calculator that runs the xtb binary.

Every force call writes the geometry (``coord.xyz``, Angstrom), runs

    xtb coord.xyz --gfn 2 --grad --chrg 0 --uhf 0

in the calculator's work directory (one thread: ``OMP_NUM_THREADS=1``) and reads the energy
and gradient from the Turbomole-format ``gradient`` file (Hartree and Hartree/Bohr, Fortran
``D`` exponents allowed). Energy in eV, forces in eV/Angstrom, converted with ``ase.units``
(CODATA 2014), as tblite's ASE calculator converts them, so that the two routes differ only
by the programs. The Debian package ``xtb`` 6.5.1 provides ``/usr/bin/xtb``.

xtb leaves ``xtbrestart`` (the converged charges) in its work directory and starts the next
SCF from it; by default the work directory is kept for the calculator's lifetime, so, as
tblite's in-process route, each step starts from the previous wavefunction (for CPNX 3 SCF
iterations instead of 12). ``keep_restart=False`` deletes it before every call.

Agreement (CPNX, checked by bench/test_bench_xtb.py): vs tblite 0.8.0, |dE| 1.5e-6 eV and max
|dF| 2.0e-4 eV/Angstrom at the GFN2-xTB minimum, 1.5e-6 eV and 1.3e-4 eV/Angstrom with the atoms
rattled by 0.05 Angstrom (max |F| 11 eV/Angstrom); no constant energy offset beyond that. The
binary gives the same numbers as xtb-python (same xtb 6.5.1: forces equal to 1e-10 eV/Angstrom),
but pymotor's ``make_calculator("xtb-python")`` converts with the CODATA 2018 Hartree, which
puts its energies 1.6e-5 eV (8e-9 relative) below these: a units constant, not a program difference.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import weakref

import numpy as np
from ase.calculators.calculator import CalculationFailed, FileIOCalculator
from ase.units import Bohr, Hartree

__all__ = ["XTBFileCalculator", "read_turbomole_gradient"]


def read_turbomole_gradient(path, n_atoms: int):
    """Energy (Hartree) and gradient (Hartree/Bohr, shape (n_atoms, 3)) of the last cycle of a
    Turbomole ``gradient`` file (``$grad``, ``cycle = ... SCF energy = ...``, n_atoms coordinate
    lines, n_atoms gradient lines, ``$end``)."""
    with open(path) as fh:
        lines = [ln.strip() for ln in fh]
    cycles = [i for i, ln in enumerate(lines) if ln.startswith("cycle")]
    if not cycles:
        raise CalculationFailed(f"no 'cycle' line in {path}")
    head = cycles[-1]
    energy = float(lines[head].split("=")[2].split()[0].replace("D", "E").replace("d", "e"))
    rows = lines[head + 1 + n_atoms: head + 1 + 2 * n_atoms]
    grad = np.array([[float(x.replace("D", "E").replace("d", "e")) for x in r.split()[:3]] for r in rows])
    if grad.shape != (n_atoms, 3):
        raise CalculationFailed(f"{path}: expected {n_atoms} gradient lines, got shape {grad.shape}")
    return energy, grad


class XTBFileCalculator(FileIOCalculator):
    """GFN2-xTB through the xtb executable and files (energy in eV, forces in eV/Angstrom).

    Parameters (keywords; also ``calc.parameters``): ``charge`` (e, default 0), ``uhf``
    (unpaired electrons, default 0), ``keep_restart`` (keep ``xtbrestart`` between calls, default
    True), ``executable`` (default ``"xtb"`` on PATH), ``omp_threads`` (default 1).
    ``directory``: the work directory; default a fresh temporary one, removed by
    :meth:`cleanup` (or at garbage collection).
    """

    name = "xtb-file"
    implemented_properties = ["energy", "free_energy", "forces"]
    default_parameters = dict(charge=0, uhf=0, keep_restart=True, executable="xtb", omp_threads=1)

    def __init__(self, directory=None, **kwargs):
        self._cleanup = None
        if directory is None:
            directory = tempfile.mkdtemp(prefix="xtb_file_route_")
            self._cleanup = weakref.finalize(self, shutil.rmtree, directory, ignore_errors=True)
        super().__init__(directory=directory, command="xtb", **kwargs)  # `command` unused: see execute
        self.n_calls = 0

    def argv(self) -> list[str]:
        p = self.parameters
        exe = shutil.which(p.executable) or p.executable
        return [exe, "coord.xyz", "--gfn", "2", "--grad", "--chrg", str(int(p.charge)), "--uhf", str(int(p.uhf))]

    def write_input(self, atoms, properties=None, system_changes=None):
        super().write_input(atoms, properties, system_changes)
        lines = [str(len(atoms)), "written by bench/xtb_file_route.py (Angstrom)"]
        lines += [f"{s:2s} {x:20.12f} {y:20.12f} {z:20.12f}"
                  for s, (x, y, z) in zip(atoms.get_chemical_symbols(), atoms.get_positions())]
        with open(os.path.join(self.directory, "coord.xyz"), "w") as fh:
            fh.write("\n".join(lines) + "\n")
        for stale in ("gradient", "energy") + (() if self.parameters.keep_restart else ("xtbrestart",)):
            path = os.path.join(self.directory, stale)
            if os.path.exists(path):
                os.remove(path)

    def execute(self):
        """Run xtb directly (no shell) with one OpenMP/BLAS thread; stdout to ``xtb.out``."""
        env = dict(os.environ, OMP_NUM_THREADS=str(self.parameters.omp_threads),
                   OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        with open(os.path.join(self.directory, "xtb.out"), "w") as out:
            proc = subprocess.run(self.argv(), cwd=self.directory, env=env, stdout=out,
                                  stderr=subprocess.PIPE, text=True)
        self.n_calls += 1
        if proc.returncode != 0:
            raise CalculationFailed(f"{' '.join(self.argv())} failed in {self.directory} with exit code "
                                    f"{proc.returncode}: {proc.stderr.strip()[-500:]}")

    def read_results(self):
        e_h, grad = read_turbomole_gradient(os.path.join(self.directory, "gradient"), len(self.atoms))
        self.results["energy"] = self.results["free_energy"] = e_h * Hartree
        self.results["forces"] = -grad * (Hartree / Bohr)

    def cleanup(self) -> None:
        """Remove the temporary work directory (if this calculator made it)."""
        if self._cleanup is not None:
            self._cleanup()
