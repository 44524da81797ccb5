"""Strict, fast RFC 3339 timestamps: ``2019-12-08T06:42:57.289Z`` or ``…+05:30`` to epoch ms.

One parser for every Python the package supports: ``datetime.fromisoformat`` reads ``Z`` only from
3.11 on and, there, also reads forms a tracker never sends (``2019-12-08``, week dates, no zone),
which would count an event at a guessed time. Here the date and time must be complete and the zone
explicit. The ``YYYY-MM-DDTHH:MM:SS`` head of a timestamp is shared by every event of the same
second, so its epoch value is cached: a batch costs one calendar conversion per distinct second.
"""

from __future__ import annotations

import calendar
import datetime

#: Heads (``YYYY-MM-DDTHH:MM:SS``) already converted, to epoch seconds.
_HEADS: dict[str, int] = {}
#: The cache is emptied when it grows past this, so hostile input cannot grow it without bound.
_HEADS_MAX = 4096
#: Longest accepted: 19 (head) + 10 (``.`` and nine fraction digits) + 6 (``+hh:mm``).
_LONGEST = 35


def _head_seconds(head: str) -> int | None:
    """Epoch seconds of ``YYYY-MM-DDTHH:MM:SS`` (``T`` or ``t``), or None."""
    if head[4] != "-" or head[7] != "-" or head[10] not in "Tt" or head[13] != ":" or head[16] != ":":
        return None
    digits = head[0:4] + head[5:7] + head[8:10] + head[11:13] + head[14:16] + head[17:19]
    if not (digits.isascii() and digits.isdigit()):
        return None
    try:  # checks the calendar: month 1-12, day of that month, 23:59:59 at most (no leap second)
        moment = datetime.datetime(
            int(head[0:4]), int(head[5:7]), int(head[8:10]), int(head[11:13]), int(head[14:16]), int(head[17:19])
        )
    except ValueError:
        return None
    return calendar.timegm(moment.timetuple())


def parse_timestamp_ms(text: str) -> int | None:
    """Milliseconds since the epoch of an RFC 3339 date-time, or None when it is not one.

    Accepted: ``YYYY-MM-DDTHH:MM:SS``, an optional fraction of 1 to 9 digits (cut, not rounded, to
    the millisecond, as bucketing floors anyway), then ``Z`` or ``±hh:mm``. ``T`` and ``Z`` may be
    lower case, as RFC 3339 allows.
    """
    if not 20 <= len(text) <= _LONGEST:
        return None
    head = text[:19]
    seconds = _HEADS.get(head)
    if seconds is None:
        seconds = _head_seconds(head)
        if seconds is None:
            return None
        if len(_HEADS) >= _HEADS_MAX:
            _HEADS.clear()
        _HEADS[head] = seconds
    if len(text) == 24 and text[19] == "." and text[23] in "Zz":  # what JavaScript's toISOString writes
        millis_text = text[20:23]
        if millis_text.isascii() and millis_text.isdigit():
            return seconds * 1000 + int(millis_text)
        return None
    rest = text[19:]
    last = rest[-1]
    if last == "Z" or last == "z":
        fraction, offset_minutes = rest[:-1], 0
    elif len(rest) >= 6 and rest[-6] in "+-" and rest[-3] == ":":
        hours, minutes = rest[-5:-3], rest[-2:]
        if not (hours.isascii() and hours.isdigit() and minutes.isascii() and minutes.isdigit()):
            return None
        if int(hours) > 23 or int(minutes) > 59:
            return None
        offset_minutes = int(hours) * 60 + int(minutes)
        if rest[-6] == "-":
            offset_minutes = -offset_minutes
        fraction = rest[:-6]
    else:
        return None
    millis = 0
    if fraction:
        digits = fraction[1:]
        if fraction[0] != "." or not 1 <= len(digits) <= 9 or not (digits.isascii() and digits.isdigit()):
            return None
        millis = int((digits + "00")[:3])
    return seconds * 1000 + millis - offset_minutes * 60_000
