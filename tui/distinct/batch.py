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
from typing import Any, Protocol

from tui.distinct.sketch import DEFAULT_LG_K, check_lg_k, sketch_of, sketch_of_hashes

#: The series of distinct signups (distinct e-mail hashes of ``formsubmit`` events) per tracking id.
SIGNUPS = "signups"
#: The event type whose e-mails are the signups.
SIGNUP_TYPE = "signup"

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
        try:
            bucket = map(floordiv, map(_TS, events), repeat(self._ms))
            self._pending.update(zip(bucket, map(_TYPE, events), map(_TID, events), map(_VISITOR, events), map(_EMAIL, events)))
        except AttributeError:  # plain (type, id, ts_ms) tuples (tools, tests): no visitors, entries only
            ms = self._ms
            self._pending.update(
                (e[2] // ms, e[0], e[1], getattr(e, "visitor_id", None), getattr(e, "email_hash", None)) for e in events
            )

    def __len__(self) -> int:
        """Distinct (bucket, type, id, visitor, e-mail hash) entries waiting for the next :meth:`take`."""
        return len(self._pending)

    def take_items(self) -> dict[SketchKey, set[Any]]:
        """The distinct items of everything recorded since the last take, per (bucket, series,
        tracking id), and forget them. Every (bucket, type, id) that had an event has an entry, an
        empty one when no event carried a visitor id, and so has every id with a sign-up under
        :data:`SIGNUPS`: the store keeps an entry beside every count, so that a missing one is known
        to be lost (:mod:`tui.store.sketches`)."""
        taken: dict[SketchKey, set[Any]] = {}
        group = taken.setdefault
        for bucket, etype, tracking_id, visitor, email in self._pending:
            visitors = group((bucket, etype, tracking_id), set())
            if visitor is not None:
                visitors.add(visitor)
            if etype == SIGNUP_TYPE:
                signups = group((bucket, SIGNUPS, tracking_id), set())
                if email is not None:
                    signups.add(email)
        self._pending = set()
        return taken

    def take(self) -> dict[SketchKey, bytes]:
        """One compact sketch per (bucket, series, tracking id) of everything recorded since the last
        call (:meth:`take_items`, built into sketches). A flush that fails can simply be retried with
        the same sketches, or with these united with the next ones: union is idempotent."""
        return {
            key: (sketch_of_hashes if key[1] == SIGNUPS else sketch_of)(items, self.lg_k)
            for key, items in self.take_items().items()
        }

