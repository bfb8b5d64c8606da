"""GFN2-xTB calculators: input checks, SCF retries, agreement of the two backends."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from pymotor.data.xtb import (
    GFN2xTB,
    SCFConvergenceError,
    backend_version,
    check_system,
    make_calculator,
)

pytestmark = pytest.mark.xtb


def test_check_system_parity_and_defaults():
    water = [8, 1, 1]
    assert check_system(water) == 0
    assert check_system(water, charge=1) == 1          # 9 electrons: a doublet by default
    assert check_system(water, charge=0, spin=2) == 2  # triplet water is allowed
    with pytest.raises(ValueError, match=r"`spin`=1 .*10 electrons"):
        check_system(water, charge=0, spin=1)
    with pytest.raises(ValueError, match="`spin`"):
        check_system(water, spin=-2)
    with pytest.raises(ValueError, match="`spin`"):
        check_system(water, spin=12)
    with pytest.raises(ValueError, match="`charge` must be an integer"):
        check_system(water, charge=0.5)
    with pytest.raises(ValueError, match="`charge`=10 leaves 0 electrons"):
        check_system(water, charge=10)


@pytest.mark.parametrize("z,name", [(118, "Og"), (87, "Fr"), (0, "X")])
def test_unsupported_elements(z, name):
    with pytest.raises(ValueError, match=rf"`atoms` contains {name} \(Z={z}\).*Z = 1..86"):
        check_system([6, z])
    atoms = Atoms(numbers=[1, z], positions=[[0, 0, 0], [0, 0, 1.5]])
    with pytest.raises(ValueError, match="GFN2-xTB treats only"):
        make_calculator("tblite", atoms=atoms)
    atoms.calc = make_calculator("tblite")  # also checked at the first force call
    with pytest.raises(ValueError, match="GFN2-xTB treats only"):
        atoms.get_potential_energy()


def test_bad_backend():
    with pytest.raises(ValueError, match="`backend` must be one of"):
        make_calculator("orca")


def test_tblite_water_and_metadata():
    a = molecule("H2O")
    calc = make_calculator("tblite")
    a.calc = calc
    e = a.get_potential_energy()
    f = a.get_forces()
    assert e == pytest.approx(-137.9677, abs=1e-3)  # GFN2-xTB, eV (tblite's own doc example)
    assert f.shape == (3, 3) and np.allclose(f.sum(axis=0), 0.0, atol=1e-6)
    md = calc.metadata()
    assert md["backend"] == "tblite" and md["method"] == "GFN2-xTB"
    assert md["version"] == backend_version("tblite") != "not installed"
    # forces are minus the gradient of the energy
    d = 1e-4
    a2 = a.copy()
    a2.calc = make_calculator("tblite")
    a2.positions[1, 2] += d
    ep = a2.get_potential_energy()
    a2.positions[1, 2] -= 2 * d
    em = a2.get_potential_energy()
    assert -(ep - em) / (2 * d) == pytest.approx(f[1, 2], abs=2e-3)


def test_charged_and_open_shell():
    a = molecule("H2O")
    a.calc = make_calculator("tblite", charge=1)  # doublet cation by parity
    e_cation = a.get_potential_energy()
    a.calc = make_calculator("tblite")
    e_neutral = a.get_potential_energy()
    assert 8.0 < e_cation - e_neutral < 20.0  # an ionisation energy, eV


@pytest.mark.parametrize("backend", ["tblite", "xtb-python"])
def test_scf_failure_is_retried_then_named(backend):
    if backend == "xtb-python":
        pytest.importorskip("xtb")
    a = molecule("CH3CH2OH")
    a.calc = make_calculator(backend, max_iterations=2, retries=1)
    with pytest.raises(SCFConvergenceError, match=r"failed at force evaluation 1 after 2 attempt"):
        a.get_potential_energy()
    assert a.calc.n_retries == 1


def test_retry_recovers():
    class Flaky(GFN2xTB):
        fails = 1

        def _evaluate(self, attempt):
            if Flaky.fails:
                Flaky.fails -= 1
                raise RuntimeError("SCF not converged in 250 cycles")
            return super()._evaluate(attempt)

    a = molecule("H2O")
    a.calc = Flaky(backend="tblite")
    ref = molecule("H2O")
    ref.calc = make_calculator("tblite")
    assert a.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-8)
    assert a.calc.n_retries == 1


def test_backends_agree_on_cpnx():
    """tblite vs xtb-python on the same CPNX geometry.

    Measured here: |dE| = 1.45e-5 eV (a constant offset between the two implementations,
    unchanged at tighter accuracy), max |dF| = 2.0e-4 eV/A (1.0e-5 at accuracy 0.1).
    """
    pytest.importorskip("xtb")
    from pymotor.data import cpnx

    a = cpnx()
    res = {}
    for backend in ("tblite", "xtb-python"):
        a.calc = make_calculator(backend)
        res[backend] = (a.get_potential_energy(), a.get_forces())
    de = abs(res["tblite"][0] - res["xtb-python"][0])
    df = np.abs(res["tblite"][1] - res["xtb-python"][1]).max()
    assert de < 5e-5
    assert df < 5e-4
