"""What ``e`` exports from the main screen, as :class:`~tui.history.export.Table`: the type table
(the summary) or the tracking-id table with its ``/`` filter, rows in the order shown.

Both carry the distinct visitors the tables show, as numbers: the estimate rounded and its range
at 95 % (``visitors``, ``visitors_lower``, ``visitors_upper``), empty where the table shows ``—``
or ``–`` (not read), and ``visitors_incomplete`` when a sketch of the window was lost; the
tracking-id table adds ``live_visitors`` (every type over ``live_minutes``) when it was read."""

from __future__ import annotations

from collections.abc import Sequence

from tui import EVENT_TYPES
from tui.components.format import share
from tui.components.ranking import ALL, Ranking
from tui.components.snapshot import Live
from tui.distinct.sketch import Estimate
from tui.events import iso_ms
from tui.history.export_files import Cell, Table
from tui.rates import RateMeter
from tui.window import WindowView, listed_gaps

#: The columns of a visitors figure.
VISITOR_COLUMNS = ("visitors", "visitors_lower", "visitors_upper")


def _facts(what: str, view: WindowView) -> dict[str, object]:
    return {
        "what": what,
        "asOf": iso_ms(int(view.as_of * 1000)),
        "window": view.label,
        "incomplete": bool(view.incomplete),
        "incompleteParts": view.incomplete_json(),
        "visitorsIncompleteParts": listed_gaps(view.visitors.incomplete, view.bucket_seconds) if view.visitors is not None else [],
    }


def _figure(estimate: Estimate | None) -> tuple[Cell, Cell, Cell]:
    """The estimate rounded and its bounds; empty cells where there is none (not read)."""
    return (None, None, None) if estimate is None else estimate.rounded()


def _visitors_incomplete(view: WindowView) -> bool:
    return view.visitors is not None and bool(view.visitors.incomplete)


def summary_table(view: WindowView, meter: RateMeter[tuple[str, str]]) -> Table:
    """Per type (and all types): events in the window, events/s over the last 5 s (None until
    measured), share of all events, whether the window was read whole, and the distinct visitors."""
    read = view.visitors
    rows: list[Sequence[Cell]] = []
    for etype in (*EVENT_TYPES, ALL):
        count = view.total if etype == ALL else view.summary[etype].total
        rate = round(meter.rate_where(lambda k, t=etype: t in (ALL, k[0])), 2) if meter.ready else None  # type: ignore[misc]
        visitors = None if read is None else read.total if etype == ALL else read.series_totals.get(etype)
        rows.append((etype, count, rate, round(share(count, view.total), 2), bool(view.incomplete), *_figure(visitors), _visitors_incomplete(view)))
    columns = ("type", "events", "events_per_second_5s", "share_percent", "incomplete", *VISITOR_COLUMNS, "visitors_incomplete")
    return Table(columns, rows, _facts("summary", view))


def tids_table(view: WindowView, ranking: Ranking, order: Sequence[str], live: Live | None = None) -> Table:
    """The ids shown (``order``: as the table lists them), with their counts of the selected type
    (or per type and in all, for all types), their distinct visitors of it (of any type, for all
    types) and their live visitors, and the filter in the facts."""
    facts = {**_facts("tracking ids", view), "type": ranking.selection, "filter": ranking.needle, "matched": ranking.matched}
    if live is not None:
        facts["liveSeconds"] = live.seconds
        facts["liveIncompleteParts"] = listed_gaps(live.read.incomplete, view.bucket_seconds)
    read = view.visitors
    figures = {} if read is None else read.by_id if ranking.selection == ALL else read.by_series.get(ranking.selection, {})
    extra = (*VISITOR_COLUMNS, "visitors_incomplete", "live_visitors")

    def visitors(tid: str) -> tuple[Cell, ...]:
        now = live.read.by_id.get(tid) if live is not None and tid in live.ids else None
        return (*_figure(figures.get(tid)), _visitors_incomplete(view), None if now is None else round(now.value))

    if ranking.selection == ALL:
        columns: tuple[str, ...] = ("tracking_id", *EVENT_TYPES, "total", "incomplete", *extra)
        rows: list[Sequence[Cell]] = [
            (tid, *(ranking.rows[tid].get(t, 0) for t in EVENT_TYPES), sum(ranking.rows[tid].values()), bool(view.incomplete), *visitors(tid))
            for tid in order
        ]
        return Table(columns, rows, facts)
    total = view.summary[ranking.selection].total
    rows = []
    for tid in order:
        count = ranking.rows[tid].get(ranking.selection, 0)
        rows.append((tid, ranking.selection, count, round(share(count, total), 2), bool(view.incomplete), *visitors(tid)))
    return Table(("tracking_id", "type", "events", "share_percent", "incomplete", *extra), rows, facts)
