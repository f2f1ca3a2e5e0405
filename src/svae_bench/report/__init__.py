"""Report: tables, the comparison with the paper and figures, from run records alone.

Never imports training, the tasks or Hydra: tables can be rebuilt at any time
from the records (``svae-bench tables``), as in DomainBed's collect step.
"""
