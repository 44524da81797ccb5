"""The alerts panel: the active alerts (firing first, then pending), one row per series, under the
tables. Rows are added, updated cell by cell and removed by series, never cleared, so the cursor
stays on its alert while the others come and go.

It shows itself while an alert is firing and hides when none is; ``a`` overrides that (the app's
binding calls :meth:`AlertsPanel.toggle`) until an alert fires on a series that was not firing
when the choice was made: a hidden panel comes back for news, not for what was already seen.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from tui.anomaly import FIRING, Alert, SeriesKey
from tui.anomaly.watch import AnomalyStatus
from tui.components.alert_marks import badge, cell_style
from tui.components.format import num
from tui.components.unchanged import set_cell, set_content, set_titles

#: The panel's columns: (key, label).
COLUMNS = (
    ("alert", "alert"), ("state", "state"), ("type", "type"), ("id", "tracking id"), ("since", "since (UTC)"),
    ("observed", "observed"), ("expected", "expected"), ("ratio", "ratio"),
)
#: Below WORDS_MIN_WIDTH: the badge's arrow (filled or hollow) gives the state, "since" only how
#: long ago, and the ratio goes (observed and expected are side by side): 80 columns fit, with
#: the scrollbar of a long list.
SHORT_COLUMNS = tuple((key, "since" if key == "since" else label) for key, label in COLUMNS if key not in ("state", "ratio"))
#: Alerts listed at most, firing first then newest: a store-wide drop at 100,000 ids must not
#: make the UI thread build 100,000 rows each refresh; the title still counts them all.
MAX_ROWS = 200
#: Alerts the panel shows at once (app.tcss: its table's max-height is these and the header); it scrolls for more.
VISIBLE_ROWS = 5
ALL_IDS = "all ids"
#: Row keys join type and id with a character no id contains.
SEP = "\t"


def row_key(key: SeriesKey) -> str:
    """A series as a row key: the type and the id (empty for the whole type)."""
    return f"{key[0]}{SEP}{key[1] or ''}"


def series_of(row: str) -> SeriesKey:
    """The series of a row key (:func:`row_key` reversed)."""
    etype, _, tid = row.partition(SEP)
    return etype, tid or None


def ago(seconds: float) -> str:
    """How long ago, to the two largest units: ``45s``, ``3m 20s``, ``2h 05m``, ``1d 3h``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86_400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86_400}d {s % 86_400 // 3600}h"


def clock_time(ms: int | None) -> str:
    """A bucket start as the header's clock writes the time (UTC); ``–`` for none."""
    return "–" if ms is None else time.strftime("%H:%M:%S", time.gmtime(ms / 1000))


def ratio(alert: Alert) -> Text:
    """Observed over expected, ``×0.00`` for a drop to nothing, ``×5.2`` for a spike."""
    if not alert.expected:
        return Text("×∞", justify="right")
    value = alert.observed / alert.expected
    return Text(f"×{value:.2f}" if value < 1 else f"×{value:.1f}", justify="right", style=cell_style(alert))


def alert_cells(alert: Alert, now: float, short: bool = False) -> dict[str, Text | str]:
    """One alert's row, by column key (:data:`COLUMNS`, or :data:`SHORT_COLUMNS` when ``short``):
    its badge, state, series, when it began (and how long ago, from the dashboard's clock), the
    latest bucket's count against the baseline's."""
    since_ms = alert.at_ms(alert.since) or 0
    since = f"{ago(now - since_ms / 1000)} ago"
    cells: dict[str, Text | str] = {
        "alert": badge(alert),
        "state": Text(alert.state, style="bold" if alert.state == FIRING else "dim"),
        "type": alert.type,
        "id": alert.id if alert.id is not None else Text(ALL_IDS, style="italic"),
        "since": since if short else f"{clock_time(since_ms)} · {since}",
        "observed": num(round(alert.observed, 1), ",", style=cell_style(alert)),
        "expected": num(round(alert.expected, 1), ","),
        "ratio": ratio(alert),
    }
    return {key: cells[key] for key, _ in (SHORT_COLUMNS if short else COLUMNS)}


def quiet_line(status: AnomalyStatus | None) -> Text:
    """The panel's one line when no alert is active: whether detection runs, and over how much."""
    if status is None:
        return Text("anomaly detection is off (anomaly.enabled in the settings file)", style="dim")
    watched = f"{status.series:,} series watched"
    extra = [f"{status.untracked:,} untracked (max_series)"] if status.untracked else []
    extra += [f"{status.skipped:,} buckets skipped (unreadable)"] if status.skipped else []
    if status.priming:
        return Text(" · ".join(["learning baselines…", watched, *extra]), style="italic")
    return Text(" · ".join(["no alerts", watched, *extra]), style="green")


class AlertsPanel(Vertical):
    """See the module docstring. :meth:`show` takes each refresh's :class:`AnomalyStatus` (None
    when detection is off)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        #: The user's choice (``a``): shown or hidden; None follows the alerts.
        self.choice: bool | None = None
        #: The series firing when the choice was made: another one firing drops the choice.
        self._seen: frozenset[SeriesKey] = frozenset()
        self._firing: frozenset[SeriesKey] = frozenset()
        self._short: bool | None = None  # the columns' layout (None before the first show)

    def compose(self) -> ComposeResult:
        yield Static("", id="alerts-quiet")
        yield DataTable(id="alerts-table", cursor_type="row", cursor_foreground_priority="renderable")  # the cursor keeps the badges' colours

    def on_mount(self) -> None:
        self.display = False

    @property
    def table(self) -> DataTable[Text | str]:
        return self.query_one("#alerts-table", DataTable)

    @property
    def shown(self) -> bool:
        """Whether the panel is on screen now: the user's choice, else while an alert fires."""
        return self.choice if self.choice is not None else bool(self._firing)

    def toggle(self) -> None:
        """``a``: hide the panel if shown, show it if hidden, until another series fires."""
        self.choice = not self.shown
        self._seen = self._firing
        self.display = self.shown
        if not self.shown and self.table.has_focus:
            self.screen.focus_next()

    @property
    def height_needed(self) -> int:
        """Lines the panel takes when shown: its borders, and its quiet line or its table."""
        rows = self.table.row_count
        return 2 + (1 + min(rows, VISIBLE_ROWS) if rows else 1)

    def selected(self) -> SeriesKey | None:
        """The series of the row under the cursor while the panel's table has focus."""
        table = self.table
        if not (self.shown and table.has_focus and 0 <= table.cursor_row < table.row_count):
            return None
        return series_of(str(table.ordered_rows[table.cursor_row].key.value))

    def show(self, status: AnomalyStatus | None, now: float, short: bool = False) -> None:
        """``short``: the narrow terminal's columns (:data:`SHORT_COLUMNS`)."""
        alerts = status.alerts if status is not None else ()
        self._firing = frozenset((a.type, a.id) for a in alerts if a.state == FIRING)
        if self.choice is not None and self._firing - self._seen:
            self.choice = None  # news: the panel follows the alerts again
        table = self.table
        if short != self._short:  # a new width: the only time the table is cleared
            table.clear(columns=True)
            for key, label in SHORT_COLUMNS if short else COLUMNS:
                table.add_column(label, key=key)
            self._short = short
        wanted = {row_key((a.type, a.id)): a for a in alerts[:MAX_ROWS]}
        for gone in [key for key in table.rows if key.value not in wanted]:
            table.remove_row(gone)
        for key, alert in wanted.items():
            cells = alert_cells(alert, now, short)
            if key not in table.rows:
                table.add_row(*cells.values(), key=key)
            else:
                for column, value in cells.items():
                    set_cell(table, key, column, value, update_width=True)
        order = list(wanted)
        if [str(row.key.value) for row in table.ordered_rows] != order:
            rank = {series: i for i, series in enumerate(order)}
            table.sort("type", "id", key=lambda cells: rank[row_key((str(cells[0]), _id_of(cells[1])))])
        table.display = bool(alerts)
        quiet = self.query_one("#alerts-quiet", Static)
        quiet.display = not alerts
        set_content(quiet, quiet_line(status))
        firing = len(self._firing)
        counts = [f"{firing} firing"] if firing else []
        counts += [f"{len(alerts) - firing} pending"] if len(alerts) > firing else []
        listed = f"first {MAX_ROWS:,} of {len(alerts):,} · " if len(alerts) > MAX_ROWS else ""
        set_titles(self, " · ".join(["Alerts", *counts]), f"{listed}enter or A: history · a: hide" if alerts else "a: hide")
        self.display = self.shown


def _id_of(cell: object) -> str | None:
    """The id a row's id cell shows (None for "all ids", the whole type)."""
    return None if isinstance(cell, Text) and cell.plain == ALL_IDS else str(cell)
