"""What the fast evaluators' tests check of every instruction set (``isa``) this CPU has: the
AVX-512, AVX2 and generic builds (different vector widths, table and GEMM-panel layouts, summation
orders) agree with each other to the dtype's rounding and each with TorchScript within 1e-4 eV,
eV/A. Shared by tests/test_fast_schnet.py and tests/test_fast_painn.py."""
from __future__ import annotations

import numpy as np

import pymotor
from pymotor import _core
from pymotor.backends.tabulated import ISA_NAMES

#: The sets this CPU can run, widest first (ISA_NAMES after "auto" go from widest to generic).
AVAILABLE_ISAS = list(ISA_NAMES[ISA_NAMES.index(_core.best_isa()):])


def assert_every_isa_gives_the_same_numbers(path: str, backend: str, numbers, pos, dtype: str, label: str) -> None:
    e_t, f_t = pymotor.load_model(path, backend="torchscript").potential(numbers).compute(pos)
    out = {}
    for isa in AVAILABLE_ISAS:
        m = pymotor.load_model(path, backend=backend, dtype=dtype, isa=isa, check=False)
        assert m.isa == isa and m.describe()["isa"] == isa
        out[isa] = m.potential(numbers).compute(pos)
        assert np.abs(out[isa][0] - e_t).max() < 1e-4 and np.abs(out[isa][1] - f_t).max() < 1e-4, isa
    e0, f0 = out["generic"]
    tol_e, tol_f = (1e-8, 1e-9) if dtype == "float64" else (5e-5, 5e-5)
    for isa, (e, f) in out.items():
        print(f"\n{label} {dtype} {isa} vs generic: max |dE| {np.abs(e - e0).max():.2g} eV, "
              f"max |dF| {np.abs(f - f0).max():.2g} eV/A")
        assert np.abs(e - e0).max() < tol_e and np.abs(f - f0).max() < tol_f, isa
    assert pymotor.load_model(path, backend=backend, check=False).isa == _core.best_isa()  # auto: the widest


def assert_isa_errors(path: str, backend: str) -> None:
    import pytest

    with pytest.raises(ValueError, match="`isa` must be one of 'auto', 'avx512', 'avx2', 'generic', got 'sse4'"):
        pymotor.load_model(path, backend=backend, isa="sse4")
    for isa in ("avx512", "avx2"):
        if isa not in AVAILABLE_ISAS:  # only on a CPU without it
            with pytest.raises(ValueError, match=f"isa='{isa}' needs .* which this CPU lacks"):
                pymotor.load_model(path, backend=backend, isa=isa)
