"""Skip updates that change nothing: at 100,000 ids most of a refresh repeats what is on screen.

``DataTable.update_cell`` makes the table render all its visible rows again (it invalidates every
row's render cache), ``Static.update`` asks for a layout of the whole screen, and setting a border
title repaints the widget even when the title is the same. Between two by-id
reads (seconds apart at many ids) the 200 rows of the tracking-id table do not change at all, so
comparing first saves the table's whole rendering on most refreshes.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from rich.text import Text
from textual.widget import Widget
from textual.widgets import DataTable, Static

#: The border title and subtitle last set on each widget (what Textual gives back is markup).
_titles: WeakKeyDictionary[Widget, tuple[object, object]] = WeakKeyDictionary()


def same(a: object, b: object) -> bool:
    """Whether two cell values draw alike. ``Text ==`` compares text and spans only, not the
    style or alignment of the whole text, so those are compared too."""
    if isinstance(a, Text) and isinstance(b, Text):
        return (a.plain, a.spans, a.style, a.justify, a.no_wrap, a.overflow) == (b.plain, b.spans, b.style, b.justify, b.no_wrap, b.overflow)
    return type(a) is type(b) and a == b


def set_cell(table: DataTable[Any], row: str, column: str, value: object, update_width: bool = False) -> None:
    """``table.update_cell`` unless the cell already holds the same value."""
    if not same(table.get_cell(row, column), value):
        table.update_cell(row, column, value, update_width=update_width)


def set_content(widget: Static, content: str | Text) -> None:
    """``widget.update`` unless it already shows the same content."""
    if not same(widget.content, content):
        widget.update(content)


def set_titles(widget: Widget, title: str | Text, subtitle: str | Text) -> None:
    """Set the border title and subtitle unless they are already these."""
    last = _titles.get(widget)
    if last is not None and same(last[0], title) and same(last[1], subtitle):
        return
    widget.border_title, widget.border_subtitle = title, subtitle
    _titles[widget] = (title, subtitle)
