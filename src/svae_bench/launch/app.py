"""The Hydra application behind ``svae-bench run``: the only place a run meets Hydra.

Hydra composes the config and chooses the run directory
(``hydra.run.dir`` / ``hydra.sweep.subdir``, see conf/hydra/default.yaml); the
job hands both to the harness (:func:`svae_bench.tasks.harness.run_one`), which
owns everything that happens in the run directory.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from ..checks import check_inside
from ..errors import ConfigError
from ..records import LOG_FILE
from ..tasks.harness import run_one
from ..training import TrainingFailed
from . import resolvers  # noqa: F401  (registers ${svae_fmt:...} for hydra/default.yaml)


def discard_if_empty(out_dir: Path, runs_root: Path) -> None:
    """Remove what Hydra made for a job that stopped on bad input: its run.log, if that is all the
    run directory holds, and the directories left empty up to and including ``runs_root``."""
    try:
        if [p.name for p in out_dir.iterdir()] != [LOG_FILE]:
            return
        logging.shutdown()  # close the job's file handler before removing its file
        (out_dir / LOG_FILE).unlink()
        stop = runs_root.absolute().parent
        d = out_dir.absolute()
        while d != stop and d != d.parent and not any(d.iterdir()):
            d.rmdir()
            d = d.parent
    except OSError:
        pass


@hydra.main(version_base="1.3", config_path="pkg://svae_bench.conf", config_name="config")
def hydra_main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        check_inside(out_dir, str(cfg.runs_root))
        run_one(cfg, out_dir)
    except ConfigError as err:
        discard_if_empty(out_dir, Path(str(cfg.runs_root)))
        if os.environ.get("SVAE_BENCH_DEBUG"):
            raise  # the full traceback, for debugging
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except TrainingFailed:
        # Recorded in status.json. A single run exits 1; in a sweep the other jobs go on.
        if HydraConfig.get().mode == RunMode.RUN:
            sys.exit(1)
