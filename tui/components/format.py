"""How numbers, shares and small trends are written in every table, so they read alike."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

BARS = "▁▂▃▄▅▆▇█"
EIGHTHS = " ▏▎▍▌▋▊▉"


def num(value: float, spec: str = ",", suffix: str = "", style: str = "") -> Text:
    """A right-aligned number: counts with thousands separators, shares and rates with one decimal."""
    return Text(f"{value:{spec}}{suffix}", justify="right", style=style)


def rate(value: float) -> str:
    """Events/s: whole above 10, one decimal below, where the decimal still says something."""
    return f"{value:,.0f}" if value >= 10 else f"{value:,.1f}"


def share(part: float, whole: float) -> float:
    return 100 * part / whole if whole else 0.0


def bar(fraction: float, width: int, style: str = "") -> Text:
    """A horizontal bar of ``width`` cells filled to ``fraction`` in eighths of a cell."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (EIGHTHS[part] if part else "")
    return Text(text.ljust(width), style=style)


def trend(values: Sequence[float], width: int, style: str = "") -> Text:
    """The last ``width`` values as a one-row sparkline from zero to their maximum."""
    values = list(values)[-width:]
    peak = max(values, default=0.0)
    cells = "".join(BARS[min(len(BARS) - 1, int(v / peak * len(BARS)))] if v and peak else " " for v in values)
    return Text(cells.rjust(width), style=style)
