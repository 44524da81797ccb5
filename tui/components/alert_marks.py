"""How an alert marks a series wherever it is shown: a badge and a colour per direction and state,
the same in the type table, the tracking-id table, the alerts panel and the alert history.

The badge carries the meaning on its own (``▼ drop`` / ``▲ spike``, filled while firing, hollow
``▽`` / ``△`` while pending), so a monochrome terminal or a colour-blind reader loses nothing;
the colour (red for a drop, yellow for a spike, reversed while firing) makes it visible at a glance.
Below :data:`WORDS_MIN_WIDTH` columns the tables have no room for the words: the badge is the
arrow alone (still filled or hollow, up or down), and the alerts panel spells it out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from rich.cells import cell_len
from rich.text import Text

from tui.anomaly import DROP, FIRING, PENDING, SPIKE, Alert, SeriesKey

#: (type, id or None for the whole type) -> the alert that marks it: firing over pending.
Marks = dict[SeriesKey, Alert]

#: Terminals at least this wide badge with the words; narrower ones with the arrow alone.
WORDS_MIN_WIDTH = 100
#: Per direction: the colour of a flagged series' name and count, and its badge's glyphs (firing, pending).
COLOURS = {DROP: "red", SPIKE: "yellow"}
GLYPHS = {DROP: ("▼", "▽"), SPIKE: ("▲", "△")}


def marks_of(alerts: Iterable[Alert]) -> Marks:
    """The marks of the active alerts (firing first, as :meth:`AnomalyStatus.alerts` orders them):
    a series keeps the first, so a firing alert is never hidden behind a pending one."""
    marks: Marks = {}
    for alert in alerts:
        if alert.state in (FIRING, PENDING):
            marks.setdefault((alert.type, alert.id), alert)
    return marks


def cell_style(alert: Alert | None) -> str:
    """The style of a marked series' name and count: bold in the direction's colour while firing;
    a pending one is left plain (its hollow badge says it quietly)."""
    if alert is None or alert.state != FIRING:
        return ""
    return f"bold {COLOURS[alert.direction]}"


def badge(alert: Alert, short: bool = False) -> Text:
    """``▼ drop`` reversed in red (``▲ spike`` in yellow) while firing; ``▽ drop`` dim while
    pending; in the colour alone once resolved (the alert history); ``short``: the arrow alone."""
    filled, hollow = GLYPHS[alert.direction]
    colour = COLOURS[alert.direction]
    pending = alert.state == PENDING
    words = (hollow if pending else filled) + ("" if short else f" {alert.direction}")
    style = {FIRING: f"bold reverse {colour}", PENDING: f"dim italic {colour}"}.get(alert.state, colour)
    return Text(words, style=style)


@dataclass(frozen=True)
class Flags:
    """What the tables need to mark their rows: the active alerts by series, and whether the
    badges must be short (a terminal narrower than :data:`WORDS_MIN_WIDTH`)."""

    marks: Marks = field(default_factory=dict)
    short: bool = False

    def get(self, key: SeriesKey) -> Alert | None:
        return self.marks.get(key)

    def name(self, name: str | Text, alert: Alert | None) -> Text | str:
        """A row's name with its badge after it, in the alert's colour; the name alone when unmarked."""
        if alert is None:
            return name
        text = name.copy() if isinstance(name, Text) else Text(name)
        text.stylize(cell_style(alert))
        return Text.assemble(text, " ", badge(alert, self.short))

    def width(self, alert: Alert | None) -> int:
        """Cells the badge adds to a name (its space included): the tables size their name column with it."""
        return 0 if alert is None else 1 + cell_len(badge(alert, self.short).plain)


def flags_for(alerts: Iterable[Alert], screen_width: int) -> Flags:
    """The flags of a refresh: its active alerts, short badges on a terminal too narrow for words."""
    return Flags(marks_of(alerts), screen_width < WORDS_MIN_WIDTH)
