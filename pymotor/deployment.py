"""``pymotor.deploy``: a SchNetPack model -> a deployable file with pymotor's metadata.

Two formats, one metadata contract (:class:`pymotor.modelfile.ModelFile`):

``torchscript`` (``.pt``)
    SchNetPack's deploy format (``spkdeploy``; ``torch.jit.script`` of the model without
    postprocessors), metadata in the ``_extra_files``. Runs through libtorch and, for SchNet
    and PaiNN, pymotor's fast C++ evaluators. TorchScript is deprecated upstream.
``pt2`` (``.pt2``)
    An AOTInductor package: the model and its force computation exported with
    ``torch.export`` (dynamic numbers of atoms, pairs and molecules) and compiled ahead of
    time (:mod:`pymotor.train.pt2`), metadata in the package's metadata. Loaded in C++ by
    the ``pt2`` backend; compiled for the device kind and CPU instruction set it is made on.

Both are checked against the eager model before the file is kept. The energy offset
(atomrefs, mean per atom) stays out of the float32 network and is stored in the metadata, to
be added in float64 by the loader.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Optional, Sequence

from .units import canonical_energy_unit, energy_unit_in_eV, length_unit_in_A
from .validation import number

__all__ = ["deploy", "FORMATS", "MODEL_FORMAT"]

#: the metadata format of pymotor's model files
MODEL_FORMAT = "pymotor.model/1"
#: file format -> suffix
FORMATS = {"torchscript": ".pt", "pt2": ".pt2"}
#: the check's limits, eV and eV/Angstrom: TorchScript runs the same kernels as the eager
#: model; an Inductor package fuses and reorders float32 arithmetic
_TOLERANCES = {"torchscript": (1e-4, 1e-5), "pt2": (1e-4, 1e-4)}
_ARCHITECTURES = {"SchNet": "schnet", "PaiNN": "painn", "SO3net": "so3net", "FieldSchNet": "fieldschnet"}


def _architecture(model) -> str:
    rep = getattr(model, "representation", None)
    name = type(rep).__name__ if rep is not None else type(model).__name__
    return _ARCHITECTURES.get(name, name.lower())


def _format(path: Path, format: Optional[str]) -> str:
    if format is None:
        for fmt, suffix in FORMATS.items():
            if path.suffix == suffix:
                return fmt
        raise ValueError(f"`path` must end in .pt (TorchScript) or .pt2 (AOTInductor), or give `format`; "
                         f"got {str(path)!r}")
    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {sorted(FORMATS)}, got {format!r}")
    if path.suffix != FORMATS[format]:
        raise ValueError(f"`path` of a {format} file must end in {FORMATS[format]}, got {str(path)!r}")
    return format


def deploy(model, path: str | os.PathLike, *, cutoff_A: float, energy_unit: str, length_unit: str = "Angstrom",
           format: Optional[str] = None, elements: Optional[Sequence[int]] = None,
           energy_offset: Optional[dict] = None, architecture: Optional[str] = None, card: Optional[dict] = None,
           check: bool = True, check_molecules: Optional[Sequence] = None, device: str = "cpu",
           num_threads: int = 1) -> dict:
    """Write a deployable file of a SchNetPack ``NeuralNetworkPotential`` with pymotor metadata.

    Args:
        model: a SchNetPack 2.2 ``NeuralNetworkPotential`` predicting ``energy`` and ``forces``
            (SchNet, PaiNN, SO3net, ...; with or without the ZBL prior). Its postprocessors
            (``CastTo64``, ``AddOffsets``) are dropped: give the offset as ``energy_offset``.
        path: the file to write (``.pt`` or ``.pt2``); written atomically after the check.
        cutoff_A: the model's cutoff in Angstrom.
        energy_unit, length_unit: the units the network works in (``"kcal/mol"``, ``"eV"``,
            ``"Hartree"``; ``"Angstrom"``, ``"Bohr"``, ``"nm"``).
        format: ``"torchscript"`` or ``"pt2"``; default from the suffix.
        elements: atomic numbers the model was trained on (the loader refuses others);
            default: not restricted. The pt2 trace and the check use molecules of these elements.
        energy_offset: ``{"atomrefs": {Z: E}, "mean_per_atom": E}`` in ``energy_unit``, added
            by the loader in float64; default none.
        architecture: stored name (default from the representation: ``schnet``, ``painn``, ...).
        card: the model card (a JSON-serialisable dict: data, hyperparameters, metrics).
        check: compare the written file with the eager model (energies within 1e-4 eV;
            forces within 1e-5 eV/Å for TorchScript, 1e-4 eV/Å for pt2) on synthetic molecules
            and ``check_molecules``; a file outside the limits is not kept (RuntimeError).
        check_molecules: extra ``(atomic_numbers, positions)`` molecules for the check, positions
            in ``length_unit`` (e.g. validation frames).
        device: where a pt2 package runs (``"cpu"`` or ``"cuda"``; it must be compiled there).
        num_threads: the threads of a pt2 package's CPU kernels (fixed at compile time; 1 for a
            single small molecule).

    Returns:
        the metadata written, with ``"path"`` and, when checked, ``"check"`` (max |dE| in the
        energy unit and |dF| in energy unit per length unit).
    """
    import torch

    path = Path(path)
    fmt = _format(path, format)
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "representation"):
        raise TypeError(f"`model` must be a SchNetPack NeuralNetworkPotential (with a representation), "
                        f"got {type(model).__name__}")
    number("cutoff_A", cutoff_A)
    number("num_threads", num_threads, integer=True, minimum=1, strict=False)
    energy_unit = canonical_energy_unit(energy_unit)
    length_A = length_unit_in_A(length_unit)
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ValueError(f"`device` must be 'cpu' or 'cuda[:i]', got {device!r}")
    if fmt == "torchscript" and device != "cpu":
        raise ValueError("`device`: a TorchScript file is device-independent; give device='cpu' (the default)")
    offset = energy_offset or {}
    bad = set(offset) - {"atomrefs", "mean_per_atom"}
    if bad:
        raise ValueError(f"`energy_offset` takes 'atomrefs' and 'mean_per_atom', got {sorted(bad)}")
    z = sorted({int(v) for v in elements}) if elements is not None else None
    if z is not None and (not z or min(z) < 1 or max(z) > 118):
        raise ValueError(f"`elements` must be atomic numbers 1-118, got {elements!r}")
    cutoff = float(cutoff_A) / length_A
    metadata = {
        "format": MODEL_FORMAT,
        "cutoff": cutoff,
        "length_unit": length_unit,
        "energy_unit": energy_unit,
        "architecture": architecture or _architecture(model),
        "energy_offset": {"atomrefs": {str(k): float(v) for k, v in (offset.get("atomrefs") or {}).items()},
                          "mean_per_atom": float(offset.get("mean_per_atom", 0.0))},
        "card": dict(card or {}),
    }
    if z is not None:
        metadata["elements"] = z
    metadata["card"].setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    e_tol_eV, f_tol_eVA = _TOLERANCES[fmt]
    e_tol = e_tol_eV / energy_unit_in_eV(energy_unit)
    f_tol = f_tol_eVA / energy_unit_in_eV(energy_unit) * length_A
    if fmt == "pt2":
        from .train.pt2 import export_pt2

        res = export_pt2(model, path, cutoff=cutoff, metadata=metadata, elements=z or (1, 6, 8),
                         energy_tol=e_tol if check else float("inf"), force_tol=f_tol if check else float("inf"),
                         check_molecules=check_molecules, device=device, num_threads=int(num_threads))
    else:
        res = _write_torchscript(model, path, cutoff, metadata, z or (1, 6, 8), e_tol, f_tol, check,
                                 check_molecules)
    out = dict(metadata, path=str(path))
    if "pt2" in res:
        out["pt2"] = res["pt2"]
    if check:
        out["check"] = {"max_abs_dE": res["max_abs_dE"], "max_abs_dF": res["max_abs_dF"],
                        "unit": energy_unit, "batches": res["batches"]}
    return out


def _write_torchscript(model, path: Path, cutoff: float, metadata: dict, elements, e_tol: float, f_tol: float,
                       check: bool, check_molecules) -> dict:
    import torch

    from .train.export import script_model
    from .train.pt2 import INPUTS, compare_with_eager, example_inputs, flat_model, model_inputs

    scripted = script_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    extra = {"cutoff": str(cutoff).encode("ascii"), "metadata": json.dumps(metadata).encode("utf-8")}
    torch.jit.save(scripted, str(tmp), _extra_files=extra)
    res = {"max_abs_dE": 0.0, "max_abs_dF": 0.0, "batches": 0}
    if check:
        loaded = torch.jit.load(str(tmp), map_location="cpu")
        examples = example_inputs(elements, cutoff)
        batches = [model_inputs(examples, cutoff), model_inputs(examples[:1], cutoff)]
        if check_molecules:
            batches.append(model_inputs(list(check_molecules), cutoff))

        def run(*x):
            out = loaded(dict(zip(INPUTS, x)))
            return out["energy"].detach(), out["forces"].detach()

        res = dict(compare_with_eager(flat_model(model), run, batches), batches=len(batches))
        if res["max_abs_dE"] > e_tol or res["max_abs_dF"] > f_tol:
            tmp.unlink()
            raise RuntimeError(
                f"the TorchScript file disagrees with the eager model: max |dE| = {res['max_abs_dE']:.3g} "
                f"(limit {e_tol:.3g}), max |dF| = {res['max_abs_dF']:.3g} (limit {f_tol:.3g}), model units")
    os.replace(tmp, path)
    return res
