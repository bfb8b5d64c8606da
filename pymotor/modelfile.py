"""The model-file contract: what a deployed potential states about itself, read once.

A deployed file (TorchScript in SchNetPack's deploy format, as ``spkdeploy`` and
``pymotor export`` write it) carries ``_extra_files``:

* ``cutoff`` -- the cutoff in the model's length unit (``spkdeploy``);
* ``metadata`` -- JSON (``pymotor export``): ``format``, ``cutoff``, ``length_unit``,
  ``energy_unit``, ``elements``, ``architecture``, ``energy_offset`` (``atomrefs``,
  ``mean_per_atom``) and the model ``card``.

:class:`ModelFile` reads them straight from the archive (a TorchScript file is a zip), without
loading the network, so that every evaluator (:mod:`pymotor.backends`) is built from the same
parsed contract. A plain ``spkdeploy`` file, which states no units, loads when the caller
names ``energy_unit`` and ``length_unit``.

An AOTInductor package (``.pt2``, :func:`pymotor.deploy`) carries the same ``metadata`` JSON
under the key ``pymotor`` of the package's metadata, plus ``pt2`` (torch version, device
kind, CPU instruction set the package was compiled for); ``format`` is then ``"pt2"``.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .units import energy_unit_in_eV, length_unit_in_A

__all__ = ["ModelFile", "energy_offset"]


def energy_offset(atomrefs: dict, mean_per_atom: float, atomic_numbers: Sequence[int]) -> float:
    """Energy offset of one molecule in the model's energy unit, in float64:
    sum_i atomrefs[Z_i] + n_atoms * mean_per_atom (the convention of pymotor's export
    metadata). ``atomrefs`` maps Z (int or str) to energies; empty: no per-element part.
    An element without an atomref, when there are atomrefs, is an error."""
    refs = {int(k): float(v) for k, v in (atomrefs or {}).items()}
    z = [int(v) for v in np.asarray(atomic_numbers).ravel()]
    missing = sorted(set(z) - set(refs)) if refs else []
    if missing:
        raise ValueError(f"`atomic_numbers`: no atomref (energy offset) for element(s) Z = {missing}; "
                         f"the model has atomrefs for Z = {sorted(refs)}")
    return float(sum(refs[v] for v in z) if refs else 0.0) + len(z) * float(mean_per_atom)


def _pt2_metadata(path: Path) -> dict[str, str] | None:
    """The AOTInductor metadata of a ``.pt2`` package (``<root>/data/aotinductor/<model>/
    *_metadata.json``), or None when ``path`` is not such a package."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if not any(n.endswith("/archive_format") and z.read(n).strip() == b"pt2" for n in names):
                return None
            for name in names:
                parts = name.split("/")
                if len(parts) == 5 and parts[1:3] == ["data", "aotinductor"] and name.endswith("_metadata.json"):
                    meta = json.loads(z.read(name).decode())
                    if "AOTI_DEVICE_KEY" in meta:
                        return meta
            return {}
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _extra_files(path: Path) -> dict[str, str]:
    """The ``_extra_files`` of a TorchScript archive (``<root>/extra/<name>``)."""
    try:
        with zipfile.ZipFile(path) as z:
            out = {}
            for name in z.namelist():
                parts = name.split("/")
                if len(parts) == 3 and parts[1] == "extra":
                    out[parts[2]] = z.read(name).decode()
            if not any(n.endswith("/data.pkl") for n in z.namelist()):
                raise ValueError("no data.pkl")
            return out
    except (zipfile.BadZipFile, ValueError, OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"`path`: {path} is not a loadable TorchScript model ({exc}); deploy it with "
                         "SchNetPack's spkdeploy or `pymotor export`") from None


class ModelFile:
    """A deployed model file's contract: cutoff, units, elements, energy offset, architecture, card.

    Parameters
    ----------
    path
        The deployed file.
    energy_unit, length_unit
        Units of a plain ``spkdeploy`` file, which stores only the cutoff (for example
        ``"kcal/mol"`` and ``"Angstrom"``). When the file states its units these must agree.
    """

    def __init__(self, path: str | os.PathLike, energy_unit: str | None = None, length_unit: str | None = None):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"`path`: model file {str(path)!r} does not exist")
        self.path = path
        self.metadata: dict[str, Any] = {}
        pt2 = _pt2_metadata(path) if path.suffix != ".pt" else None
        self.format = "torchscript" if pt2 is None else "pt2"
        if pt2 is not None:
            if "pymotor" not in pt2:
                raise ValueError(f"`path`: {path} is an AOTInductor package without pymotor metadata (cutoff, "
                                 "units, energy offset); write it with pymotor.deploy or `pymotor export --format pt2`")
            extra = {"metadata": pt2["pymotor"]}
        else:
            extra = _extra_files(path)
        if extra.get("metadata"):
            try:
                self.metadata = json.loads(extra["metadata"])
            except json.JSONDecodeError as exc:
                raise ValueError(f"`path`: {path} has corrupt metadata JSON ({exc})") from exc
        cutoff = self.metadata.get("cutoff", extra.get("cutoff") or None)
        if cutoff is None:
            raise ValueError(
                f"`path`: {path} has no cutoff in its metadata; deploy it with SchNetPack's "
                "spkdeploy or `pymotor export`, which store `cutoff` in the TorchScript extra files")
        self.energy_unit = self._unit("energy_unit", energy_unit)
        self.length_unit = self._unit("length_unit", length_unit)
        self.energy_unit_eV = energy_unit_in_eV(self.energy_unit)
        self.length_unit_A = length_unit_in_A(self.length_unit)
        self.cutoff_A = float(cutoff) * self.length_unit_A
        self.elements = sorted(int(z) for z in self.metadata.get("elements", [])) or None
        self.architecture = self.metadata.get("architecture")
        offset = self.metadata.get("energy_offset") or {}
        self.atomrefs = {int(z): float(e) for z, e in (offset.get("atomrefs") or {}).items()}
        self.mean_per_atom = float(offset.get("mean_per_atom", 0.0))

    def _unit(self, key: str, given: str | None) -> str:
        stored = self.metadata.get(key)
        if stored is None and given is None:
            raise ValueError(
                f"`path`: {self.path} does not state its {key.replace('_', ' ')}; pass "
                f"`{key}=` (e.g. load_model(path, energy_unit='kcal/mol', length_unit='Angstrom'))")
        if stored is not None and given is not None and stored != given:
            raise ValueError(f"`{key}`={given!r} contradicts the model file, which states {stored!r}")
        return given if given is not None else stored

    @property
    def card(self) -> dict:
        """The model card stored with the file (data set, hyperparameters, metrics)."""
        return self.metadata.get("card", {})

    def check_elements(self, atomic_numbers: Sequence[int]) -> None:
        """Raise ValueError if an element was not in the model's training data."""
        if self.elements is None:
            return
        unknown = sorted(set(int(z) for z in atomic_numbers) - set(self.elements))
        if unknown:
            from ase.data import chemical_symbols

            raise ValueError(
                f"`atoms` contains {[chemical_symbols[z] for z in unknown]}, which the model "
                f"{self.path.name} was not trained on (it knows "
                f"{[chemical_symbols[z] for z in self.elements]})")

    def energy_offset_eV(self, atomic_numbers: Sequence[int]) -> float:
        """The energy offset kept out of the float32 model, in eV (added in float64)."""
        return energy_offset(self.atomrefs, self.mean_per_atom, atomic_numbers) * self.energy_unit_eV

    def sha256(self) -> str:
        """The file's content hash (the identity a restarted run is checked against)."""
        import hashlib

        if not hasattr(self, "_sha256"):
            h = hashlib.sha256()
            with open(self.path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            self._sha256 = h.hexdigest()
        return self._sha256

    def __repr__(self) -> str:
        return (f"ModelFile({str(self.path)!r}, cutoff_A={self.cutoff_A:g}, energy_unit={self.energy_unit!r}, "
                f"architecture={self.architecture!r})")
