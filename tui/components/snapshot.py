"""What one refresh read, handed from the read worker to the widgets (no Textual here)."""

from __future__ import annotations

from dataclasses import dataclass

from tui.components.ranking import Ranking
from tui.pipeline import PipelineStatus
from tui.store import Health
from tui.window import WindowView

#: The counts of the last few buckets: bucket index -> (event type, tracking id) -> events, over
#: every writer. The rate meter compares these from refresh to refresh.
Recent = dict[int, dict[tuple[str, str], int]]


@dataclass(frozen=True)
class Snapshot:
    """Everything one refresh shows, read off the UI thread."""

    now: float
    view: WindowView | None
    recent: Recent | None
    status: PipelineStatus
    health: Health
    read_error: str | None
    #: The tracking-id table's rows for the selection and filter at the time of the read.
    ranking: Ranking | None = None
