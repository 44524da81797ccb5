"""Which tracking ids the table shows: the top :data:`TOP_N` by count, of the whole summary or of
the ids matching a filter. No Textual here: the read worker ranks off the UI thread.

At 100,000 ids a table of every id would cost the UI seconds a refresh and nobody reads past the
first screens; ``heapq.nlargest`` picks the top ids in one pass over the summary, and the filter
searches the whole summary, so an id outside the top is still found.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tui import EVENT_TYPES
from tui.window import WindowView

TOP_N = 200  # rows at most: several screens at 120x40, and cheap to update cell by cell
ALL = "all"  # the "all types" row, and the "all types" view of the tracking-id table


@dataclass(frozen=True)
class Ranking:
    """The rows to show for one selection and filter."""

    selection: str
    needle: str  # the filter, lower-cased ("" for none)
    #: tracking id -> type -> count, for the shown ids only, highest first.
    rows: Mapping[str, Mapping[str, int]]
    matched: int  # ids that match the filter (every id without one)


def rank(
    view: WindowView,
    selection: str,
    needle: str = "",
    configured: Iterable[str] = (),
    limit: int = TOP_N,
) -> Ranking:
    """The top ``limit`` ids of ``selection`` (a type, or ``all`` by their total), among those whose
    id contains ``needle`` (case-insensitive); the configured ids count too, at zero if unseen."""
    needle = needle.lower()
    summaries = {t: view.summary[t].by_tracking_id for t in EVENT_TYPES}
    if selection == ALL:
        weights: dict[str, int] = dict.fromkeys(configured, 0)
        for by_tid in summaries.values():
            for tid, count in by_tid.items():
                weights[tid] = weights.get(tid, 0) + count
    else:
        weights = {**dict.fromkeys(configured, 0), **summaries[selection]}
    candidates = (
        [tid for tid in weights if needle in tid.lower()] if needle else weights
    )
    top = heapq.nlargest(limit, candidates, key=lambda tid: (weights[tid], tid))
    rows = {tid: {t: summaries[t].get(tid, 0) for t in EVENT_TYPES} for tid in top}
    return Ranking(selection, needle, rows, len(candidates))
