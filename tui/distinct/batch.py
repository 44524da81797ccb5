"""A writer's distinct items since its last flush, turned into one sketch per (bucket, series, id).

The hot path only adds ``(bucket, type, tracking id, visitor, e-mail hash)`` tuples to a set, in C
through ``set.update``: a visitor's session of several events costs one entry, and nothing is hashed
into a sketch per event. :meth:`DistinctBatch.take` builds the sketches once per flush, one update per
distinct item. Measured against plain counting in ``bench/sketch.py``.

Series: each event type's distinct visitors are the series named by the type (``signup``,
``user-event``, ``review``); distinct signups, keyed by the keyed hash of the form's e-mail
(:func:`tui.ingest.decode.hash_email`), are the series :data:`SIGNUPS`. No e-mail, IP or visitor id
is kept past the flush, and none reaches a stored value: a sketch holds only hashes of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from operator import attrgetter, floordiv
from typing import Protocol

from tui.distinct.sketch import DEFAULT_LG_K, check_lg_k, sketch_of, sketch_of_hashes

#: The series of distinct signups (distinct e-mail hashes of ``formsubmit`` events) per tracking id.
SIGNUPS = "signups"

#: (bucket, series, tracking id): what one sketch of a flush covers.
SketchKey = tuple[int, str, str]

_TS, _TYPE, _TID = attrgetter("ts_ms"), attrgetter("type"), attrgetter("tracking_id")
_VISITOR, _EMAIL = attrgetter("visitor_id"), attrgetter("email_hash")


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
        self._pending: set[tuple[int, str, str, str | None, int | None]] = set()

    def record(self, events: Sequence[DistinctEvent]) -> None:
        """Note each event's visitor under its type and, for a signup with an e-mail, its e-mail hash
        under :data:`SIGNUPS`. Events without a visitor id count in no series' visitors.

        One C-level pass (``map``/``zip`` of attribute getters into ``set.update``): no Python code
        runs per event, which keeps ingest with sketches near plain counting."""
        bucket = map(floordiv, map(_TS, events), repeat(self._ms))
        self._pending.update(zip(bucket, map(_TYPE, events), map(_TID, events), map(_VISITOR, events), map(_EMAIL, events)))

    def __len__(self) -> int:
        """Distinct (bucket, type, id, visitor, e-mail hash) entries waiting for the next :meth:`take`."""
        return len(self._pending)

    def take(self) -> dict[SketchKey, bytes]:
        """One compact sketch per (bucket, series, tracking id) of everything recorded since the last
        call, and forget it. A flush that fails can simply be retried with the same sketches, or
        with these united with the next ones: union is idempotent."""
        visitors: dict[SketchKey, list[str]] = {}
        signups: dict[SketchKey, list[int]] = {}
        visitor_group, signup_group = visitors.setdefault, signups.setdefault
        for bucket, etype, tracking_id, visitor, email in self._pending:
            if visitor is not None:
                visitor_group((bucket, etype, tracking_id), []).append(visitor)
            if email is not None:
                signup_group((bucket, SIGNUPS, tracking_id), []).append(email)
        self._pending = set()
        taken = {key: sketch_of(items, self.lg_k) for key, items in visitors.items()}
        taken.update((key, sketch_of_hashes(items, self.lg_k)) for key, items in signups.items())
        return taken
