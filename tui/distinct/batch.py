"""A writer's distinct items since its last flush, turned into one sketch per (bucket, series, id).

The hot path only adds ``(bucket, series, tracking id, item)`` tuples to a set, in C through
``set.update``: a visitor's session of several events costs one entry, and nothing is hashed into a
sketch per event. :meth:`DistinctBatch.take` builds the sketches once per flush, one update per
distinct item. Measured against plain counting in ``bench/sketch.py``.

Series: each event type's distinct visitors are the series named by the type (``signup``,
``user-event``, ``review``); distinct signups, keyed by the keyed hash of the form's e-mail
(:func:`tui.ingest.decode.hash_email`), are the series :data:`SIGNUPS`. No e-mail, IP or visitor id
is kept past the flush, and none reaches a stored value: a sketch holds only hashes of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from tui.distinct.sketch import DEFAULT_LG_K, check_lg_k, sketch_of

#: The series of distinct signups (distinct e-mail hashes of ``formsubmit`` events) per tracking id.
SIGNUPS = "signups"

#: (bucket, series, tracking id): what one sketch of a flush covers.
SketchKey = tuple[int, str, str]


class DistinctEvent(Protocol):
    """What the batch reads from an event: :class:`tui.ingest.decode.IngestEvent` is one."""

    @property
    def type(self) -> str: ...
    @property
    def tracking_id(self) -> str: ...
    @property
    def ts_ms(self) -> int: ...
    @property
    def visitor_id(self) -> str | None: ...
    @property
    def email_hash(self) -> int | None: ...


class DistinctBatch:
    """Collects distinct visitors and signups of events until :meth:`take` turns them into sketches."""

    def __init__(self, bucket_seconds: int, lg_k: int = DEFAULT_LG_K) -> None:
        if type(bucket_seconds) is not int or bucket_seconds <= 0:
            raise ValueError(f"bucket_seconds: {bucket_seconds!r} is not a whole number of seconds over 0")
        self._ms = bucket_seconds * 1000
        self.lg_k = check_lg_k(lg_k)
        self._pending: set[tuple[int, str, str, str | int]] = set()

    def record(self, events: Iterable[DistinctEvent]) -> None:
        """Note each event's visitor under its type and, for a signup with an e-mail, its e-mail hash
        under :data:`SIGNUPS`. Events without a visitor id count in neither series' visitors."""
        ms = self._ms
        add = self._pending.add
        for event in events:
            visitor, email = event.visitor_id, event.email_hash
            if visitor is not None:
                add((event.ts_ms // ms, event.type, event.tracking_id, visitor))
            if email is not None:
                add((event.ts_ms // ms, SIGNUPS, event.tracking_id, email))

    def __len__(self) -> int:
        """Distinct (bucket, series, id, item) entries waiting for the next :meth:`take`."""
        return len(self._pending)

    def take(self) -> dict[SketchKey, bytes]:
        """One compact sketch per (bucket, series, tracking id) of everything recorded since the last
        call, and forget it. A flush that fails can simply be retried with the same sketches, or
        with these united with the next ones: union is idempotent."""
        groups: dict[SketchKey, list[str | int]] = {}
        for bucket, series, tracking_id, item in self._pending:
            key = (bucket, series, tracking_id)
            items = groups.get(key)
            if items is None:
                groups[key] = items = []
            items.append(item)
        self._pending = set()
        return {key: sketch_of(items, self.lg_k) for key, items in groups.items()}
