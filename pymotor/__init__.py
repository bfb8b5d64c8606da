"""pymotor: C++-accelerated neural-network molecular dynamics of molecular nanomotors.

Units at the API: Angstrom, fs, amu, eV, K (argument names carry them: ``timestep_fs``,
``temperature_K``). Quick start::

    import pymotor
    atoms = pymotor.data.cpnx()
    model = pymotor.load_model("cpnx.pt")
    traj = pymotor.run_md(model, atoms, steps=5000, timestep_fs=0.5, temperature_K=300.0)
"""
from __future__ import annotations

import importlib

import torch  # noqa: F401  (loads libtorch's shared libraries before the extension)

try:
    from . import _core
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "pymotor's C++ extension could not be imported; build it with `make install` "
        f"(pip install -e .). Original error: {exc}"
    ) from exc


def _check_torch_version() -> None:
    built = getattr(_core, "TORCH_VERSION", None)
    running = torch.__version__.split("+")[0]
    if built and built.split(".")[:2] != running.split(".")[:2]:
        raise ImportError(
            f"pymotor was built against torch {built} but torch {running} is installed; "
            "rebuild pymotor (make install) or install torch=={built}"
        )


_check_torch_version()

from .deployment import deploy  # noqa: E402
from .md import MDError, run_md  # noqa: E402
from .potentials import (  # noqa: E402
    HarmonicPotential,
    LennardJonesPotential,
    Model,
    ModelCalculator,
    ModelFile,
    NNModel,
    load_model,
)
from .trajectory import Trajectory, read_trajectory  # noqa: E402

__version__ = "0.1.0"
_LAZY_SUBMODULES = ("data", "analysis", "train", "compare", "models", "units", "connectivity", "backends")

__all__ = [
    "run_md", "MDError", "deploy", "load_model", "Model", "NNModel", "ModelFile", "ModelCalculator", "HarmonicPotential",
    "LennardJonesPotential", "Trajectory", "read_trajectory", *_LAZY_SUBMODULES,
]


def __getattr__(name: str):
    # pymotor.compare is a callable package: pymotor.compare(reference=..., candidate=...)
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'pymotor' has no attribute {name!r}")
