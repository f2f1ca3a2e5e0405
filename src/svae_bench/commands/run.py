"""``svae-bench run [OVERRIDES] [-m]``: train and evaluate one run per Hydra job.

Every override is checked first (:mod:`svae_bench.launch.preflight`): a bad value
in any job of a sweep stops here with one line and exit status 2, before Hydra
writes anything. ``SVAE_BENCH_DEBUG=1`` skips the preflight, so errors raise
with their traceback inside the job.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

HELP = "train and evaluate one model per Hydra job (a Hydra app: overrides, -m sweeps, --cfg job, --help)"


def main(argv: Sequence[str]) -> int:
    from ..launch.preflight import check_run_overrides

    rest = list(argv)
    problem = None if os.environ.get("SVAE_BENCH_DEBUG") else check_run_overrides(rest)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from ..launch.app import hydra_main

    sys.argv = ["svae-bench run", *rest]
    hydra_main()
    return 0
