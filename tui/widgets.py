"""Zero-based sparklines for the dashboard (Textual's own scale from the minimum)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from textual.reactive import reactive
from textual.widget import Widget

BARS = "▁▂▃▄▅▆▇█"


def resample(values: Sequence[int], width: int) -> list[int]:
    """Fit ``values`` to ``width`` columns: several buckets per column keep their maximum; fewer
    buckets than columns are stretched, so a column always stands for whole buckets."""
    if not values or width <= 0:
        return []
    step = Fraction(len(values), width)
    columns = []
    for column in range(width):
        start = int(step * column)
        end = max(start + 1, int(step * (column + 1)))
        columns.append(max(values[start:end]))
    return columns


class ZeroBasedBars:
    """A sparkline scaled from zero to the maximum, unlike Textual's ``Sparkline`` (min to max),
    which would draw a steady rate as a floor. A bucket with no events stays empty."""

    def __init__(self, values: Sequence[int], style: Style, peak: int | None = None) -> None:
        self.values = values
        self.style = style
        self.peak = peak

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = options.height or 1
        columns = resample(self.values, width)
        peak = self.peak or max(columns, default=0) or 1
        levels = len(BARS) * height
        heights = [round(v / peak * levels) if v else 0 for v in columns]
        heights = [max(h, 1) if v else 0 for h, v in zip(heights, columns)]  # any event shows
        for row in reversed(range(height)):
            base = row * len(BARS)
            line = "".join(BARS[min(h - base, len(BARS)) - 1] if h > base else " " for h in heights)
            yield Segment(line.ljust(width), self.style)
            if row:
                yield Segment.line()


class SparkBars(Widget):
    """One type's events per bucket across the window."""

    DEFAULT_CSS = "SparkBars { height: 1; }"
    values: reactive[tuple[int, ...]] = reactive(tuple)

    def render(self) -> ZeroBasedBars:
        return ZeroBasedBars(self.values, Style(color=self.rich_style.color))  # colour from the .tcss
