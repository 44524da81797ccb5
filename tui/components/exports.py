"""What ``e`` exports from the main screen, as :class:`~tui.history.export.Table`: the type table
(the summary) or the tracking-id table with its ``/`` filter, rows in the order shown."""

from __future__ import annotations

from collections.abc import Sequence

from tui import EVENT_TYPES
from tui.components.format import share
from tui.components.ranking import ALL, Ranking
from tui.events import iso_ms
from tui.history.export_files import Cell, Table
from tui.rates import RateMeter
from tui.window import WindowView


def _facts(what: str, view: WindowView) -> dict[str, object]:
    return {
        "what": what,
        "asOf": iso_ms(int(view.as_of * 1000)),
        "window": view.label,
        "incomplete": bool(view.incomplete),
        "incompleteParts": view.incomplete_json(),
    }


def summary_table(view: WindowView, meter: RateMeter[tuple[str, str]]) -> Table:
    """Per type (and all types): events in the window, events/s over the last 5 s (None until
    measured), share of all events, and whether the window was read whole."""
    rows: list[Sequence[Cell]] = []
    for etype in (*EVENT_TYPES, ALL):
        count = view.total if etype == ALL else view.summary[etype].total
        rate = round(meter.rate_where(lambda k, t=etype: t in (ALL, k[0])), 2) if meter.ready else None  # type: ignore[misc]
        rows.append((etype, count, rate, round(share(count, view.total), 2), bool(view.incomplete)))
    return Table(("type", "events", "events_per_second_5s", "share_percent", "incomplete"), rows, _facts("summary", view))


def tids_table(view: WindowView, ranking: Ranking, order: Sequence[str]) -> Table:
    """The ids shown (``order``: as the table lists them), with their counts of the selected type
    (or per type and in all, for all types), and the filter in the facts."""
    facts = {**_facts("tracking ids", view), "type": ranking.selection, "filter": ranking.needle, "matched": ranking.matched}
    if ranking.selection == ALL:
        columns: tuple[str, ...] = ("tracking_id", *EVENT_TYPES, "total", "incomplete")
        rows: list[Sequence[Cell]] = [
            (tid, *(ranking.rows[tid].get(t, 0) for t in EVENT_TYPES), sum(ranking.rows[tid].values()), bool(view.incomplete)) for tid in order
        ]
        return Table(columns, rows, facts)
    total = view.summary[ranking.selection].total
    rows = []
    for tid in order:
        count = ranking.rows[tid].get(ranking.selection, 0)
        rows.append((tid, ranking.selection, count, round(share(count, total), 2), bool(view.incomplete)))
    return Table(("tracking_id", "type", "events", "share_percent", "incomplete"), rows, facts)
