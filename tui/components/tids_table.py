"""Per tracking id: the top ids by count of the selected type (or a tracking id × type matrix for
all types), or those matching the ``/`` filter, with their distinct visitors, and, where the panel
has room, a share bar, the id's events/s and its recent trend. Which ids is decided by
:mod:`tui.components.ranking`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.events import Resize
from textual.widgets.data_table import ColumnKey

from tui import EVENT_TYPES
from tui.anomaly import FIRING, Alert
from tui.components.alert_marks import Flags, cell_style
from tui.components.format import bar, num, rate, share, trend
from tui.components.ranking import ALL, Ranking, rank
from tui.components.types_table import RATE_LABEL
from tui.components.unchanged import set_cell, set_titles
from tui.components.snapshot import Live
from tui.components.visitors import LIVE, VISITORS, Figure, VisitorsTips, cell_width, live_cell, live_width, visitors_cell
from tui.rates import RateMeter
from tui.window import OTHER_ID, WindowView

TREND_WIDTH = 12  # the last 12 refreshes
SHARE_WIDTH = len("100.0%")
BAR_WIDTH = (6, 24)  # a share bar only when at least 6 cells fit; never wider than 24
SCROLLBAR = 2  # cells of the vertical scrollbar, when the ids outgrow the panel


@dataclass(frozen=True)
class Layout:
    """The columns the panel shows: always the counts and visitors, then the extras that fit its
    width: the live visitors first (the issue's "visitors right now"; at 80 columns they fit only
    in the all-types matrix, which then takes the whole width), then the share (the narrowest,
    and beside the counts it explains)."""

    selected: str
    bar: int  # cells of the share bar, 0 for none
    rate: bool
    trend: bool
    share: bool = True  # of the type's events (never for all types)
    live: bool = True  # the live visitors

    def columns(self) -> list[tuple[str, str]]:
        """(key, label) of each column."""
        live = [(LIVE, LIVE)] if self.live else []
        if self.selected == ALL:
            counts = [(t, t) for t in EVENT_TYPES] + [("total", "total"), (VISITORS, VISITORS), *live]
        else:
            counts = [("events", "events"), (VISITORS, VISITORS), *live] + ([("share", "share")] if self.share else [])
        extras = [("bar", "")] if self.bar else []
        extras += [("rate", RATE_LABEL)] if self.rate else []
        extras += [("trend", "trend")] if self.trend else []
        return [("tid", "tracking id"), *counts, *extras]


def preferred_extras(selected: str) -> int:
    """Cells of the extras that rank above the type table's share (:meth:`TypesTable.fit`): the
    id's share, its rate and its trend. The bar ranks below: it draws the share once more."""
    return (SHARE_WIDTH + 2 if selected != ALL else 0) + len(RATE_LABEL) + 2 + TREND_WIDTH + 2


def fit(selected: str, width: int, base: int, spare: int, live_cells: int = 0) -> Layout:
    """The extras that fit ``width`` cells beside ``base`` cells of counts (and ``spare`` for a
    scrollbar), in order of use; ``live_cells``: the live column's, padding included."""
    free = width - base - spare
    show_live = free >= live_cells
    free -= live_cells if show_live else 0
    show_share = selected != ALL and free >= SHARE_WIDTH + 2
    free -= SHARE_WIDTH + 2 if show_share else 0
    rate_cells = len(RATE_LABEL) + 2
    show_rate = free >= rate_cells
    free -= rate_cells if show_rate else 0
    show_trend = free >= TREND_WIDTH + 2
    free -= TREND_WIDTH + 2 if show_trend else 0
    bar_cells = min(BAR_WIDTH[1], free - 2) if selected != ALL and free - 2 >= BAR_WIDTH[0] else 0
    return Layout(selected, bar_cells, show_rate, show_trend, show_share, show_live)


class TidsTable(VisitorsTips):
    """Rows are added, removed and updated by key, never cleared on a refresh (only when the
    columns change), so the cursor stays on its id when the order changes.

    Visitors: for a type, the id's distinct visitors of that type (beside its events of that type);
    for all types, of all types together, which is not the sum of the types'. Live: the id's
    distinct visitors of every type over ``live_minutes`` (whatever the window and the selection),
    as the API's ``/api/v1/live`` says."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self.selected = EVENT_TYPES[0]
        self.sort_by_count = True
        self.needle = ""  # the / filter, as typed
        self.layout_now: Layout | None = None
        self.ranking: Ranking | None = None
        #: When the counts by id were read, if the dashboard kept an earlier read (many ids).
        self.ids_as_of: float | None = None
        #: The active alerts by series: a (type, id) with one is coloured and badged (set before show).
        self.flags = Flags()
        self._shown: tuple[WindowView, RateMeter[tuple[str, str]], tuple[str, ...]] | None = None
        self._cursor_key_after: str | None = None  # the cursor's row across a rebuild of the columns

    def select(self, selection: str) -> None:
        if selection != self.selected:
            self.selected = selection
            self.layout_now = None
            self._reshow(rerank=True)

    def set_filter(self, needle: str) -> None:
        """Show the ids containing ``needle`` (any case), searched over the whole summary."""
        if needle != self.needle:
            self.needle = needle
            self._reshow(rerank=True)

    def toggle_sort(self) -> None:
        self.sort_by_count = not self.sort_by_count
        self._reshow()

    def on_resize(self, _: Resize) -> None:
        self._reshow()

    def _reshow(self, rerank: bool = False) -> None:
        if self._shown is not None:
            self.show(*self._shown, ranking=None if rerank else self.ranking, live=self.live)

    def wants(self, ranking: Ranking | None) -> bool:
        """Whether ``ranking`` (made off the UI thread) is for what the table shows now."""
        return ranking is not None and (ranking.selection, ranking.needle) == (self.selected, self.needle.lower())

    def base_width(self, ids: Mapping[str, object], view: WindowView) -> int:
        """Cells the counts and visitors need (with cell padding and the border), before any extra column."""
        widest_id = max((len(t) + self.flags.width(self.mark(t)) for t in ids), default=0)
        if self.selected == ALL:
            cells = [max(len(t), len(f"{view.summary[t].total:,}")) for t in EVENT_TYPES] + [max(5, len(f"{view.total:,}"))]
        else:
            cells = [max(6, len(f"{view.summary[self.selected].total:,}"))]
        cells.append(cell_width(view.visitors))
        return max(len("tracking id"), widest_id) + sum(cells) + 2 * self.cell_padding * (1 + len(cells))

    def live_cells(self) -> int:
        """Cells of the live column, padding included: the first extra (see :class:`Layout`)."""
        return live_width(self.live) + 2 * self.cell_padding

    def spare(self, rows: int) -> int:
        """Cells for a vertical scrollbar, when ``rows`` outgrow the panel (one line of headers)."""
        return SCROLLBAR if rows > self.size.height - 1 else 0

    def show(
        self,
        view: WindowView,
        meter: RateMeter[tuple[str, str]],
        configured: tuple[str, ...],
        ranking: Ranking | None = None,
        live: Live | None = None,
    ) -> None:
        """Show ``ranking`` if it is for the current selection and filter, else rank here. ``live``:
        the live visitors read for the rows ranked off the UI thread; a row it did not ask for
        (ranked here, after a new selection or filter) shows ``—`` until the next read."""
        self._shown = (view, meter, configured)
        self.live = live
        if ranking is None or not self.wants(ranking):
            ranking = rank(view, self.selected, self.needle, configured)
        self.ranking = ranking
        cursor = self._cursor_key_after or self._cursor_key()  # before rows come and go
        self._cursor_key_after = None
        counts = ranking.rows
        layout = fit(self.selected, self.size.width, self.base_width(counts, view), self.spare(len(counts)), self.live_cells())
        if layout != self.layout_now:
            self._rebuild(layout)
        type_total = view.total if self.selected == ALL else view.summary[self.selected].total
        top = max((self._weight(c) for c in counts.values()), default=0)
        selected = self.selected

        def by_tid(key: tuple[str, str]) -> str | None:
            return key[1] if selected in (ALL, key[0]) else None

        rates = meter.rates_by(by_tid) if layout.rate and meter.ready else None
        trends = meter.trends_by(by_tid) if layout.trend else []
        read = self.visitors_read = view.visitors
        estimates = {} if read is None else read.by_id if selected == ALL else read.by_series.get(selected, {})
        figures = {tid: Figure(estimates.get(tid), self._weight(by_type)) for tid, by_type in counts.items()}
        self.figures = figures
        for gone in [key for key in self.rows if key.value not in counts]:
            self.remove_row(gone)
        for tid, by_type in counts.items():
            values = self._cells(tid, by_type, type_total, top, rates, trends, layout, visitors_cell(read, *figures[tid]))
            if tid not in self.rows:
                self.add_row(*values.values(), key=tid)
            else:
                for column, value in values.items():
                    # Only a changed cell (any update re-renders the table), and widening, which
                    # measures every cell of the column, only when this one needs it; a name
                    # changes only when its badge comes or goes, and then its column may narrow.
                    wider = column == "tid" or _wider(value, self.columns[ColumnKey(column)].content_width)
                    set_cell(self, tid, column, value, update_width=wider)
        self._sort(counts, cursor)
        self._cursor_key_after = None  # restored: a later show must not take the cursor back there
        self._titles(ranking)

    def _titles(self, ranking: Ranking) -> None:
        """The title names the type and any filter; the subtitle how many ids are shown of how many."""
        what = "all types" if self.selected == ALL else self.selected
        shown, matched = len(ranking.rows), ranking.matched
        noun = "match" if self.needle else "ids"
        count = f"{matched:,} {noun}" if shown == matched else f"top {shown} of {matched:,} {noun}"
        kept = f" · as of {time.strftime('%H:%M:%S', time.gmtime(self.ids_as_of))}" if self.ids_as_of is not None else ""
        set_titles(self, f"Tracking ids · {what}" + (f" · /{self.needle}" if self.needle else ""),
                   f"{count} · {'by count' if self.sort_by_count else 'by name'}{kept}")

    def mark(self, tid: str) -> Alert | None:
        """The alert that badges ``tid``'s row: of the (type, id) series shown, or, in the all-types
        matrix, of any of its types (a firing one first; each type's count cell has its own colour)."""
        if self.selected != ALL:
            return self.flags.get((self.selected, tid))
        found = [a for a in (self.flags.get((t, tid)) for t in EVENT_TYPES) if a is not None]
        return min(found, key=lambda a: a.state != FIRING, default=None)

    def _weight(self, by_type: Mapping[str, int]) -> int:
        return sum(by_type.values()) if self.selected == ALL else by_type.get(self.selected, 0)

    def _cells(
        self,
        tid: str,
        by_type: Mapping[str, int],
        type_total: int,
        top: int,
        rates: dict[str, float] | None,
        trends: list[dict[str, float]],
        layout: Layout,
        visitors: Text,
    ) -> dict[str, Text | str]:
        """The row's cells by column key, in the columns' order (``add_row`` takes them so)."""
        name = self.flags.name(Text(tid, style="dim italic") if tid == OTHER_ID else tid, self.mark(tid))
        if self.selected == ALL:
            values: dict[str, Text | str] = {
                "tid": name,
                **{t: num(by_type[t], style=cell_style(self.flags.get((t, tid)))) for t in EVENT_TYPES},
                "total": num(sum(by_type.values()), style="bold"),
                VISITORS: visitors,
            }
            if layout.live:
                values[LIVE] = live_cell(self.live, tid)
        else:
            count = by_type[self.selected]
            values = {"tid": name, "events": num(count, style=cell_style(self.mark(tid))), VISITORS: visitors}
            if layout.live:
                values[LIVE] = live_cell(self.live, tid)
            if layout.share:
                values["share"] = num(share(count, type_total), ".1f", "%")
        if layout.bar:
            values["bar"] = bar(self._weight(by_type) / top if top else 0.0, layout.bar)
        if layout.rate:
            values["rate"] = Text(rate(rates.get(tid, 0.0)) if rates is not None else "–", justify="right")
        if layout.trend:
            values["trend"] = trend([r.get(tid, 0.0) for r in trends], TREND_WIDTH)
        return values

    def _rebuild(self, layout: Layout) -> None:
        """New columns for a new selection or width: the only time the table is cleared."""
        cursor = self._cursor_key()
        self.clear(columns=True)
        for key, label in layout.columns():
            self.add_column(label, key=key)
        self.layout_now = layout
        self._cursor_key_after = cursor

    def _cursor_key(self) -> str | None:
        rows = self.ordered_rows
        return str(rows[self.cursor_row].key.value) if 0 <= self.cursor_row < len(rows) else None

    def _sort(self, counts: Mapping[str, Mapping[str, int]], cursor_key: str | None) -> None:
        """Order by count (descending) or by name; keep the cursor on the row it was on."""

        def order(tid: str) -> tuple[int, str]:
            return (-self._weight(counts.get(tid, {})), tid) if self.sort_by_count else (0, tid)

        current = [str(row.key.value) for row in self.ordered_rows]
        if current != sorted(current, key=order):
            ids = {str(self.get_cell(tid, "tid")): tid for tid in current}  # a badged name is more than its id
            self.sort("tid", key=lambda name: order(ids[str(name)]))
        if cursor_key is not None and cursor_key in self.rows:
            index = self.get_row_index(cursor_key)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False, scroll=False)


def _wider(value: object, width: int) -> bool:
    """Whether a cell's text is wider than its column is now."""
    return (value.cell_len if isinstance(value, Text) else cell_len(str(value))) > width
