"""A writer's distinct visitors and signups since its last flush: one sketch per (bucket, series, id).

The hot path hashes each event's visitor straight into the DataSketches sketch of its (bucket, type,
tracking id), through ``map``/``zip`` of attribute getters into ``hll_sketch.update``: no Python code
runs per event, and nothing is collected first, since a sketch dedupes a visitor's session of several
events by itself. (Collecting ``(bucket, type, id, visitor)`` tuples in a set and grouping them at
each flush cost three times as much.) Measured against plain counting in ``bench/visitors.py``.

Series: each event type's distinct visitors are the series named by the type (``signup``,
``user-event``, ``review``); distinct signups, keyed by the keyed hash of the form's e-mail
(:func:`tui.ingest.decode.hash_email`), are the series :data:`SIGNUPS`. No e-mail, IP or visitor id
is kept past the event, and none reaches a stored value: a sketch holds only hashes of them.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from functools import partial
from itertools import compress, repeat
from operator import attrgetter, eq, floordiv, is_not, itemgetter, sub
from typing import Any, Protocol

import datasketches as ds

from tui.distinct.sketch import DEFAULT_LG_K, HASH_OFFSET, check_lg_k
from tui.window import bucket_keys

#: The series of distinct signups (distinct e-mail hashes of ``formsubmit`` events) per tracking id.
SIGNUPS = "signups"
#: The event type whose e-mails are the signups.
SIGNUP_TYPE = "signup"

#: (bucket, series, tracking id): what one sketch of a flush covers.
SketchKey = tuple[int, str, str]

_TS, _TYPE, _TID = attrgetter("ts_ms"), attrgetter("type"), attrgetter("tracking_id")
_VISITOR, _EMAIL = attrgetter("visitor_id"), attrgetter("email_hash")
_AT_0, _AT_1, _AT_2 = itemgetter(0), itemgetter(1), itemgetter(2)
_UPDATE = ds.hll_sketch.update
_HLL_4 = ds.tgt_hll_type.HLL_4


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
    """Hashes the visitors and signups of events into one sketch per (bucket, series, id) until :meth:`take`."""

    def __init__(self, bucket_seconds: int, lg_k: int = DEFAULT_LG_K) -> None:
        if type(bucket_seconds) is not int or bucket_seconds <= 0:
            raise ValueError(f"bucket_seconds: {bucket_seconds!r} is not a whole number of seconds over 0")
        self._ms = bucket_seconds * 1000
        self.lg_k = check_lg_k(lg_k)
        self._sketches: defaultdict[SketchKey, ds.hll_sketch] = defaultdict(partial(ds.hll_sketch, self.lg_k, _HLL_4))

    def record(self, events: Sequence[DistinctEvent] | Sequence[tuple[str, str, int]], keys: list[SketchKey] | None = None) -> None:
        """Hash each event's visitor into the sketch of its (bucket, type, id) and, for a signup with
        an e-mail, its e-mail hash into the sketch of (bucket, :data:`SIGNUPS`, id). Every (bucket,
        type, id) that had an event gets a sketch, an empty one when no event carried a visitor id,
        and so does every (bucket, :data:`SIGNUPS`, id) with a sign-up: the store keeps an entry
        beside every count, so that a missing one is known to be lost (:mod:`tui.store.sketches`).

        ``keys``: the events' :func:`tui.window.bucket_keys` (the writer made them to count the
        events: making them is a third of the cost here)."""
        if keys is None:
            try:
                keys = list(zip(map(floordiv, map(_TS, events), repeat(self._ms)), map(_TYPE, events), map(_TID, events)))
            except AttributeError:  # plain (type, id, ts_ms) tuples (tools, tests): entries only
                keys = list(bucket_keys(events, self._ms))  # type: ignore[arg-type]
        self._hash_into(keys, _values(events, _VISITOR))
        signed = list(map(eq, map(_AT_1, keys), repeat(SIGNUP_TYPE)))
        if any(signed):
            signups = list(compress(keys, signed))
            emails = _values(list(compress(events, signed)), _EMAIL)
            self._hash_into(list(zip(map(_AT_0, signups), repeat(SIGNUPS), map(_AT_2, signups))), emails, hashes=True)

    def _hash_into(self, keys: list[SketchKey], items: list[Any], hashes: bool = False) -> None:
        """Each item into the sketch of its key (``hashes``: 64-bit e-mail hashes, moved into the
        signed range as :func:`tui.distinct.sketch.new_sketch` does); None items only make the entry."""
        sketches = map(self._sketches.__getitem__, keys)
        try:
            deque(map(_UPDATE, sketches, map(sub, items, repeat(HASH_OFFSET)) if hashes else items), maxlen=0)
        except TypeError:  # some items are None: hash the others again (a sketch takes an item twice
            # as once) and make every key's entry
            deque(map(self._sketches.__getitem__, keys), maxlen=0)
            given = list(map(is_not, items, repeat(None)))
            present = compress(items, given)
            targets = map(self._sketches.__getitem__, compress(keys, given))
            deque(map(_UPDATE, targets, map(sub, present, repeat(HASH_OFFSET)) if hashes else present), maxlen=0)

    def __len__(self) -> int:
        """(bucket, series, id) sketches waiting for the next :meth:`take_sketches`."""
        return len(self._sketches)

    def take_sketches(self) -> dict[SketchKey, ds.hll_sketch]:
        """The sketch of every (bucket, series, id) recorded since the last take, and forget them."""
        taken = dict(self._sketches)
        self._sketches.clear()
        return taken

    def take(self) -> dict[SketchKey, bytes]:
        """:meth:`take_sketches` as compact bytes. A flush that fails can simply be retried with the
        same sketches, or with these united with the next ones: union is idempotent."""
        return {key: bytes(sketch.serialize_compact()) for key, sketch in self.take_sketches().items()}


def _values(events: Sequence[Any], get: attrgetter[Any]) -> list[Any]:
    """``get`` of each event; None for plain (type, id, ts_ms) tuples, which carry no visitors
    (one by one only then: events mixed in with them keep theirs)."""
    try:
        return list(map(get, events))
    except AttributeError:
        return list(map(partial(_or_none, get), events))


def _or_none(get: attrgetter[Any], event: Any) -> Any:
    """``get`` of an event, None for a plain tuple (it has no such field)."""
    try:
        return get(event)
    except AttributeError:
        return None
