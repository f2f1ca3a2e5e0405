"""Resumable training state: everything needed to continue a run after a completed epoch.

:class:`TrainState` is what the loop (:mod:`svae_bench.training.loop`) trains:
the model, the optimiser and its learning rate, the two seeded generators, the
early-stopping state, the metrics history and the fault events. Its
:meth:`~TrainState.snapshot` is both the rollback point after a numerical
fault and the content of ``state.pt``; :meth:`~TrainState.restore` undoes
everything since a snapshot. Nothing in it depends on the kind of model or on
the objective.

``state.pt`` in the run directory is rewritten atomically at the end of every
epoch. It holds the model and optimiser state, the epoch, the early-stopping
state (best objective, best epoch, epochs since the best, the best weights),
the metrics history, the numerical-fault events, and every random state the
run draws from: torch's global generator (posterior samples; CUDA's too when
used), numpy's and Python's global generators, and the two seeded generators
of the data order and the dynamic binarisation. Restoring it and continuing
gives the same numbers as a run that was never interrupted.

Only tensors, numbers, strings, lists and dicts are stored, so the file loads
with ``torch.load(weights_only=True)``: a checkpoint cannot run code.
"""

from __future__ import annotations

import copy
import math
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..records import STATE_FILE, save_torch_atomic

FORMAT = 1
_REQUIRED = (
    "format",
    "epoch",
    "model",
    "optimizer",
    "best",
    "best_epoch",
    "since_best",
    "best_state",
    "history",
    "rng",
    "events",
    "lr",
    "config",
)


class CorruptCheckpoint(ValueError):
    """state.pt exists but cannot be used; the message says why."""


def rng_state(order_gen: torch.Generator, binarize_gen: torch.Generator) -> dict[str, Any]:
    """Every random state of a training run, as tensors and plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
        "order": order_gen.get_state(),
        "binarize": binarize_gen.get_state(),
    }


def set_rng_state(state: dict[str, Any], order_gen: torch.Generator, binarize_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss_next"]))
    order_gen.set_state(state["order"])
    binarize_gen.set_state(state["binarize"])


@dataclass
class TrainState:
    """A training run between two steps; ``epoch`` is the last completed epoch (0: none yet).

    best: the best validation objective so far (-inf before the first epoch), reached at
    ``best_epoch`` with the weights ``best_weights``; since_best: epochs without improvement
    counted so far. history: one metrics row per completed epoch. events: the run's numerical
    faults, resumes and discarded states (never rolled back). config: the values a saved state
    must have been made with to be resumed.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    lr: float
    order_gen: torch.Generator
    binarize_gen: torch.Generator
    config: dict = field(default_factory=dict)
    epoch: int = 0
    best: float = -math.inf
    best_epoch: int = 0
    since_best: int = 0
    best_weights: dict | None = None
    history: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of the state (the random states included): the content of state.pt."""
        return {
            "epoch": self.epoch,
            "model": copy.deepcopy(self.model.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "best": self.best,
            "best_epoch": self.best_epoch,
            "since_best": self.since_best,
            "best_state": copy.deepcopy(self.best_weights),
            "history": copy.deepcopy(self.history),
            "rng": rng_state(self.order_gen, self.binarize_gen),
            "events": copy.deepcopy(self.events),
            "lr": self.lr,
            "config": self.config,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Back to ``state`` (a snapshot, or a loaded state.pt), except the events, which are kept.

        Raises what load_state_dict and the generators raise on a state that does not fit
        (RuntimeError, ValueError, TypeError, KeyError, ...), possibly after a partial restore."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])
        self.since_best = int(state["since_best"])
        self.best_weights = copy.deepcopy(state["best_state"])
        self.history = copy.deepcopy(state["history"])
        self.set_lr(float(state["lr"]))
        set_rng_state(state["rng"], self.order_gen, self.binarize_gen)
        self.epoch = int(state["epoch"])

    def set_lr(self, lr: float) -> None:
        self.lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr


def save_state(run_dir: Path, state: dict[str, Any]) -> None:
    save_torch_atomic(Path(run_dir) / STATE_FILE, {"format": FORMAT, **state})


def load_state(run_dir: Path) -> dict[str, Any] | None:
    """The saved state, None if there is none; CorruptCheckpoint if it cannot be used."""
    path = Path(run_dir) / STATE_FILE
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, pickle errors, refused globals: all "corrupt"
        raise CorruptCheckpoint(
            f"{path} cannot be read ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
        ) from None
    if not isinstance(state, dict):
        raise CorruptCheckpoint(f"{path} does not hold a training state")
    missing = [key for key in _REQUIRED if key not in state]
    if missing:
        raise CorruptCheckpoint(f"{path} lacks {', '.join(missing)}")
    if state["format"] != FORMAT:
        raise CorruptCheckpoint(f"{path} has format {state['format']!r}, expected {FORMAT}")
    rng = state["rng"]
    nested = {
        "rng": ("torch", "numpy", "python", "order", "binarize"),
        "rng.numpy": ("kind", "keys", "pos", "has_gauss", "cached"),
        "rng.python": ("version", "internal", "gauss_next"),
    }
    for where, keys in nested.items():
        node = {
            "rng": rng,
            "rng.numpy": rng.get("numpy") if isinstance(rng, dict) else None,
            "rng.python": rng.get("python") if isinstance(rng, dict) else None,
        }[where]
        if not isinstance(node, dict) or any(key not in node for key in keys):
            raise CorruptCheckpoint(f"{path} has an incomplete {where}")
    if not isinstance(state["model"], dict) or not isinstance(state["optimizer"], dict):
        raise CorruptCheckpoint(f"{path} has no model or optimiser state")
    return state


def remove_state(run_dir: Path) -> None:
    path = Path(run_dir) / STATE_FILE
    if path.is_dir() and not path.is_symlink():  # not ours, but in the way of the next save
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
