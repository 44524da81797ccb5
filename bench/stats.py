"""The order statistics every bench reports: one definition, so a p99 means the same in every table."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def pct(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile by nearest rank (0.0 for no values)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, p99, max and count of a non-empty sample."""
    return {"p50": statistics.median(values), "p99": pct(values, 0.99), "max": max(values), "n": len(values)}
