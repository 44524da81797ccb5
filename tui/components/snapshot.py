"""What one refresh read, handed from the read worker to the widgets (no Textual here)."""

from __future__ import annotations

from dataclasses import dataclass

from tui.anomaly.watch import AnomalyStatus
from tui.components.ranking import Ranking
from tui.pipeline import PipelineStatus
from tui.store import Health
from tui.store.sketch_reads import DistinctRead
from tui.window import WindowView

#: The counts of the last few buckets: bucket index -> (event type, tracking id) -> events, over
#: every writer. The rate meter compares these from refresh to refresh.
Recent = dict[int, dict[tuple[str, str], int]]


@dataclass(frozen=True)
class Live:
    """Distinct visitors "right now": over the last ``seconds`` (``live_minutes`` in whole buckets),
    every type united, over every id (``read.total``) and for the ``ids`` the tracking-id table
    showed when it was read (``read.by_id``; an id read without visitors is absent there). Only
    the shown ids are read, so its cost grows with the rows on screen, not with the prefix's ids."""

    read: DistinctRead
    ids: frozenset[str]
    seconds: int


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
    #: The live visitors of the ranked ids and of every id (None: not read, e.g. the store failed).
    live: Live | None = None
    #: The anomaly watch's state after this refresh's poll (None: detection is off).
    anomalies: AnomalyStatus | None = None
