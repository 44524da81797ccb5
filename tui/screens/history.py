"""The history screen (``h``): one type's events (one tracking id's, or all ids') per step over a
range, as a chart with count and time axes and as a table of the numbers beside it.

Zoom keys pick the range (5 m, 1 h, 6 h, 24 h, 7 d; the last hour per minute and the last day per
hour are ServerTrack's two views), ``←``/``→`` step a whole range earlier or later. Reads run in a
thread worker (:func:`~tui.history.ranges.read_range` through the store), never on the UI thread;
while the range ends now it is read again at every refresh. Keys are listed in ``history.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from importlib.resources import files

from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Static

from tui.components.format import num
from tui.components.history_chart import HistoryChart
from tui.components.unchanged import set_cell
from tui.history.query import format_duration
from tui.history.ranges import (
    DEFAULT_ZOOM,
    ZOOMS,
    HistoryView,
    Zoom,
    export_name,
    export_text,
    read_range,
)
from tui.history.source import HistorySource
from tui.screens.export import export
from tui.screens.help import MarkdownScreen
from tui.store import StoreUnavailable

#: The history screen's own help (its keys and how to read the chart), beside this module.
HELP_FILE = "history.md"


def help_markdown() -> str:
    """history.md, read from the package (it ships as package data, like help.md)."""
    return files("tui.screens").joinpath(HELP_FILE).read_text(encoding="utf-8")


class ChartView(Widget):
    """Draws the last read range; empty until the first read arrives."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.view: HistoryView | None = None

    def show(self, view: HistoryView) -> None:
        self.view = view
        self.refresh()

    def render(self) -> HistoryChart | Text:
        view = self.view
        if view is None:
            return Text("reading…", style="dim")
        if not view.steps:
            return Text(view.note or "nothing to show", style="bold red")
        return chart_of(view, Style(color=self.rich_style.color))


def chart_of(view: HistoryView, style: Style) -> HistoryChart:
    """The chart of a read range: drawn by the view, measured by the note under it, alike."""
    return HistoryChart(view.steps, view.step_seconds, style)


def time_cell(ms: int, step_seconds: int, span_seconds: int) -> str:
    """A step's start as the table shows it: the date once ranges pass a day, seconds below a minute."""
    stamp = time.gmtime(ms / 1000)
    if span_seconds > 86_400:
        return time.strftime("%m-%d %H:%M", stamp)
    return time.strftime("%H:%M:%S" if step_seconds < 60 else "%H:%M", stamp)


class HistoryScreen(ModalScreen[None]):
    """See the module docstring. ``source``: the store and the prefix's layout (agreed on first use,
    in the worker); ``now`` is the dashboard's clock. Modal, and opaque (app.tcss), so the
    dashboard's own keys, which act on the main screen, do not reach it."""

    BINDINGS = [
        Binding("plus,equals_sign", "zoom(-1)", "zoom in", id="history-zoom-in", key_display="+"),
        Binding("minus", "zoom(1)", "zoom out", id="history-zoom-out", key_display="-"),
        *(
            Binding(str(i + 1), f"set_zoom({i})", f"range {z.name}", id=f"history-zoom-{z.name}", show=False)
            for i, z in enumerate(ZOOMS)
        ),
        Binding("left", "page(1)", "earlier", id="history-earlier", key_display="←", priority=True),
        Binding("right", "page(-1)", "later", id="history-later", key_display="→", priority=True),
        Binding("n", "latest", "now", id="history-now"),
        Binding("e", "export", "export", id="history-export"),
        Binding("question_mark", "help", "help", id="history-help", key_display="?"),
        Binding("escape,h,q", "dismiss", "close", id="history-close", key_display="esc"),
    ]

    def __init__(
        self,
        source: HistorySource,
        now: Callable[[], float],
        etype: str | None,
        tracking_id: str | None,
        live_seconds: float | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.now = now
        self.etype = etype
        self.tracking_id = tracking_id
        self.live_seconds = live_seconds
        self.zoom = DEFAULT_ZOOM
        self.pages_back = 0
        self.view: HistoryView | None = None
        self.error: str | None = None
        self._asked = 0  # which read the screen waits for: older answers are dropped

    def compose(self) -> ComposeResult:
        yield Static("", id="history-title")
        with Horizontal(id="history-body"):
            yield ChartView(id="history-chart")
            yield DataTable(id="history-table", cursor_type="row", zebra_stripes=False)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one("#history-table", DataTable)
        table.add_column("time", key="time")
        table.add_column("events", key="events")
        table.focus()
        self._title()
        self.load()
        if self.live_seconds is not None:
            self.set_interval(self.live_seconds, self._tick)

    @property
    def what(self) -> str:
        return f"{self.etype or 'all types'} · {self.tracking_id or 'all ids'}"

    # -- reading (off the UI thread) ----------------------------------------------------------------

    def load(self) -> None:
        self._asked += 1
        self._read(self._asked, ZOOMS[self.zoom], self.pages_back)

    def _tick(self) -> None:
        if self.pages_back == 0:
            self.load()

    @work(thread=True, group="history-read")
    def _read(self, asked: int, zoom: Zoom, pages_back: int) -> None:
        try:
            view = read_range(self.source, self.etype, self.tracking_id, zoom, pages_back, self.now())
        except StoreUnavailable as exc:
            self.app.call_from_thread(self._failed, asked, str(exc))
            return
        self.app.call_from_thread(self._show, asked, view)

    def _failed(self, asked: int, error: str) -> None:
        if asked == self._asked:
            self.error = error
            self._title()

    # -- showing -----------------------------------------------------------------------------------

    def _show(self, asked: int, view: HistoryView) -> None:
        if asked != self._asked:
            return
        self.view, self.error = view, None
        self.refresh_bindings()
        self.query_one(ChartView).show(view)
        self._fill_table(view)
        self._title()

    def _fill_table(self, view: HistoryView) -> None:
        """The steps, newest first (the latest number without scrolling). The range is read again at
        every refresh while it ends now: the same steps only have their cells updated, so the cursor
        and the scroll stay where the user put them; new steps (a minute begins) refill the table
        with the cursor on the step it was on, or on the newest row if it was there."""
        table = self.query_one("#history-table", DataTable)
        rows = [
            (
                str(step.start_ms),
                time_cell(step.start_ms, view.step_seconds, view.zoom.seconds),
                num(step.count, suffix=" !" if step.incomplete else "  ", style="bold red" if step.incomplete else ("dim" if step.filling else "")),
            )
            for step in reversed(view.steps)
        ]
        shown = [str(row.key.value) for row in table.ordered_rows]
        if shown == [key for key, _, _ in rows]:
            for key, when, events in rows:
                set_cell(table, key, "time", when, update_width=True)
                set_cell(table, key, "events", events, update_width=True)  # 999 -> 1,000 widens it
        else:
            cursor = shown[table.cursor_row] if 0 < table.cursor_row < len(shown) else None
            table.clear()
            for key, when, events in rows:
                table.add_row(when, events, key=key)
            if cursor is not None and cursor in table.rows:
                table.move_cursor(row=table.get_row_index(cursor), animate=False)
        table.border_title = f"per {format_duration(view.step_seconds)}"
        table.border_subtitle = f"Σ {view.total:,}"

    def _title(self) -> None:
        zoom = ZOOMS[self.zoom]
        view = self.view
        if view is not None and view.zoom == zoom and view.pages_back == self.pages_back:
            start = time.strftime("%m-%d %H:%M", time.gmtime(view.start_ms / 1000))
            end = "now" if self.pages_back == 0 else time.strftime("%m-%d %H:%M", time.gmtime(view.end_ms / 1000))
            when = f"{zoom.name} per {format_duration(view.step_seconds)} · {start} → {end} UTC"
        else:
            when = f"{zoom.name} · reading…"
        title = Text.assemble(("History", "bold"), f" · {self.what} · {when}")
        self.query_one("#history-title", Static).update(title)
        chart = self.query_one(ChartView)
        chart.border_title = f"events per {format_duration(view.step_seconds)}" if view else "events"
        chart.border_subtitle = self._chart_note(view)

    def _chart_note(self, view: HistoryView | None) -> Text | str:
        """Under the chart: a read error, then an incomplete range in red, then how to read it."""
        if self.error is not None:
            return Text(f"not read: {self.error}", style="bold white on red")
        if view is None:
            return ""
        if view.gaps:
            parts = sum(1 for s in view.steps if s.incomplete)
            return Text(f"incomplete: {parts} step{'s' if parts != 1 else ''} in red, their counts are low", style="bold white on red")
        if view.note and view.steps:
            return view.note
        size = self.query_one(ChartView).content_size
        per = chart_of(view, Style()).steps_per_column(size.width, size.height)
        notes = [f"a column: the largest of {per} steps"] if per > 1 else []
        notes += ["dim: still filling"] if any(s.filling for s in view.steps) else []
        return " · ".join(notes)

    # -- keys ---------------------------------------------------------------------------------------

    def _go(self, zoom: int, pages_back: int) -> None:
        if (zoom, pages_back) != (self.zoom, self.pages_back):
            self.zoom, self.pages_back = zoom, pages_back
            self._title()
            self.load()

    def action_zoom(self, change: int) -> None:
        self.action_set_zoom(min(len(ZOOMS) - 1, max(0, self.zoom + change)))

    def action_set_zoom(self, index: int) -> None:
        """Zoom about the range's end, for ``+``/``-`` and ``1``-``5`` alike: stepped back, the new
        range ends where the old one did, to a step (zoomed out: the new range holding that end, so
        never past now). Keeping the count of pages instead would move by the new range's length:
        ``4`` three hours back would show three days back."""
        self._go(index, self.pages_back * ZOOMS[self.zoom].seconds // ZOOMS[index].seconds)

    def action_page(self, change: int) -> None:
        self._go(self.zoom, max(0, self.pages_back + change))

    def action_latest(self) -> None:
        self._go(self.zoom, 0)

    def action_export(self) -> None:
        if self.view is None or not self.view.steps:
            self.notify("Nothing read yet to export", severity="warning")
            return
        export(self.app, partial(export_text, self.view), len(self.view.steps), export_name(self.view), f"history of {self.what}", self.now)

    def action_help(self) -> None:
        self.app.push_screen(MarkdownScreen(help_markdown()))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Grey out what cannot apply: later at now, zooming past either end."""
        if action == "page" and parameters == (-1,) or action == "latest":
            return self.pages_back > 0 or None
        if action == "page":  # earlier: not past a range nothing is kept for
            return self.view is None or bool(self.view.steps) or self.view.pages_back != self.pages_back or None
        if action == "zoom":
            target = self.zoom + int(parameters[0])  # type: ignore[call-overload]
            return 0 <= target < len(ZOOMS) or None
        return True
