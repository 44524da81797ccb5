"""Per event type: events in the window, events/s over the last few seconds, share of all."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from tui import EVENT_TYPES
from tui.components.format import num, rate, share
from tui.components.ranking import ALL
from tui.components.unchanged import set_cell, set_titles
from tui.rates import RATE_SPAN_SECONDS, RateMeter
from tui.window import WindowView

__all__ = ["ALL", "RATE_LABEL", "TypesTable"]
RATE_LABEL = f"ev/s {RATE_SPAN_SECONDS:g}s"


class TypesTable(DataTable[Text | str]):
    def on_mount(self) -> None:
        self.border_title = "Event types"
        for label, key in (("type", "type"), ("events", "events"), (RATE_LABEL, "rate"), ("share", "share")):
            self.add_column(label, key=key)
        for etype in (*EVENT_TYPES, ALL):
            self.add_row(etype if etype != ALL else Text("all types", style="bold"), "", "", "", key=etype)

    def show(self, view: WindowView, meter: RateMeter[tuple[str, str]]) -> None:
        total = view.total
        for etype in (*EVENT_TYPES, ALL):
            count = total if etype == ALL else view.summary[etype].total
            per_second = meter.rate_where(lambda k, t=etype: t in (ALL, k[0]))  # type: ignore[misc]
            style = "bold" if etype == ALL else ""
            set_cell(self, etype, "events", num(count, style=style), update_width=True)
            set_cell(self, etype, "rate", Text(rate(per_second) if meter.ready else "–", justify="right", style=style), update_width=True)
            set_cell(self, etype, "share", num(share(count, total), ".1f", "%", style=style), update_width=True)
        set_titles(self, "Event types", incomplete_label(view) or view.label)

    @property
    def content_width(self) -> int:
        """Columns the table needs, borders included: the left column is sized to this."""
        return sum(column.get_render_width(self) for column in self.columns.values()) + 2  # the borders


def incomplete_label(view: WindowView) -> Text | None:
    """In red, instead of the window's label, while part of the window could not be read: the
    counts are then low, and the user must see it and be able to ask why."""
    if not view.incomplete:
        return None
    gaps = len(view.incomplete)
    return Text(f"incomplete: {gaps} gap{'s' if gaps != 1 else ''} — press i", style="bold white on red")
