"""From a request body to counted events and rejections: the one gate every ingested event passes.

:meth:`Decoder.decode` gives every event in a body exactly one result, an :class:`IngestEvent` or a
:class:`Rejection` naming the event's index, the field and the reason, never a silent drop; or,
for a body that cannot be read as a whole, one :class:`~tui.ingest.body.BodyError` (400, 413, 415).

An event is the brief's wrapper ``{"path": "/visitors/events/", "value": {…}}`` or its bare
``value``. Its fields are checked in this order, and the first problem is the event's one result:

- ``value.trackingId``: a non-empty string of at most ``tracking_id_bytes``, printable, with no
  whitespace (the rule of :func:`tui.settings.key_text_problem`, shared with the settings);
- ``value.event``: a string of at most ``event_name_bytes`` that ``event_types`` maps to a type;
- ``value.timestamp``: RFC 3339 with ``Z`` or an offset (:mod:`tui.ingest.timestamps`), neither
  older than the retention (``late``) nor more than ``future_skew_seconds`` ahead (``future``);
- optional ``value.visitorId`` and ``value.sessionId`` (ids, by the tracking id's rule) and
  ``value.form.email``, kept only as a keyed hash for a later distinct-visitors count: the address
  itself, like the IP in ``geo``, is never kept, logged or stored. Without a key (no
  ``email_salt``) no address is hashed at all (``email_hash`` None): an unkeyed hash of an address
  can be reversed by hashing a list of addresses, so no salt means no distinct signups.

Field paths are the paths in the posted document: ``value.trackingId`` in a wrapper,
``trackingId`` in a bare value. The wall clock is read once per body, from the injected clock.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from tui import DEFAULT_EVENT_TYPES, EVENT_TYPES
from tui.clock import Clock
from tui.ingest.body import Framing, documents
from tui.ingest.timestamps import parse_timestamp_ms
from tui.settings import MAX_EVENT_NAME_BYTES, key_text_problem


@dataclass(frozen=True)
class IngestLimits:
    """What one request may hold, so that hostile traffic cannot blow up memory or CPU.

    - ``body_bytes``: a body, both as sent and after gzip (413 over it). 1 MB.
    - ``events_per_request``: documents in one body (413 over it). 1,000.
    - ``event_bytes``: one event's whole document (the event is rejected over it). 64 KiB.
    - ``tracking_id_bytes``, ``event_name_bytes``, ``id_bytes`` (visitorId, sessionId),
      ``email_bytes``: field lengths in UTF-8 bytes. 128, 64, 128, 254 (RFC 5321's longest path).
    - ``depth``: JSON nesting (400 over it). The samples nest 4 deep, 5 in an array. 32.
    - ``future_skew_seconds``: how far ahead of the server's clock an event may be stamped before
      it is rejected as ``future``; covers browsers' clocks being a little fast. 60 s.
    """

    body_bytes: int = 1_000_000
    events_per_request: int = 1_000
    event_bytes: int = 65_536
    tracking_id_bytes: int = 128
    event_name_bytes: int = MAX_EVENT_NAME_BYTES
    id_bytes: int = 128
    email_bytes: int = 254
    depth: int = 32
    future_skew_seconds: float = 60.0


class IngestEvent(NamedTuple):
    """One accepted event. The first three fields are what :meth:`tui.window.Ledger.record` counts."""

    type: str
    tracking_id: str
    ts_ms: int
    visitor_id: str | None = None
    session_id: str | None = None
    #: 8 bytes of a keyed BLAKE2b of the lower-cased address, as an int; never the address.
    email_hash: int | None = None


#: Builds an :class:`IngestEvent` from a tuple of all six fields without the Python-level
#: ``__new__`` of a NamedTuple (it fills in defaults): a third of the cost, once per event.
_new_event = functools.partial(tuple.__new__, IngestEvent)


class Reason:
    """Rejection codes: a short, fixed set the server can count by (``Rejection.code``)."""

    NOT_AN_OBJECT = "not_an_object"
    MISSING = "missing"
    WRONG_TYPE = "wrong_type"
    TOO_LONG = "too_long"
    INVALID_ID = "invalid_id"
    UNKNOWN_EVENT = "unknown_event"
    BAD_TIMESTAMP = "bad_timestamp"
    LATE = "late"
    FUTURE = "future"
    EVENT_TOO_LARGE = "event_too_large"


#: Every code, for pre-registering metrics so that a zero is shown before the first rejection.
REASONS: tuple[str, ...] = tuple(v for k, v in vars(Reason).items() if k.isupper())


class Rejection(NamedTuple):
    """One refused event: its index among the body's events, the field's path, a sentence and a code."""

    index: int
    field: str
    reason: str
    code: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason, "code": self.code}


class DecodedBatch(NamedTuple):
    """The result of one body: ``len(events) + len(rejected)`` is the number of events it held."""

    events: list[IngestEvent]
    rejected: list[Rejection]


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


class _Refused(Exception):
    """Internal: one event's rejection, raised from a field check and caught per event."""

    def __init__(self, field: str, reason: str, code: str) -> None:
        super().__init__(reason)
        self.field, self.reason, self.code = field, reason, code


class Decoder:
    """Decodes bodies with fixed settings; one instance serves every request (it keeps no state
    between calls except a cache of timestamp heads, safe to share between threads)."""

    def __init__(
        self,
        clock: Clock,
        retention_seconds: float,
        event_types: Mapping[str, str] = DEFAULT_EVENT_TYPES,
        limits: IngestLimits = IngestLimits(),
        email_key: bytes = b"",
    ) -> None:
        """``retention_seconds``: events older than this (by their own timestamp) are ``late``.
        ``email_key``: the key of the e-mail hash; give every ``serve`` of one deployment the same
        secret, so that their hashes agree and cannot be reversed by hashing a list of addresses.
        Empty: e-mails are checked but not hashed (``email_hash`` is None)."""
        for name, etype in event_types.items():
            if etype not in EVENT_TYPES:
                raise ValueError(f"event_types: {name!r} maps to {etype!r}; types are {', '.join(EVENT_TYPES)}")
        if retention_seconds <= 0:
            raise ValueError(f"retention_seconds: must be more than 0, got {retention_seconds!r}")
        self._clock = clock
        self._retention_ms = int(retention_seconds * 1000)
        self._skew_ms = int(limits.future_skew_seconds * 1000)
        for name in event_types:
            if not name or len(name.encode("utf-8", "replace")) > limits.event_name_bytes:
                raise ValueError(f"event_types: {name!r} is empty or longer than {limits.event_name_bytes} bytes")
        self._types = dict(event_types)
        self._tid_max, self._id_max, self._email_max = limits.tracking_id_bytes, limits.id_bytes, limits.email_bytes
        #: A plainly valid id in one C call: 1 to N printable ASCII characters, no space (a subset
        #: of what :func:`_check_id` accepts; anything else goes the careful way).
        self._tid_ok = re.compile(f"[!-~]{{1,{limits.tracking_id_bytes}}}").fullmatch
        self._id_ok = re.compile(f"[!-~]{{1,{limits.id_bytes}}}").fullmatch
        self._known = ", ".join(sorted(event_types))
        self._limits = limits
        self._framing = Framing(limits.body_bytes, limits.events_per_request, limits.event_bytes, limits.depth)
        self._email_key = email_key[:64]  # BLAKE2b takes keys of up to 64 bytes

    def decode(self, body: bytes, content_type: str | None = None, content_encoding: str | None = None) -> DecodedBatch:
        """Every event of ``body``, accepted or rejected; :class:`~tui.ingest.body.BodyError` for a
        body refused as a whole (then no event of it counts)."""
        now_ms = int(self._clock.time() * 1000)
        events: list[IngestEvent] = []
        rejected: list[Rejection] = []
        check = self.check
        for index, (doc, too_large) in enumerate(documents(body, content_type, content_encoding, self._framing)):
            if too_large:
                reason = f"event document is over {self._limits.event_bytes:,} bytes"
                rejected.append(Rejection(index, "", reason, Reason.EVENT_TOO_LARGE))
                continue
            result = check(doc, index, now_ms)
            (events if type(result) is IngestEvent else rejected).append(result)  # type: ignore[arg-type]
        return DecodedBatch(events, rejected)

    def check(self, doc: Any, index: int, now_ms: int) -> IngestEvent | Rejection:
        """One parsed document (wrapper or bare value) as an event, or why it is not one."""
        accepted = self._plain(doc, now_ms)
        if accepted is not None:
            return accepted
        try:
            return self._careful(doc, now_ms)
        except _Refused as refused:
            return Rejection(index, refused.field, refused.reason, refused.code)

    def _plain(self, doc: Any, now_ms: int) -> IngestEvent | None:
        """The hot path: an event whose fields are all ASCII and plainly valid, in one function with
        one precompiled check per id and no call per field; None for anything else, which
        :meth:`_careful` then decides and explains. It must never accept what :meth:`_careful`
        would refuse (a property test compares them)."""
        if type(doc) is not dict:
            return None
        value = doc.get("value", doc)
        if type(value) is not dict:
            return None
        get = value.get
        tid, name, stamp = get("trackingId"), get("event"), get("timestamp")
        if type(tid) is not str or type(stamp) is not str or type(name) is not str or self._tid_ok(tid) is None:
            return None
        etype = self._types.get(name)
        ts_ms = parse_timestamp_ms(stamp)
        if etype is None or ts_ms is None or not now_ms - self._retention_ms <= ts_ms <= now_ms + self._skew_ms:
            return None
        visitor, session = get("visitorId"), get("sessionId")
        id_ok = self._id_ok
        if (visitor is not None and (type(visitor) is not str or id_ok(visitor) is None)) or (
            session is not None and (type(session) is not str or id_ok(session) is None)
        ):
            return None
        form = get("form")
        email_hash = None
        if form is not None:
            if type(form) is not dict:
                return None
            email = form.get("email")
            if email is not None:
                if type(email) is not str or len(email) > self._email_max or not email.isascii():
                    return None
                if email:
                    email_hash = self._hash(email)
        return _new_event((etype, tid, ts_ms, visitor, session, email_hash))

    def _careful(self, doc: Any, now_ms: int) -> IngestEvent:
        """Every check in order, raising :class:`_Refused` with the first problem found."""
        if type(doc) is not dict:
            raise _Refused("", f"expected an event object, got {_json_type(doc)}", Reason.NOT_AN_OBJECT)
        prefix = ""
        value = doc
        if "value" in doc:
            value, prefix = doc["value"], "value."
            if type(value) is not dict:
                raise _Refused("value", f"expected an object, got {_json_type(value)}", Reason.WRONG_TYPE)
        limits = self._limits
        tracking_id = _check_id(_required(value, "trackingId", prefix, limits.tracking_id_bytes), f"{prefix}trackingId")
        name = _required(value, "event", prefix, limits.event_name_bytes)
        etype = self._types.get(name)
        if etype is None:
            raise _Refused(f"{prefix}event", f"unknown event {_short(name)}; known: {self._known}", Reason.UNKNOWN_EVENT)
        stamp = _required(value, "timestamp", prefix, 64)
        ts_ms = parse_timestamp_ms(stamp)
        if ts_ms is None:
            raise _Refused(f"{prefix}timestamp", f"{_short(stamp)} is not an RFC 3339 time such as 2019-12-08T06:42:57.289Z", Reason.BAD_TIMESTAMP)
        if ts_ms < now_ms - self._retention_ms:
            raise _Refused(f"{prefix}timestamp", f"{stamp} is older than the retention ({self._retention_ms / 1000:g} s)", Reason.LATE)
        if ts_ms > now_ms + self._skew_ms:
            raise _Refused(f"{prefix}timestamp", f"{stamp} is more than {self._skew_ms / 1000:g} s ahead of the server's clock", Reason.FUTURE)
        visitor_id = _optional(value, "visitorId", prefix, limits.id_bytes)
        if visitor_id is not None:
            _check_id(visitor_id, f"{prefix}visitorId")
        session_id = _optional(value, "sessionId", prefix, limits.id_bytes)
        if session_id is not None:
            _check_id(session_id, f"{prefix}sessionId")
        form = value.get("form")
        email_hash = None
        if form is not None:
            if type(form) is not dict:
                raise _Refused(f"{prefix}form", f"expected an object, got {_json_type(form)}", Reason.WRONG_TYPE)
            email = _optional(form, "email", f"{prefix}form.", limits.email_bytes)
            if email:
                email_hash = self._hash(email)
        return IngestEvent(etype, tracking_id, ts_ms, visitor_id, session_id, email_hash)

    def _hash(self, email: str) -> int | None:
        return hash_email(email, self._email_key) if self._email_key else None


def hash_email(email: str, key: bytes) -> int:
    """8 bytes of a BLAKE2b of the trimmed, lower-cased address keyed with ``key`` (at most 64 bytes
    are used), as an int: what distinct signups count, so that the address itself is never kept.
    The generator's e-mails go through this too, so both paths count the same person once."""
    digest = hashlib.blake2b(email.strip().lower().encode("utf-8", "replace"), digest_size=8, key=key[:64]).digest()
    return int.from_bytes(digest, "big")


def _optional(value: dict[str, Any], key: str, prefix: str, limit: int) -> str | None:
    """``value[key]`` as a string of at most ``limit`` UTF-8 bytes, or None when absent or null."""
    text = value.get(key)
    if type(text) is str:
        if len(text) > limit or (not text.isascii() and len(text.encode("utf-8", "replace")) > limit):
            raise _Refused(f"{prefix}{key}", f"is longer than {limit} bytes", Reason.TOO_LONG)
        return text
    if text is None:
        return None
    raise _Refused(f"{prefix}{key}", f"expected a string, got {_json_type(text)}", Reason.WRONG_TYPE)


def _required(value: dict[str, Any], key: str, prefix: str, limit: int) -> str:
    """Like :func:`_optional`, and absent or null is refused as missing."""
    text = _optional(value, key, prefix, limit)
    if text is None:
        raise _Refused(f"{prefix}{key}", "is missing" if key not in value else "is null", Reason.MISSING)
    return text


def _check_id(text: str, field: str) -> str:
    """``text`` when it is a usable id: non-empty, printable, no whitespace (as in the settings)."""
    if text and text.isprintable() and " " not in text:
        return text
    problem = key_text_problem(text) if text else "is empty"
    raise _Refused(field, f"{_short(text)} {problem}", Reason.INVALID_ID)


def _short(text: str) -> str:
    """``text`` quoted for a message, cut to 40 characters and with every odd character escaped."""
    shown = ascii(text[:40])
    return shown if len(text) <= 40 else f"{shown[:-1]}…{shown[-1]}"
