"""Per tracking id: the counts of the selected type (or a tracking id × type matrix for all types),
and, where the panel has room, a share bar, the id's events/s and its recent trend."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.events import Resize
from textual.widgets import DataTable

from tui import EVENT_TYPES
from tui.components.format import bar, num, rate, share, trend
from tui.components.types_table import ALL, RATE_LABEL
from tui.rates import RateMeter
from tui.window import WindowView

TREND_WIDTH = 12  # the last 12 refreshes
BAR_WIDTH = (6, 24)  # a share bar only when at least 6 cells fit; never wider than 24
SCROLLBAR = 2  # cells of the vertical scrollbar, when the ids outgrow the panel


@dataclass(frozen=True)
class Layout:
    """The columns the panel shows: always the counts, then the extras that fit its width."""

    selected: str
    bar: int  # cells of the share bar, 0 for none
    rate: bool
    trend: bool

    def columns(self) -> list[tuple[str, str]]:
        """(key, label) of each column."""
        counts = [(t, t) for t in EVENT_TYPES] + [("total", "total")] if self.selected == ALL else [("events", "events"), ("share", "share")]
        extras = [("bar", "")] if self.bar else []
        extras += [("rate", RATE_LABEL)] if self.rate else []
        extras += [("trend", "trend")] if self.trend else []
        return [("tid", "tracking id"), *counts, *extras]


def fit(selected: str, width: int, base: int, spare: int) -> Layout:
    """The extras that fit ``width`` cells beside ``base`` cells of counts (and ``spare`` for a
    scrollbar), in order of use."""
    free = width - base - spare
    rate_cells = len(RATE_LABEL) + 2
    show_rate = free >= rate_cells
    free -= rate_cells if show_rate else 0
    show_trend = free >= TREND_WIDTH + 2
    free -= TREND_WIDTH + 2 if show_trend else 0
    bar_cells = min(BAR_WIDTH[1], free - 2) if selected != ALL and free - 2 >= BAR_WIDTH[0] else 0
    return Layout(selected, bar_cells, show_rate, show_trend)


class TidsTable(DataTable[Text | str]):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self.selected = EVENT_TYPES[0]
        self.sort_by_count = True
        self.layout_now: Layout | None = None
        self._shown: tuple[WindowView, RateMeter[tuple[str, str]], tuple[str, ...]] | None = None
        self._cursor_key_after: str | None = None  # the cursor's row across a rebuild of the columns

    def select(self, selection: str) -> None:
        if selection != self.selected:
            self.selected = selection
            self.layout_now = None
            self._reshow()

    def toggle_sort(self) -> None:
        self.sort_by_count = not self.sort_by_count
        self._reshow()

    def on_resize(self, _: Resize) -> None:
        self._reshow()

    def _reshow(self) -> None:
        if self._shown is not None:
            self.show(*self._shown)

    def counts(self, view: WindowView, configured: Iterable[str]) -> dict[str, dict[str, int]]:
        """tracking id -> type -> count, over the configured ids and any other writer's."""
        tids = dict.fromkeys(configured)
        for etype in EVENT_TYPES:
            tids.update(dict.fromkeys(view.summary[etype].by_tracking_id))
        return {tid: {t: view.summary[t].by_tracking_id.get(tid, 0) for t in EVENT_TYPES} for tid in tids}

    def base_width(self, counts: dict[str, dict[str, int]], view: WindowView) -> int:
        """Cells the counts need (with cell padding and the border), before any extra column."""
        widest_id = max((len(t) for t in counts), default=0)
        if self.selected == ALL:
            cells = [max(len(t), len(f"{view.summary[t].total:,}")) for t in EVENT_TYPES] + [max(5, len(f"{view.total:,}"))]
        else:
            cells = [max(6, len(f"{view.summary[self.selected].total:,}")), len("100.0%")]
        return max(len("tracking id"), widest_id) + sum(cells) + 2 * self.cell_padding * (1 + len(cells))

    def show(self, view: WindowView, meter: RateMeter[tuple[str, str]], configured: tuple[str, ...]) -> None:
        self._shown = (view, meter, configured)
        counts = self.counts(view, configured)
        spare = SCROLLBAR if len(counts) > self.size.height - 1 else 0  # one line of headers
        layout = fit(self.selected, self.size.width, self.base_width(counts, view), spare)
        if layout != self.layout_now:
            self._rebuild(layout)
        type_total = view.total if self.selected == ALL else view.summary[self.selected].total
        top = max((self._weight(c) for c in counts.values()), default=0)
        for tid, by_type in counts.items():
            values = self._cells(tid, by_type, type_total, top, meter, layout)
            if tid not in self.rows:
                self.add_row(*values.values(), key=tid)
            else:
                for column, value in values.items():
                    if column != "tid":
                        self.update_cell(tid, column, value, update_width=True)
        self._sort(counts)
        self.border_title = f"Tracking ids · {'all types' if self.selected == ALL else self.selected}"
        self.border_subtitle = "by count" if self.sort_by_count else "by name"

    def _weight(self, by_type: dict[str, int]) -> int:
        return sum(by_type.values()) if self.selected == ALL else by_type.get(self.selected, 0)

    def _cells(
        self, tid: str, by_type: dict[str, int], type_total: int, top: int, meter: RateMeter[tuple[str, str]], layout: Layout
    ) -> dict[str, Text | str]:
        if self.selected == ALL:
            values: dict[str, Text | str] = {"tid": tid, **{t: num(by_type[t]) for t in EVENT_TYPES}, "total": num(sum(by_type.values()), style="bold")}
        else:
            count = by_type[self.selected]
            values = {"tid": tid, "events": num(count), "share": num(share(count, type_total), ".1f", "%")}
        if layout.bar:
            values["bar"] = bar(self._weight(by_type) / top if top else 0.0, layout.bar)

        def mine(key: tuple[str, str]) -> bool:
            return key[1] == tid and self.selected in (ALL, key[0])

        if layout.rate:
            values["rate"] = Text(rate(meter.rate_where(mine)) if meter.ready else "–", justify="right")
        if layout.trend:
            values["trend"] = trend(meter.trend_where(mine), TREND_WIDTH)
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

    def _sort(self, counts: dict[str, dict[str, int]]) -> None:
        """Order by count (descending) or by name; keep the cursor on the row it was on."""

        def order(tid: str) -> tuple[int, str]:
            return (-self._weight(counts.get(tid, {})), tid) if self.sort_by_count else (0, tid)

        current = [str(row.key.value) for row in self.ordered_rows]
        cursor_key = self._cursor_key_after or self._cursor_key()
        self._cursor_key_after = None
        if current != sorted(current, key=order):
            self.sort("tid", key=lambda tid: order(str(tid)))
        if cursor_key is not None and cursor_key in self.rows:
            index = self.get_row_index(cursor_key)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False, scroll=False)
