"""Models shipped with pymotor.

>>> import pymotor
>>> model = pymotor.models.load()                     # the default: DEFAULT
>>> model = pymotor.models.load("cpnx-schnet")        # a pymotor.Model (C++ engine)
>>> print(pymotor.models.card("cpnx-painn"))          # the markdown model card

Each model is a TorchScript file ``<name>.pt`` written by ``pymotor export`` (format
``pymotor.model/1``, see docs/ARCHITECTURE.md) with its model card ``<name>.md`` beside it.
``cpnx-painn`` (PaiNN, the most accurate stable model) and ``cpnx-schnet`` (SchNet, the
fastest) come from the project's GFN2-xTB reference data with the commands in
docs/training.md; ``cpnx-committee.json`` names the members of the committee
``cpnx-committee`` (:func:`pymotor.learn.resolve_committee`).
"""

from __future__ import annotations

from pathlib import Path
from typing import List

__all__ = ["MODEL_DIR", "DEFAULT", "available", "path", "resolve", "load", "card"]

#: folder holding the shipped model files
MODEL_DIR = Path(__file__).resolve().parent

#: the shipped model that ``pymotor md``, ``pymotor demo``, ``pymotor ensemble`` and
#: :func:`load` use by default: the most accurate shipped model that is stable in MD
#: (its card and docs/training.md give the errors and blow-up counts)
DEFAULT = "cpnx-painn"


def available() -> List[str]:
    """Names of the shipped models (files ``<name>.pt`` in this package)."""
    return sorted(p.stem for p in MODEL_DIR.glob("*.pt"))


def path(name: str) -> Path:
    """File of the shipped model `name`; FileNotFoundError naming the available ones."""
    p = MODEL_DIR / f"{name}.pt"
    if not p.is_file():
        have = available()
        raise FileNotFoundError(
            f"no shipped model {name!r} in {MODEL_DIR} (available: {', '.join(have) or 'none'}); "
            "build it with `python -m pymotor.models.build` once the CPNX reference data "
            "(data/T300) exists, or export your own with `pymotor export RUN --out FILE.pt`"
        )
    return p


def resolve(name_or_path) -> Path:
    """The shipped model's file when `name_or_path` names one (e.g. ``"cpnx-schnet"``), else the path."""
    return path(str(name_or_path)) if str(name_or_path) in available() else Path(name_or_path)


def load(name: str = DEFAULT, device: str | None = None):
    """Load the shipped model `name` with :func:`pymotor.load_model` (units from its metadata)."""
    import pymotor

    return pymotor.load_model(path(name), device=device)


def card(name: str = DEFAULT) -> str:
    """The markdown model card of the shipped model `name`."""
    return path(name).with_suffix(".md").read_text()
