"""Compare two MD runs (e.g. NN candidate vs GFN2-xTB reference) in an HTML report.

>>> import pymotor
>>> report = pymotor.compare(reference="xtb.h5", candidate="nn.h5")   # or pymotor.compare.compare
>>> report.write("report/")   # report/index.html, report/*.png, report/summary.json

Command line: ``pymotor compare xtb.h5 nn.h5 --out report/``.

Warnings for a candidate that left the reference's physics (potential-energy hole,
temperature excursion, broken or formed bond, blow-up) are in ``report.warnings`` and
``summary.json["warnings"]``; alone, without the report:

>>> for w in pymotor.compare.run_warnings("xtb.h5", "nn.h5"):
...     print(w["message"])
"""
import sys as _sys
import types as _types

from .checks import K_SIGMA, run_warnings
from .report import DEFAULT_WINDOWS_STEPS, Report, compare

__all__ = ["compare", "Report", "DEFAULT_WINDOWS_STEPS", "run_warnings", "K_SIGMA"]


class _CallableModule(_types.ModuleType):
    """Lets ``pymotor.compare(...)`` work although ``pymotor.compare`` is this package."""

    def __call__(self, *args, **kwargs):
        return compare(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
