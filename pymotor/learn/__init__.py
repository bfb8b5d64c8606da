"""Learning while running: on-the-fly learning MD and active learning.

* :func:`on_the_fly` (``pymotor learn``): NN MD with a committee that asks GFN2-xTB when its
  force spread exceeds a threshold, labels those frames, fine-tunes itself and goes on
  (:mod:`pymotor.learn.loop`; docs/learning.md);
* :class:`Committee` (:mod:`pymotor.learn.committee`): several deployed models evaluated
  together, their mean and their force standard deviation; :func:`calibrate_threshold`;
* :mod:`pymotor.learn.offline`: the offline round (NN MD runs, then GFN2-xTB labels for frames
  they visited) that ``scripts/active_learning.py`` runs;
* :mod:`pymotor.learn.report`: ``learn.json`` and ``learn.png``.
"""
from .committee import Committee, CommitteePrediction, calibrate_threshold, force_std, resolve_committee
from .loop import DEFAULTS, LearnResult, OnTheFlyPotential, on_the_fly

__all__ = ["on_the_fly", "LearnResult", "OnTheFlyPotential", "DEFAULTS", "Committee", "CommitteePrediction",
           "calibrate_threshold", "force_std", "resolve_committee"]
