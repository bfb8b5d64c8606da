"""The reference backend: a TorchScript file run by libtorch from C++ (CPU or CUDA)."""
from __future__ import annotations

import os

from .. import _core
from ..modelfile import ModelFile
from .base import LibtorchModel, UnsupportedModelError


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class TorchScriptModel(LibtorchModel):
    """A deployed TorchScript potential (SchNetPack's input dictionary) run through libtorch.

    Parameters
    ----------
    path
        TorchScript file with ``_extra_files`` ``cutoff`` (and, from ``pymotor export``,
        ``metadata``: units, elements, energy offset, model card); or a :class:`ModelFile`.
    energy_unit, length_unit
        Units of a plain ``spkdeploy`` file (see :class:`~pymotor.modelfile.ModelFile`).
    device
        ``"cpu"`` or ``"cuda"``; default: CUDA when torch has it.
    jit_optimize
        Freeze the module and run TorchScript's optimising (profiling) graph executor.
        Default: on CUDA only; on CPU the plain interpreter measured 12-20 % faster for
        SchNet (BENCHMARKS.md).
    """

    backend = "torchscript"

    def __init__(self, path: str | os.PathLike | ModelFile, energy_unit: str | None = None,
                 length_unit: str | None = None, device: str | None = None, jit_optimize: bool | None = None):
        file = path if isinstance(path, ModelFile) else ModelFile(path, energy_unit, length_unit)
        if file.format != "torchscript":
            raise UnsupportedModelError(f"`path`: {file.path} is a {file.format} file, not TorchScript "
                                        f"(use backend='{file.format}' or 'auto')")
        super().__init__(file)
        self.device = self.check_device(device or default_device())
        if jit_optimize is None:
            jit_optimize = self.device.startswith("cuda")
        try:
            self._module = _core.TorchModel(str(file.path), self.device, bool(jit_optimize))
        except RuntimeError as exc:
            raise ValueError(f"`path`: {file.path} is not a loadable TorchScript model ({exc})") from exc

    def __repr__(self) -> str:
        return (f"Model({str(self.path)!r}, cutoff_A={self.cutoff_A:g}, energy_unit={self.energy_unit!r}, "
                f"length_unit={self.length_unit!r}, device={self.device!r})")
