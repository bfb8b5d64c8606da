"""What pymotor's hand-written C++ evaluators share (the fast SchNet and the fast PaiNN): the
weights read from the TorchScript file, filter tables built at load, an energy offset in
float64, the TorchScript evaluator of the same file as reference, and the check against it."""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ..modelfile import ModelFile
from .base import DEFAULT_SKIN_A, NNModel, UnsupportedModelError
from .torchscript import TorchScriptModel


def postprocessor_offset(offsets: list, atomic_numbers) -> float:
    """The energy (model units) that AddOffsets postprocessors in the file add to one molecule."""
    z = np.asarray(atomic_numbers, dtype=int)
    e = 0.0
    for o in offsets:
        if o["add_mean"]:
            e += o["mean"] * (len(z) if o["is_extensive"] else 1)
        if o["add_atomrefs"]:
            s = float(np.sum(o["atomref"][z]))
            e += s if o["is_extensive"] else s / len(z)
    return e


def probe_molecule(elements: Sequence[int] | None):
    """A small, deterministic molecule-like cluster (12 atoms, nearest distances ~1-1.5 A)."""
    rng = np.random.default_rng(0)
    grid = np.array([[i, j, k] for i in range(3) for j in range(2) for k in range(2)], dtype=float) * 1.25
    pos = grid + rng.uniform(-0.2, 0.2, size=grid.shape)
    z = list(elements or [1, 6, 8])
    numbers = np.array([z[i % len(z)] for i in range(len(pos))])
    return pos, numbers


#: Accepted values of the fast evaluators' ``isa`` option: ``"auto"`` (default: the widest the CPU
#: has), ``"avx512"`` (64-byte vectors: where the CPU has full-width 512-bit FMA units, as AMD Zen 5,
#: the dense layers run at up to twice the AVX2 rate), ``"avx2"`` or ``"generic"``. Results agree
#: between them to float rounding.
ISA_NAMES = ("auto", "avx512", "avx2", "generic")


class TabulatedModel(NNModel):
    """Base of the fast evaluators. Subclasses set ``architecture`` ("schnet"), ``name``
    ("SchNet", for messages), ``backend_name`` ("fast backend") and implement
    ``_read_weights(module)``, ``_make_core(dtype, n_intervals, tolerance)`` (the C++ model, built
    for ``self.isa_requested``) and ``_core_potential(z, skin_A, offset_eV)``."""

    architecture = ""
    name = ""
    backend_name = ""

    def __init__(self, path: str | os.PathLike | ModelFile, energy_unit: str | None, length_unit: str | None,
                 device: str | None, dtype: str, n_intervals: int, tolerance: float, n_threads: int,
                 check: bool, isa: str = "auto"):
        if device not in (None, "cpu"):
            raise ValueError(f"`device`: the {self.backend_name} runs on the CPU only, got {device!r}")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"`dtype` must be 'float32' or 'float64', got {dtype!r}")
        if int(n_intervals) < 0:
            raise ValueError(f"`n_intervals` must be >= 0, got {n_intervals}")
        if not tolerance > 0:
            raise ValueError(f"`tolerance` must be positive, got {tolerance}")
        if int(n_threads) < 0:
            raise ValueError(f"`n_threads` must be >= 0, got {n_threads}")
        if isa not in ISA_NAMES:
            raise ValueError(f"`isa` must be one of {', '.join(map(repr, ISA_NAMES))}, got {isa!r}")
        self.isa_requested = isa
        super().__init__(path if isinstance(path, ModelFile) else ModelFile(path, energy_unit, length_unit))
        self.device = "cpu"
        self._reference: TorchScriptModel | None = None
        import torch

        try:
            module = torch.jit.load(str(self.path), map_location="cpu")
        except RuntimeError as exc:
            raise ValueError(f"`path`: {self.path} is not a loadable TorchScript model ({exc})") from exc
        self.weights: dict[str, Any] = self._read_weights(module)
        if abs(self.weights["cutoff"] * self.length_unit_A - self.cutoff_A) > 1e-6 * self.cutoff_A:
            raise UnsupportedModelError(
                f"the model's cosine cutoff ({self.weights['cutoff']}) differs from the file's stated cutoff "
                f"({self.cutoff_A / self.length_unit_A})")
        self.dtype = dtype
        self.n_threads = int(n_threads)
        self._fast = self._make_core(dtype, int(n_intervals), float(tolerance))
        self.check_report: dict | None = None
        self._check = check

    def _finish_init(self) -> None:
        """Run the load-time check (after a subclass has set its own options)."""
        if self._check:
            self._check_against_torchscript()

    @property
    def isa(self) -> str:
        """The instruction set the C++ kernels run with: ``"avx512"``, ``"avx2"`` or ``"generic"``
        (``isa="auto"`` at load picks the widest this CPU has)."""
        return self._fast.isa

    @property
    def table_info(self) -> dict:
        """Filter-table grid: ``n_intervals``, ``spacing`` (model length unit) and the measured
        maximum relative interpolation errors of W and dW/dr."""
        return self._fast.table_info

    def potential(self, atomic_numbers: Sequence[int], skin_A: float = DEFAULT_SKIN_A):
        """A C++ potential of this model for molecules with these atomic numbers."""
        z = [int(v) for v in atomic_numbers]
        self.check_elements(z)
        offset = self.energy_offset_eV(z) + postprocessor_offset(self.weights["postprocessor_offsets"], z) \
            * self.energy_unit_eV
        return self._core_potential(z, skin_A, offset)

    @property
    def reference(self) -> TorchScriptModel:
        """The TorchScript evaluator of the same file (the reference this backend reproduces),
        built from the same parsed :class:`ModelFile` on first use."""
        if self._reference is None:
            self._reference = TorchScriptModel(self.file, device="cpu")
        return self._reference

    def torchscript_potential(self, atomic_numbers: Sequence[int], skin_A: float = DEFAULT_SKIN_A):
        """The TorchScript potential of the same file (the reference this backend reproduces)."""
        return self.reference.potential(atomic_numbers, skin_A)

    def describe(self) -> dict:
        return dict(super().describe(), dtype=self.dtype, architecture=self.architecture, isa=self.isa)

    def _check_against_torchscript(self) -> None:
        pos, numbers = probe_molecule(self.elements)
        geometries = [pos]
        zbl = self.weights.get("zbl")
        if zbl is not None:  # one pair inside the prior's range, where the repulsion is switched on
            r = 0.5 * (zbl.get("r_on", 0.0) + zbl["r_off"]) if zbl["switch"] != "none" else 0.7
            close = pos.copy()
            u = (pos[1] - pos[0]) / np.linalg.norm(pos[1] - pos[0])
            close[1] = pos[0] + r * self.length_unit_A * u
            geometries.append(close)
        de = df = 0.0
        ok = True
        for g in geometries:
            e_ts, f_ts = self.torchscript_potential(numbers).compute(g[None])
            e_fa, f_fa = self.potential(numbers).compute(g[None])
            de_g, df_g = abs(float(e_ts[0] - e_fa[0])), float(np.abs(f_ts - f_fa).max())
            de, df = max(de, de_g), max(df, df_g)
            # the TorchScript model adds in-file offsets in float32: allow for their rounding
            e_tol = 1e-4 + 1e-5 * abs(float(e_ts[0] - self.energy_offset_eV(numbers)))
            f_tol = 1e-3 + 1e-4 * float(np.abs(f_ts).max())
            ok = ok and de_g <= e_tol and df_g <= f_tol
        self.check_report = {"max_abs_dE_eV": de, "max_abs_dF_eV_per_A": df, "n_geometries": len(geometries)}
        if not ok:
            raise UnsupportedModelError(
                f"the fast {self.name} evaluator disagrees with the TorchScript model of {self.path.name} on a test "
                f"molecule (|dE| = {de:.3g} eV, max |dF| = {df:.3g} eV/A): the file holds a {self.name} variant the "
                f"{self.backend_name} does not reproduce; use backend='torchscript'")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, cutoff_A={self.cutoff_A:g}, "
                f"energy_unit={self.energy_unit!r}, dtype={self.dtype!r}, "
                f"n_intervals={self.table_info['n_intervals']})")
