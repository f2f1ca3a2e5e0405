"""Training: the loop over a :class:`TrainState` (minibatches, early stopping, NaN rollback, resume)
and its checkpoint; the objective is the caller's (an :class:`Objective`). Test hooks: :mod:`.hooks`."""

from .loop import TrainingFailed, TrainResult, TrainSettings, progress_enabled, train
from .objective import Objective, warmup_fraction
from .state import CorruptCheckpoint, TrainState, load_state, remove_state, save_state

__all__ = [
    "CorruptCheckpoint",
    "Objective",
    "TrainResult",
    "TrainSettings",
    "TrainState",
    "TrainingFailed",
    "load_state",
    "progress_enabled",
    "remove_state",
    "save_state",
    "train",
    "warmup_fraction",
]
