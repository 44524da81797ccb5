"""A bar chart of counts per step with a count axis and a time axis, for the history screen.

Drawn here rather than with plotext (textual-plotext), because plotext maps bars onto columns by
rounding each bar's position: measured with 60 one-minute bars in 49 columns, a minute with no
events showed only on the bottom row, and with 168 hourly bars an hour with no events vanished
(README, "The history screen"). These bars use the dashboard's own column rule
(:func:`~tui.components.sparklines.bucket_columns`): every step gets the same whole number of
columns, or, with more steps than columns, a column shows the largest of the same number of steps
and the subtitle says so. A step that could not be read whole is drawn in red, the still-filling
last step dimmer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from math import ceil, log10

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style

from tui.components.format import BARS
from tui.components.sparklines import bucket_columns
from tui.history.ranges import HistoryStep

#: Time-axis label intervals to choose from, finest first (seconds).
TICK_SECONDS = (10, 30, 60, 300, 600, 900, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400)
LABEL_GAP = 1  # blank cells at least between two time labels


def nice_top(peak: int) -> int:
    """The top of the count axis: the smallest of 1, 2, 5 × 10^k at or above ``peak`` (at least 2),
    so the half-way tick is a round number too."""
    if peak <= 2:
        return 2
    power = 10 ** int(log10(peak))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= peak)


def compact(value: float) -> str:
    """A count axis label: ``950``, ``9,500``, ``95k``, ``9.5M``."""
    if value < 10_000:
        return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"
    if value < 1_000_000:
        return f"{value / 1000:,.0f}k"
    return f"{value / 1_000_000:,.1f}M".replace(".0M", "M")


def time_label(ms: int, tick_seconds: int) -> str:
    """``08:15`` (UTC), or the day ``11-23`` for daily ticks, ``08:15:30`` below a minute."""
    stamp = time.gmtime(ms / 1000)
    if tick_seconds >= 86_400:
        return time.strftime("%m-%d", stamp)
    return time.strftime("%H:%M:%S" if tick_seconds < 60 else "%H:%M", stamp)


def column_groups(count: int, width: int) -> list[range]:
    """Which steps each drawn column shows, by :func:`bucket_columns`'s rule (fed the indexes, it
    returns per column the newest step it holds)."""
    newest = [index for index, _ in bucket_columns(list(range(count)), width)]
    groups, previous = [], -1
    for index in newest:
        groups.append(range(previous + 1, index + 1) if index != previous else range(index, index + 1))
        previous = index
    return groups


class HistoryChart:
    """Rich renderable: bars from zero, a count axis on the left, times (UTC) under the bars."""

    def __init__(self, steps: Sequence[HistoryStep], step_seconds: int, style: Style) -> None:
        self.steps = steps
        self.step_seconds = step_seconds
        self.style = style

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width, height = options.max_width, options.height or 8
        rows = max(1, height - 2)  # the axis line and the time labels below the bars
        top, ticks, axis_width = self._axis(rows)
        plot_width = max(1, width - axis_width)
        groups = column_groups(len(self.steps), plot_width)
        columns = [self._column(g) for g in groups]
        levels = len(BARS) * rows
        heights = [max(1, round(count / top * levels)) if count else 0 for count, _ in columns]
        axis_style = Style(dim=True)
        for row in reversed(range(rows)):
            label = ticks.get(row)
            yield Segment(f"{label}┤".rjust(axis_width) if label else "│".rjust(axis_width), axis_style)
            base = row * len(BARS)
            for h, (_, style) in zip(heights, columns):
                yield Segment(BARS[min(h - base, len(BARS)) - 1] if h > base else " ", style)
            yield Segment(" " * (plot_width - len(columns)))
            yield Segment.line()
        yield Segment("0└".rjust(axis_width) + "─" * len(columns) + " " * (plot_width - len(columns)), axis_style)
        yield Segment.line()
        yield Segment(" " * axis_width + self._time_axis(groups, plot_width), axis_style)

    def _axis(self, rows: int) -> tuple[int, dict[int, str], int]:
        """The top of the count axis, its labels by row (from the bottom) and the cells it takes."""
        top = nice_top(max((s.count for s in self.steps), default=0))
        ticks = {rows - 1: compact(top), ceil(rows / 2) - 1: compact(top / 2)} if rows >= 3 else {rows - 1: compact(top)}
        return top, ticks, max(len(label) for label in (*ticks.values(), "0")) + 1

    def steps_per_column(self, width: int, height: int) -> int:
        """1 while every step has columns of its own in ``width`` × ``height`` cells, else how many
        steps one column shows (for the note under the chart)."""
        plot_width = max(1, width - self._axis(max(1, height - 2))[2])
        return max((len(g) for g in column_groups(len(self.steps), plot_width)), default=1)

    def _column(self, group: range) -> tuple[int, Style]:
        """A column's count (the largest of its steps) and style: red if any step is incomplete,
        dim if it holds the still-filling step."""
        steps = [self.steps[i] for i in group]
        style = self.style
        if any(s.incomplete for s in steps):
            style = Style(color="red", bold=True)
        elif any(s.filling for s in steps):
            style = self.style + Style(dim=True)
        return max(s.count for s in steps), style

    def _time_axis(self, groups: list[range], width: int) -> str:
        """Labels at round times, each under the column that holds the step starting then, at the
        finest interval whose labels all fit."""
        if not groups:
            return " " * width
        column_of: dict[int, int] = {}
        for column, group in enumerate(groups):
            for index in group:
                column_of.setdefault(index, column)
        span = len(self.steps) * self.step_seconds
        for tick in (t for t in TICK_SECONDS if t >= self.step_seconds and t % self.step_seconds == 0):
            sample = time_label(self.steps[0].start_ms, tick)
            if span / tick * (len(sample) + LABEL_GAP) > len(groups):
                continue
            line, end = [" "] * width, -LABEL_GAP
            for index, step in enumerate(self.steps):
                column = column_of[index]
                if step.start_ms % (tick * 1000) == 0 and column >= end + LABEL_GAP and column + len(sample) <= width:
                    line[column : column + len(sample)] = time_label(step.start_ms, tick)
                    end = column + len(sample)
            return "".join(line)
        return " " * width
