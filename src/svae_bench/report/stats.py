"""The statistics of the tables: a cell's values (:class:`Stat`) and Welch's t-test for bold cells."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: significance level of the bold rule (the paper's tables bold at p < 0.01)
ALPHA = 0.01


def welch_pvalue(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances) for equal means.

    Non-finite values are dropped first; NaN when either sample then has fewer
    than two values or the p-value is undefined (e.g. both samples constant and equal).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2:
        return math.nan
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def welch_significant(a: np.ndarray, b: np.ndarray, alpha: float = ALPHA) -> bool:
    """True when Welch's t-test (:func:`welch_pvalue`) rejects equal means at level ``alpha``."""
    pvalue = welch_pvalue(a, b)
    return bool(np.isfinite(pvalue) and pvalue < alpha)


@dataclass(frozen=True)
class Stat:
    """The finite values of one metric in one table cell, already scaled for display."""

    values: np.ndarray

    @property
    def n(self) -> int:
        return int(self.values.size)

    @property
    def mean(self) -> float:
        return float(self.values.mean()) if self.n else math.nan

    @property
    def std(self) -> float:
        return float(self.values.std(ddof=1)) if self.n > 1 else math.nan
