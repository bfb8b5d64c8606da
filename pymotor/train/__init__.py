"""Training, evaluation and export of SchNetPack models (issue 4).

SchNetPack and Lightning are imported only inside the functions, so ``import pymotor.train``
(and the command line) works without them.
"""

from __future__ import annotations

from .committee import train_committee
from .core import train
from .data import TrainingDataError
from .evaluate import evaluate, evaluate_model, format_metrics, summarize_seeds
from .export import export, read_metadata
from .model import DEFAULT_HYPERPARAMETERS

__all__ = ["train", "train_committee", "evaluate", "evaluate_model", "summarize_seeds", "export", "format_metrics", "read_metadata",
           "TrainingDataError", "DEFAULT_HYPERPARAMETERS"]
