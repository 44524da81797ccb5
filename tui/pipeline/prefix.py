"""The prefix's layout, agreed once with its meta key and shared by one process's reader and writer.

The writer and the reader of a process must use the same :class:`~tui.store.layout.Layout` (the same
bucket length, retention and shard count the prefix was set up with), and the writer must be able to
forget it when the store lost its data (a restart: the meta key may be gone too). This one small
object holds it, so neither stage reaches into the other.
"""

from __future__ import annotations

from tui.settings import Settings
from tui.store import Store, prefix_settings
from tui.store.layout import Layout


class PrefixLayout:
    """The layout of ``settings``' prefix in ``store``, opened on first use (PrefixConflict if the
    prefix was set up otherwise)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        #: The settings the prefix is opened with; the pipeline keeps them current (``set_window``).
        self.settings = settings
        self._layout: Layout | None = None

    def get(self, action: str = "reading the prefix's metadata") -> Layout:
        """The layout; ``action`` names what the caller was doing, for the message if the store is
        unreachable."""
        if self._layout is None:
            self._layout = self.store.open_prefix(prefix_settings(self.settings), action)
        return self._layout

    def forget(self) -> None:
        """The store lost its data (restart, ring change): agree with the meta key again at next use."""
        self._layout = None
