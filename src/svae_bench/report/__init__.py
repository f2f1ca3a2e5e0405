"""Report: tables, the comparison with the paper and figures, from run records alone.

Never imports training, the tasks or Hydra: tables can be rebuilt at any time
from the records (``svae-bench tables``), as in DomainBed's collect step.

Importing the package registers the shipped table specs (:mod:`svae_bench.report.specs`),
so that every reader of records knows what each task's records hold.
"""

from . import specs as specs  # registers the shipped tables and record kinds
