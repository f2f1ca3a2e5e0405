"""The names of the files in a run directory (one place; nobody else spells them).

A run directory holds, besides these, what its task writes (e.g. latent.npz).
"""

from __future__ import annotations

RESULT_FILE = "result.json"  #: the record, written last; ``status: complete`` marks a finished run
STATUS_FILE = "status.json"  #: running / failed / complete, epoch, host, pid, time
LOCK_FILE = ".lock"  #: flock'ed by the process that runs the run
CONFIG_FILE = "config.yaml"  #: the resolved config, written when the run starts
METRICS_FILE = "metrics.csv"  #: one row per training epoch
STATE_FILE = "state.pt"  #: the resumable training state, while the run is unfinished
CHECKPOINT_FILE = "checkpoint.pt"  #: the best-validation weights, the ones evaluated
LOG_FILE = "run.log"  #: the run's log (Hydra's job logging)


def format_number(x) -> str:
    """Numbers in run directory names: 1, 1.0 and 1e0 all give '1'; 0.1 gives '0.1'."""
    return format(float(x), "g")
