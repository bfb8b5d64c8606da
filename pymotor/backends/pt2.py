"""AOTInductor packages (``.pt2``, :func:`pymotor.deploy`) run from C++ by libtorch's
``torch::inductor::AOTIModelPackageLoader``: SchNetPack's model and its force graph compiled
ahead of time, driven by the same MD loop and neighbour list as TorchScript files."""
from __future__ import annotations

import os

from .. import _core
from ..modelfile import ModelFile
from ..train.pt2 import PAD_OFFSET
from .base import LibtorchModel, UnsupportedModelError


def _release(version: str) -> tuple:
    """(major, minor) of a torch version string ("2.13.0+cpu" -> (2, 13))."""
    parts = version.split("+")[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return (0, 0)


def check_compatible(file: ModelFile, device: str) -> None:
    """Raise ValueError naming both sides when the package was compiled for another device
    kind, another torch release or CPU instructions this machine lacks."""
    import torch

    made = file.metadata.get("pt2") or {}
    kind = torch.device(device).type
    built_for = made.get("device", "cpu")
    if built_for != kind:
        raise ValueError(f"`path`: {file.path} was compiled for {built_for}, not for {kind} (`device`={device!r}); "
                         f"an AOTInductor package runs only on the device kind it was compiled on: recompile it "
                         f"there (pymotor export RUN --format pt2, or pymotor.deploy(..., device={kind!r}))")
    made_with = made.get("torch", "unknown")
    if _release(made_with) != _release(torch.__version__):
        raise ValueError(f"`path`: {file.path} was compiled by torch {made_with}; this is torch {torch.__version__}. "
                         "AOTInductor packages are tied to the torch release that made them: recompile it with "
                         "this torch")
    isa = made.get("cpu_capability")
    here = torch.backends.cpu.get_cpu_capability()
    if kind == "cpu" and isa and isa.startswith("AVX512") and not here.startswith("AVX512"):
        raise ValueError(f"`path`: {file.path} was compiled for CPUs with {isa}; this CPU offers {here}: "
                         "recompile it on this machine")


class Pt2Model(LibtorchModel):
    """A deployed AOTInductor package (pymotor metadata) evaluated from C++.

    Parameters
    ----------
    path
        A ``.pt2`` file written by :func:`pymotor.deploy` / ``pymotor export --format pt2``; or
        a :class:`ModelFile`.
    device
        ``"cpu"`` or ``"cuda[:i]"``: the device kind the package was compiled for (default:
        the one in its metadata).
    """

    backend = "pt2"

    @classmethod
    def supports(cls, file: ModelFile) -> None:
        if file.format != "pt2":
            raise UnsupportedModelError(f"{file.path} is a {file.format} file, not an AOTInductor package (.pt2)")

    def __init__(self, path: str | os.PathLike | ModelFile, energy_unit: str | None = None,
                 length_unit: str | None = None, device: str | None = None):
        file = path if isinstance(path, ModelFile) else ModelFile(path, energy_unit, length_unit)
        self.supports(file)
        super().__init__(file)
        self.device = self.check_device(device or (file.metadata.get("pt2") or {}).get("device", "cpu"))
        check_compatible(file, self.device)
        try:
            self._module = _core.AOTIModel(str(file.path), self.device, PAD_OFFSET)
        except RuntimeError as exc:
            raise ValueError(f"`path`: {file.path} is not a loadable AOTInductor package ({exc})") from exc
