"""Distinct visitors in the tables: how a figure is written, when it is flagged, and the hover tip
that gives its range. Nothing is read here: the figures come with the window view
(``view.visitors``, a :class:`~tui.store.sketch_reads.DistinctRead`).

* An estimate is written rounded and with ``≈`` (``≈1,234``): a HyperLogLog count is not exact, and
  digits without the sign would read as exact as the event counts beside them. Its range at 95 % is
  in the hover tip and the help, so the column stays as narrow as the counts.
* While any sketch value of the window could not be read whole, every figure of the column carries
  :data:`MARK` and the type table's border says so (``i`` lists why). The read cannot tell which
  ids a lost value held, so any figure may be low.
* An id with events but no figure was not read: the window read gives figures to the
  :data:`~tui.pipeline.reader.MAX_VISITOR_IDS` busiest ids only, so its cost does not grow with
  100,000 ids. It shows :data:`NOT_READ`, never ``0``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from rich.text import Text
from textual.events import Leave, MouseMove
from textual.widgets import DataTable

from tui.distinct.sketch import Estimate, relative_error_bound
from tui.components.snapshot import Live
from tui.pipeline.reader import MAX_VISITOR_IDS
from tui.store.sketch_reads import DistinctRead
from tui.window import Gap, WindowView

#: The column's key and label in both tables.
VISITORS = "visitors"
#: The tracking-id table's column of live visitors (over ``live_minutes``, every type united).
LIVE = "live"
#: After every figure of the column while the window's sketches were not all read whole.
MARK = " !"
#: An id with events that the read left out (beyond the busiest) or whose sketch was lost.
NOT_READ = "—"
#: Before the first read with visitors (the view has none): nothing to say yet.
UNKNOWN = "–"


def visitor_gaps(view: WindowView) -> tuple[Gap, ...]:
    """Why the window's visitors may be low (empty when they were read whole or not at all)."""
    return view.visitors.incomplete if view.visitors is not None else ()


def rounded(estimate: Estimate) -> str:
    """``≈1,234``; an empty sketch is exactly ``0``."""
    value = round(estimate.value)
    return f"≈{value:,}" if value else "0"


def visitors_cell(read: DistinctRead | None, estimate: Estimate | None, events: int, style: str = "") -> Text:
    """The cell of a figure: rounded, :data:`NOT_READ` for an id with events but none, and
    :data:`MARK` in red while the read is incomplete. ``events``: the row's events in the window
    (an id without any has no visitors, so ``0`` is then exact)."""
    if read is None:
        return Text(UNKNOWN, justify="right", style=style)
    if estimate is not None:
        shown = rounded(estimate)
    else:
        shown = "0" if events == 0 else NOT_READ
    text = Text(shown, justify="right", style=style)
    if read.incomplete and events:
        text.append(MARK, style="bold red")
    return text


def live_cell(live: Live | None, tid: str) -> Text:
    """A row's live figure: rounded; ``0`` for an id read whole without visitors in the live span
    (it had none); :data:`NOT_READ` for an id the live read did not ask for (the table showed
    other rows when it was read), or one without a figure while the read is incomplete (its
    sketch may be the one lost); :data:`MARK` in red while the live read is incomplete."""
    if live is None:
        return Text(UNKNOWN, justify="right")
    estimate = live.read.by_id.get(tid)
    if estimate is not None:
        shown = rounded(estimate)
    else:
        shown = "0" if tid in live.ids and not live.read.incomplete else NOT_READ
    text = Text(shown, justify="right")
    if live.read.incomplete:
        text.append(MARK, style="bold red")
    return text


def live_total(live: Live | None) -> Text | None:
    """The all-sites live figure for the type table's border title: ``live ≈1,234`` (with
    :data:`MARK` while incomplete), or None before a live read."""
    if live is None or live.read.total is None:
        return None
    text = Text(f"{LIVE} {rounded(live.read.total)}")
    if live.read.incomplete:
        text.append(MARK, style="bold red")
    return text


def live_gaps(live: Live | None) -> tuple[Gap, ...]:
    """Why the live figures may be low (empty when read whole or not at all)."""
    return live.read.incomplete if live is not None else ()


def live_only_gaps(view: WindowView, live: Live | None) -> tuple[Gap, ...]:
    """The live read's gaps that the window's do not list already: the live span is mostly inside
    the window, so one lost value is usually a gap of both, and counting it twice would say there
    are more losses than there are."""
    listed = {*view.incomplete, *visitor_gaps(view)}
    return tuple(gap for gap in live_gaps(live) if gap not in listed)


def live_width(live: Live | None) -> int:
    """Cells the widest live figure of the table needs: the label, or the widest of the ids read
    (the column shows no other figure), with :data:`MARK` while it is shown. Not the total over
    every id, unlike the visitors column: that one is in the type table's title, and the few cells
    it would take here are what the trends need at 120 columns."""
    if live is None:
        return len(LIVE)
    widest = max((len(rounded(e)) for e in live.read.by_id.values()), default=len(NOT_READ))
    return max(len(LIVE), max(widest, len(NOT_READ)) + (len(MARK) if live.read.incomplete else 0))


def cell_width(read: DistinctRead | None) -> int:
    """Cells the widest figure of the column needs: the label, or the window's total (no figure of
    one id or type is larger, but by the estimates' error), with :data:`MARK` while it is shown."""
    if read is None or read.total is None:
        return len(VISITORS)
    return max(len(VISITORS), len(rounded(read.total)) + (len(MARK) if read.incomplete else 0))


def error_percent(lg_k: int) -> float:
    """The ± of an estimate in percent, at 95 % (two standard deviations)."""
    return 100 * relative_error_bound(lg_k)


class Figure(NamedTuple):
    """What a row's visitors cell says, kept for its hover tip."""

    estimate: Estimate | None
    events: int


def figure_tip(figure: Figure, read: DistinctRead | None) -> str:
    """The hover tip of one figure: its range at 95 %, or why there is none, and whether it may be low."""
    if read is None:
        return "Distinct visitors: not read yet"
    estimate, events = figure
    if estimate is not None:
        tip = f"≈{estimate.value:,.0f} distinct visitors: 95 % between {estimate.lower:,.0f} and {estimate.upper:,.0f}"
    elif events == 0:
        tip = "No events in the window: no visitors"
    else:
        tip = f"No figure: only the {MAX_VISITOR_IDS:,} busiest ids of the window are read ({read.omitted:,} left out)"
    if read.incomplete and events:
        gaps = len(read.incomplete)
        tip += f"\nMay be LOW: {gaps} part{'s' if gaps != 1 else ''} of the window's sketches could not be read (press i)"
    return tip


def live_tip(live: Live | None, tid: str) -> str:
    """The hover tip of a live figure: its range at 95 %, or why there is none, and whether it may be low."""
    if live is None:
        return "Live visitors: not read yet"
    minutes = f"{live.seconds / 60:g} min"
    estimate = live.read.by_id.get(tid)
    if estimate is not None:
        tip = f"≈{estimate.value:,.0f} distinct visitors in the last {minutes}: 95 % between {estimate.lower:,.0f} and {estimate.upper:,.0f}"
    elif tid in live.ids and live.read.incomplete:
        tip = f"No figure: its sketches of the last {minutes} could not all be read"
    elif tid in live.ids:
        tip = f"No events in the last {minutes}: no live visitors"
    else:
        tip = "Not read: the live read asks only for the rows shown when it was made"
    gaps = len(live.read.incomplete)
    if gaps:
        tip += f"\nMay be LOW: {gaps} part{'s' if gaps != 1 else ''} of the live span's sketches could not be read (press i)"
    return tip


class VisitorsTips(DataTable[Text | str]):
    """A table with a :data:`VISITORS` column (and, in the tracking-id table, a :data:`LIVE` one)
    whose figures explain themselves on hover: the header says what they are and their ±, a cell
    its range. The ± is in no cell, so the columns stay narrow."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: The visitors figure of each row (by row key) and the read it came from.
        self.figures: dict[str, Figure] = {}
        self.visitors_read: DistinctRead | None = None
        #: The live read the :data:`LIVE` column shows (None before one, or without the column).
        self.live: Live | None = None
        self.lg_k: int | None = None  # the prefix's sketch size, for the header's ±

    def live_header_tip(self) -> str:
        span = f"the last {self.live.seconds / 60:g} min" if self.live is not None else "the last live_minutes"
        return (
            f"Live visitors: distinct visitors (visitorId) of every type in {span} (live_minutes,\n"
            "the API's /api/v1/live), whatever the window. Press ? for more."
        )

    def header_tip(self) -> str:
        error = f", within about ±{error_percent(self.lg_k):.1f} % at 95 %" if self.lg_k is not None else ""
        return (
            f"Distinct visitors (visitorId) in the window: HyperLogLog estimates{error}.\n"
            "Not the sum of the types: a visitor seen in several counts once. Press ? for more."
        )

    def on_mouse_move(self, event: MouseMove) -> None:
        """Set the tooltip for the cell under the mouse: only the visitors column has one."""
        meta = event.style.meta
        tip: str | None = None
        column, row = meta.get("column", -1), meta.get("row", -2)
        key = self.ordered_columns[column].key.value if not meta.get("out_of_bounds") and 0 <= column < len(self.ordered_columns) else None
        if key == VISITORS:
            if row == -1:
                tip = self.header_tip()
            elif 0 <= row < len(self.ordered_rows):
                figure = self.figures.get(str(self.ordered_rows[row].key.value))
                tip = figure_tip(figure, self.visitors_read) if figure is not None else None
        elif key == LIVE:
            if row == -1:
                tip = self.live_header_tip()
            elif 0 <= row < len(self.ordered_rows):
                tip = live_tip(self.live, str(self.ordered_rows[row].key.value))
        if tip != self.tooltip:
            self.tooltip = tip

    def on_leave(self, _: Leave) -> None:
        if self.tooltip is not None:
            self.tooltip = None
