"""Per event type: events in the window, their distinct visitors, events/s over the last few
seconds, share of all."""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.widgets.data_table import ColumnKey

from tui import EVENT_TYPES
from tui.components.alert_marks import Flags, cell_style
from tui.components.format import num, rate, share
from tui.components.ranking import ALL
from tui.components.unchanged import set_cell, set_titles
from tui.components.snapshot import Live
from tui.components.visitors import VISITORS, Figure, VisitorsTips, live_only_gaps, live_total, visitor_gaps, visitors_cell
from tui.rates import RATE_SPAN_SECONDS, RateMeter
from tui.window import WindowView

__all__ = ["ALL", "RATE_LABEL", "TypesTable"]
RATE_LABEL = f"ev/s {RATE_SPAN_SECONDS:g}s"
#: Always shown: (key, label).
BASE = (("type", "type"), ("events", "events"), (VISITORS, VISITORS))
#: Shown while the tracking-id table still fits beside (:meth:`TypesTable.fit`), dropped from the
#: end: the share goes first (it is the events over their total), then the rate (the sparklines
#: give each type's too).
OPTIONAL = (("rate", RATE_LABEL), ("share", "share"))
ALL_LABEL = Text("all types", style="bold")


class TypesTable(VisitorsTips):
    """Rows by type and "all types"; columns of :data:`OPTIONAL` come and go with :meth:`fit`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: The optional columns' cells by row, the hidden ones too: a column that fits again is
        #: filled from here, and its width is known before it is shown.
        self.cells: dict[str, dict[str, Text]] = {key: {} for key, _ in OPTIONAL}
        self.optional = len(OPTIONAL)  # how many of OPTIONAL are shown (all, from on_mount)

    def on_mount(self) -> None:
        self.border_title = "Event types"
        for label, key in (*((label, key) for key, label in BASE), *((label, key) for key, label in OPTIONAL)):
            self.add_column(label, key=key)
        for etype in (*EVENT_TYPES, ALL):
            self.add_row(etype if etype != ALL else ALL_LABEL, "", "", "", "", key=etype)

    def show(self, view: WindowView, meter: RateMeter[tuple[str, str]], live: Live | None = None, flags: Flags | None = None) -> None:
        """``live``: its figure over every id goes in the border title (``Event types · live
        ≈1,234``), where it takes no column from a table that already gives up two at 80 columns.
        ``flags``: the alerts by series; a type's own (id None) colours and badges its row."""
        flags = flags or Flags()
        total = view.total
        read = self.visitors_read = view.visitors
        for etype in (*EVENT_TYPES, ALL):
            count = total if etype == ALL else view.summary[etype].total
            per_second = meter.rate_where(lambda k, t=etype: t in (ALL, k[0]))  # type: ignore[misc]
            alert = flags.get((etype, None))
            style = "bold" if etype == ALL else cell_style(alert)
            # "all types" is the union of the types, not their sum: a visitor of several counts once
            estimate = None if read is None else read.total if etype == ALL else read.series_totals.get(etype)
            self.figures[etype] = Figure(estimate, count)
            set_cell(self, etype, "type", flags.name(etype, alert) if etype != ALL else ALL_LABEL, update_width=True)
            set_cell(self, etype, "events", num(count, style=style), update_width=True)
            set_cell(self, etype, VISITORS, visitors_cell(read, estimate, count, style), update_width=True)
            self.cells["rate"][etype] = Text(rate(per_second) if meter.ready else "–", justify="right", style=style)
            self.cells["share"][etype] = num(share(count, total), ".1f", "%", style=style)
        self._fill()
        self.live = live
        title = live_total(live)
        set_titles(self, Text("Event types · ").append_text(title) if title is not None else "Event types",
                   incomplete_label(view, live) or view.label)

    def _fill(self) -> None:
        for key, _ in OPTIONAL[: self.optional]:
            for etype, value in self.cells[key].items():
                set_cell(self, etype, key, value, update_width=True)

    def fit(self, rooms: tuple[int, ...]) -> None:
        """Show the optional columns that fit, in order: the table with the ``i``-th of
        :data:`OPTIONAL` and those before it must fit in ``rooms[i]`` cells (borders included).
        Each has its own room, so the app can rank each beside the tracking-id table's extras."""
        width, shown = self.base_width, 0
        for (key, label), room in zip(OPTIONAL, rooms, strict=True):
            width += 2 * self.cell_padding + max([cell_len(label), *(v.cell_len for v in self.cells[key].values())])
            if width > room:
                break
            shown += 1
        if shown == self.optional:
            return
        for key, _ in reversed(OPTIONAL[shown : self.optional]):
            self.remove_column(key)
        for key, label in OPTIONAL[self.optional : shown]:
            self.add_column(label, key=key)
        self.optional = shown
        self._fill()

    @property
    def base_width(self) -> int:
        """Cells the table needs without its optional columns, borders included."""
        return sum(self.columns[ColumnKey(key)].get_render_width(self) for key, _ in BASE) + 2

    @property
    def content_width(self) -> int:
        """Columns the table needs, borders included: the left column is sized to this."""
        return sum(column.get_render_width(self) for column in self.columns.values()) + 2  # the borders


def incomplete_label(view: WindowView, live: Live | None = None) -> Text | None:
    """In red, instead of the window's label, while part of the window (or of the live span) could
    not be read: the counts (or only the visitors, then it says so) are then low, and the user must
    see it and be able to ask why."""
    counted, visitors = len(view.incomplete), len(visitor_gaps(view)) + len(live_only_gaps(view, live))
    if not counted and not visitors:
        return None
    if not counted:  # no count of gaps: the label fits the type table at 80 columns
        return Text("visitors incomplete — press i", style="bold white on red")
    gaps = counted + visitors
    return Text(f"incomplete: {gaps} gap{'s' if gaps != 1 else ''} — press i", style="bold white on red")
