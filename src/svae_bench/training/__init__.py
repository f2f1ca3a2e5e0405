"""Training: the loop (minibatches, warm-up, early stopping, NaN rollback) and its resumable state."""

from .loop import METRIC_COLUMNS, TrainingFailed, TrainResult, progress_enabled, train
from .state import CorruptCheckpoint, load_state, remove_state, save_state

__all__ = [
    "METRIC_COLUMNS",
    "CorruptCheckpoint",
    "TrainResult",
    "TrainingFailed",
    "load_state",
    "progress_enabled",
    "remove_state",
    "save_state",
    "train",
]
