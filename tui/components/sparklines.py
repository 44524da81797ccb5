"""Per-type sparklines of events per bucket across the window, on a shared time axis.

Textual's own ``Sparkline`` scales from the minimum to the maximum (a steady rate would draw as a
floor) and stretches buckets over uneven column counts; these bars start at zero, give every
bucket the same number of columns, and draw the still-filling current bucket dimmer, so a bucket
that has only just begun does not read as a sudden drop.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import ceil

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Label

from tui import EVENT_TYPES
from tui.components.format import BARS, rate
from tui.components.unchanged import set_content, set_titles
from tui.rates import RateMeter
from tui.window import WindowView

#: (value, still filling) per drawn column, oldest first.
Columns = list[tuple[int, bool]]


def bucket_columns(values: Sequence[int], width: int) -> Columns:
    """Fit the buckets (oldest first, the last one still filling) into at most ``width`` columns.

    With room, every bucket gets the same whole number of columns. Otherwise each column holds the
    maximum of the same number of closed buckets, counted back from the newest, and the filling
    bucket keeps a column of its own.
    """
    n = len(values)
    if not n or width <= 0:
        return []
    if n <= width:
        each = width // n
        return [(v, i == n - 1) for i, v in enumerate(values) for _ in range(each)]
    closed, per_column = values[:-1], ceil((n - 1) / max(1, width - 1))
    groups = [max(closed[max(0, end - per_column) : end]) for end in range(len(closed), 0, -per_column)]
    return [(v, False) for v in reversed(groups)] + [(values[-1], True)]


class ZeroBasedBars:
    """Columns drawn from zero up to the highest one; any event shows; right-aligned to "now"."""

    def __init__(self, values: Sequence[int], style: Style) -> None:
        self.values = values
        self.style = style

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width, height = options.max_width, options.height or 1
        columns = bucket_columns(self.values, width)
        pad = width - len(columns)
        peak = max((v for v, _ in columns), default=0) or 1
        levels = len(BARS) * height
        heights = [(max(1, round(v / peak * levels)) if v else 0, filling) for v, filling in columns]
        dim = self.style + Style(dim=True)
        for row in reversed(range(height)):
            base = row * len(BARS)
            yield Segment(" " * pad)
            for h, filling in heights:
                yield Segment(BARS[min(h - base, len(BARS)) - 1] if h > base else " ", dim if filling else self.style)
            if row:
                yield Segment.line()


class SparkBars(Widget):
    """One type's events per bucket across the window."""

    DEFAULT_CSS = "SparkBars { height: 1; }"
    values: reactive[tuple[int, ...]] = reactive(tuple)

    def render(self) -> ZeroBasedBars:
        return ZeroBasedBars(self.values, Style(color=self.rich_style.color))  # colour from the .tcss


class SparkAxis(Widget):
    """``-5m … now`` under the bars, lined up with the columns they actually use."""

    DEFAULT_CSS = "SparkAxis { height: 1; color: $text-muted; }"
    buckets: reactive[int] = reactive(0)
    minutes: reactive[float] = reactive(5.0)

    def render(self) -> Text:
        width = self.size.width
        used = len(bucket_columns([0] * self.buckets, width))
        if not used:
            return Text("")
        left, middle, right = f"-{self.minutes:g}m", f"-{self.minutes / 2:g}m", "now"
        line = [" "] * width
        start = width - used
        for at, label in ((start, left), (start + (used - len(middle)) // 2, middle), (width - len(right), right)):
            line[at : at + len(label)] = label
        return Text("".join(line[:width]))


class Sparks(Vertical):
    """A row per type (name, bars, events/s over the last few seconds) and the time axis."""

    def compose(self) -> ComposeResult:
        for etype in EVENT_TYPES:
            with Horizontal(classes="spark-row"):
                yield Label(etype, classes="spark-label")
                yield SparkBars(id=f"spark-{etype}")
                yield Label("", id=f"spark-value-{etype}", classes="spark-value")
        with Horizontal(classes="spark-axis-row"):
            yield Label("", classes="spark-label")
            yield SparkAxis(id="spark-axis")
            yield Label("", classes="spark-value")

    def on_mount(self) -> None:
        self.border_title = "Events per bucket"

    def show(self, view: WindowView, meter: RateMeter[tuple[str, str]]) -> None:
        for etype in EVENT_TYPES:
            self.query_one(f"#spark-{etype}", SparkBars).values = tuple(view.series[etype])
            value = f"{rate(meter.rate_where(lambda k, t=etype: k[0] == t))}/s" if meter.ready else "–"  # type: ignore[misc]
            set_content(self.query_one(f"#spark-value-{etype}", Label), value)
        axis = self.query_one(SparkAxis)
        axis.buckets, axis.minutes = len(view.buckets), view.window_minutes
        set_titles(self, f"Events per bucket · {view.label}", f"{view.bucket_seconds} s buckets, from zero · dim: still filling · right: ev/s 5s")
