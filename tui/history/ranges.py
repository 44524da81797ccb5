"""The history screen's ranges: the zoom levels, stepping back through time, and reading one range
of one type (and tracking id, or all of them) through :func:`~tui.history.aggregate.run_query`.

ServerTrack's two views are two of the zooms: the last 60 minutes per minute and the last 24 hours
per hour. A range that reaches back past what its step's level keeps is read at the next coarser
step still kept there (and says so), rather than refused: the screen can always step further back
until nothing is kept at all.
"""

from __future__ import annotations

import glob
import json
import time
from dataclasses import dataclass

from tui.history.aggregate import QueryResult, run_query
from tui.history.export import to_csv, to_json
from tui.history.query import Query, QueryError, format_duration, is_glob
from tui.history.source import HistorySource
from tui.window import LEVELS, Gap


@dataclass(frozen=True)
class Zoom:
    """A range length and the step it is shown at by default."""

    name: str
    seconds: int
    step_seconds: int


ZOOMS: tuple[Zoom, ...] = (
    Zoom("5m", 300, 10),
    Zoom("1h", 3600, 60),
    Zoom("6h", 6 * 3600, 600),
    Zoom("24h", 86_400, 3600),
    Zoom("7d", 7 * 86_400, 3600),
)
DEFAULT_ZOOM = 1  # the last hour per minute


@dataclass(frozen=True)
class HistoryStep:
    """One step as the chart and the table show it."""

    start_ms: int
    count: int
    incomplete: bool
    filling: bool


@dataclass(frozen=True)
class HistoryView:
    """One read range: its steps (oldest first) or why there are none, and what was asked."""

    etype: str | None  # None: every type
    tracking_id: str | None  # None: every id
    zoom: Zoom
    pages_back: int
    step_seconds: int
    start_ms: int
    end_ms: int
    as_of: float
    bucket_seconds: int
    steps: tuple[HistoryStep, ...]
    gaps: tuple[Gap, ...]
    #: Why the step is coarser than the zoom's, or why nothing could be read (then no steps).
    note: str | None = None
    #: What the query answered (None when nothing is kept for the range): what ``e`` exports.
    result: QueryResult | None = None

    @property
    def total(self) -> int:
        return sum(s.count for s in self.steps)


def step_candidates(zoom: Zoom, bucket_seconds: int) -> list[int]:
    """The zoom's step (a whole number of buckets), then each coarser level's block length."""
    preferred = -(-zoom.step_seconds // bucket_seconds) * bucket_seconds
    return [preferred] + [span * bucket_seconds for span in LEVELS if span * bucket_seconds > preferred]


def range_end_ms(zoom: Zoom, pages_back: int, now: float, step_seconds: int) -> int:
    """The end of the range: the end of the step now falls in, ``pages_back`` whole ranges earlier."""
    step_ms = step_seconds * 1000
    return (int(now * 1000) // step_ms + 1) * step_ms - pages_back * zoom.seconds * 1000


def id_filter(tracking_id: str | None) -> tuple[str, ...]:
    """The query's tracking-id filter for one id: escaped if it holds glob characters, so that it
    matches itself only."""
    if tracking_id is None:
        return ()
    return (glob.escape(tracking_id) if is_glob(tracking_id) else tracking_id,)


def screen_name(param: str) -> str:
    """How a refusal names the query's parameters on the screen (not as flags): "step 10s: 10 s
    buckets are kept for 1 h; the range's start 11-25 07:50 UTC needs step 1m or coarser"."""
    return "the range's start" if param == "from" else param


def read_range(
    source: HistorySource, etype: str | None, tracking_id: str | None, zoom: Zoom, pages_back: int, now: float
) -> HistoryView:
    """Read one range. Raises StoreUnavailable; a range nothing is kept for comes back without steps
    and with the reason in ``note``."""
    layout = source.layout()
    candidates = step_candidates(zoom, layout.bucket_seconds)
    end_ms = range_end_ms(zoom, pages_back, now, candidates[0])
    start_ms = end_ms - zoom.seconds * 1000
    refusal = ""
    for step in candidates:
        step_ms = step * 1000
        query = Query(start_ms - start_ms % step_ms, -(-end_ms // step_ms) * step_ms, step, (etype,) if etype else (), id_filter(tracking_id))
        try:
            result = run_query(source.store, layout, query, now, screen_name, time.strftime("%m-%d %H:%M UTC", time.gmtime(start_ms / 1000)))
        except QueryError as exc:
            refusal = str(exc)
            if exc.param != "step":
                break
            continue
        note = None if step == candidates[0] else f"per {format_duration(step)}: {refusal.partition(': ')[2]}"
        return _view(result, etype, tracking_id, zoom, pages_back, note)
    return HistoryView(etype, tracking_id, zoom, pages_back, candidates[0], start_ms, end_ms, now, layout.bucket_seconds, (), (), refusal)


def _view(result: QueryResult, etype: str | None, tracking_id: str | None, zoom: Zoom, pages_back: int, note: str | None) -> HistoryView:
    query = result.query
    now_ms = int(result.as_of * 1000)
    steps = tuple(
        HistoryStep(row.start_ms, row.count, row.incomplete, row.start_ms <= now_ms < row.start_ms + query.step_ms)
        for row in result.rows
        if row.start_ms <= now_ms
    )
    return HistoryView(
        etype, tracking_id, zoom, pages_back, query.step_seconds, query.start_ms, query.end_ms, result.as_of, result.bucket_seconds,
        steps, result.incomplete, note, result,
    )


def export_name(view: HistoryView) -> str:
    """What an export of the view is called: ``history-signup-INF-x-1h``."""
    return "-".join(("history", view.etype or "all-types", view.tracking_id or "all-ids", view.zoom.name))


def export_text(view: HistoryView, fmt: str) -> str:
    """The view's rows as ``eventdash query`` prints the same query: CSV, or its JSON."""
    if view.result is None:
        raise ValueError("nothing was read for this range")
    return to_csv(view.result) if fmt == "csv" else json.dumps(to_json(view.result)) + "\n"
