"""From an HTTP request body to JSON documents: media type, gzip, UTF-8, framing, size and depth.

Everything here is about the body as a whole; a problem ends the whole request in one
:class:`BodyError` whose ``status`` is the HTTP answer (400, 413 or 415). What each document says is
checked per event in :mod:`tui.ingest.decode`.

Accepted media types (parameters other than ``charset`` are ignored):

- ``application/json``: one document or a JSON array of documents;
- ``application/x-ndjson``: one document per line, blank lines ignored;
- ``text/plain``, read as JSON: ``navigator.sendBeacon(url, string)`` sends that type, and it is
  the type a cross-origin ``fetch`` can send without a CORS preflight, so browser trackers use it;
- no ``Content-Type`` at all, read as JSON: ``sendBeacon`` with an untyped ``Blob`` sends none.

``charset``, when given, must be UTF-8 (JSON has no other encoding since RFC 8259). Anything else,
including curl's default ``application/x-www-form-urlencoded``, is ``415``.
"""

from __future__ import annotations

import json
import re
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

JSON, NDJSON = "json", "ndjson"
MEDIA_TYPES: dict[str, str] = {"application/json": JSON, "text/plain": JSON, "application/x-ndjson": NDJSON}
CHARSETS = ("utf-8", "utf8")
ENCODINGS = ("", "identity", "gzip", "x-gzip")


class BodyKind:
    """Why a whole body was refused; ``STATUS`` gives the HTTP answer for each."""

    PARSE = "parse"
    TOO_DEEP = "too_deep"
    TOO_LARGE = "too_large"
    TOO_MANY_EVENTS = "too_many_events"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNSUPPORTED_ENCODING = "unsupported_encoding"


STATUS: dict[str, int] = {
    BodyKind.PARSE: 400,
    BodyKind.TOO_DEEP: 400,
    BodyKind.TOO_LARGE: 413,
    BodyKind.TOO_MANY_EVENTS: 413,
    BodyKind.UNSUPPORTED_MEDIA_TYPE: 415,
    BodyKind.UNSUPPORTED_ENCODING: 415,
}


class BodyError(Exception):
    """A body refused as a whole. ``str()`` is the one-line message for the client."""

    def __init__(self, kind: str, message: str, line: int | None = None, column: int | None = None) -> None:
        where = f" at line {line}" + (f", column {column}" if column is not None else "") if line is not None else ""
        super().__init__(f"{message}{where}")
        self.kind = kind
        self.line = line
        self.column = column

    @property
    def status(self) -> int:
        return STATUS[self.kind]


@dataclass(frozen=True)
class Framing:
    """The limits that apply to a body as a whole (see :class:`tui.ingest.decode.IngestLimits`)."""

    body_bytes: int
    events: int
    event_bytes: int
    depth: int


def media_type(content_type: str | None) -> str:
    """:data:`JSON` or :data:`NDJSON` for a ``Content-Type`` header, or :class:`BodyError` (415)."""
    if not content_type:
        return JSON
    kind, *params = content_type.split(";")
    found = MEDIA_TYPES.get(kind.strip().lower())
    if found is None:
        known = ", ".join(MEDIA_TYPES)
        raise BodyError(BodyKind.UNSUPPORTED_MEDIA_TYPE, f"unsupported Content-Type {kind.strip()[:60]!r}; send one of {known}")
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in CHARSETS:
            raise BodyError(BodyKind.UNSUPPORTED_MEDIA_TYPE, f"unsupported charset {value.strip()[:30]!r}; JSON is UTF-8")
    return found


def decompress(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body with its ``Content-Encoding`` undone, never more than ``limit`` bytes of it.

    A gzip bomb (a few KB that inflate to gigabytes) ends in 413 after ``limit + 1`` bytes; nothing
    larger is ever held. Several gzip members one after another are one body, as RFC 1952 says.
    """
    encoding = (content_encoding or "").strip().lower()
    if encoding not in ENCODINGS:
        raise BodyError(BodyKind.UNSUPPORTED_ENCODING, f"unsupported Content-Encoding {encoding[:30]!r}; send gzip or none")
    if len(body) > limit:
        raise BodyError(BodyKind.TOO_LARGE, f"body is {len(body):,} bytes; at most {limit:,} are accepted")
    if encoding not in ("gzip", "x-gzip"):
        return body
    parts: list[bytes] = []
    size = 0
    rest = body
    try:
        while rest:
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            part = inflater.decompress(rest, limit - size + 1)
            size += len(part)
            if size > limit:
                raise BodyError(BodyKind.TOO_LARGE, f"body inflates to more than {limit:,} bytes; at most {limit:,} are accepted")
            parts.append(part)
            if not inflater.eof:
                raise BodyError(BodyKind.PARSE, "gzip body is truncated")
            rest = inflater.unused_data
    except zlib.error as exc:
        raise BodyError(BodyKind.PARSE, f"body is not valid gzip ({exc})") from None
    return b"".join(parts)


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of character ``index``."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _utf8(data: bytes, first_line: int = 1) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = data[: exc.start].decode("utf-8")
        line, column = _position(good + " ", len(good))
        raise BodyError(BodyKind.PARSE, "body is not UTF-8", first_line + line - 1, column) from None


# Depth: the parser recurses once per level, so nesting is bounded before parsing. Deleting every
# byte but brackets (``{`` and ``}`` made ``[`` and ``]``) and then taking out the adjacent ``[]``
# pairs ``depth`` times empties the bracket string exactly when the brackets nest at most ``depth``
# deep: one ``replace`` removes only the pairs adjacent before it, the innermost level. Both run in
# C. Brackets inside strings are counted too: a body that fails is checked again exactly, after
# parsing. (Closing brackets hidden in strings can make a body look shallower than it is; the
# parser's own recursion guard, caught below, still ends such a body in the same 400.)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_SQUARE = bytes.maketrans(b"{}", b"[]")


def _shallow(data: bytes, depth: int) -> bool:
    """True when ``data``'s brackets, strings included, nest at most ``depth`` deep."""
    brackets = data.translate(_SQUARE, _NOT_BRACKETS)
    for _ in range(depth):
        if not brackets:
            return True
        brackets = brackets.replace(b"[]", b"")
    return not brackets


def _depth(doc: Any) -> int:
    """The exact nesting depth of a parsed document (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, level = stack.pop()
        children = node.values() if type(node) is dict else node if type(node) is list else None
        if children is None:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children if type(child) in (dict, list))
    return deepest


class _NotJson(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python reads them, JSON (RFC 8259) has none."""


def _refuse_constant(name: str) -> Any:
    raise _NotJson(name)


def _int_or_float(digits: str) -> int | float:
    """Integers past the interpreter's digit limit (4,300 by default) become floats instead of a
    ValueError; eventdash reads no integer field, so the value of such a number never matters."""
    return int(digits) if len(digits) <= 640 else float(digits)


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_BIG_INT_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_int=_int_or_float)
#: Without the interpreter's digit limit (3.10 before 3.10.7) ``int()`` of a long digit string is
#: quadratic, so every parse takes the guarded decoder there.
_HAS_DIGIT_LIMIT = hasattr(sys, "get_int_max_str_digits")
_WHITESPACE = " \t\n\r"
_SKIP = re.compile(r"[ \t\n\r]*")


def _parse(text: str, start: int, first_line: int) -> tuple[Any, int]:
    """One JSON value from ``text[start:]`` and the index after it; errors say line and column."""
    try:
        try:
            return (_DECODER if _HAS_DIGIT_LIMIT else _BIG_INT_DECODER).raw_decode(text, start)
        except (json.JSONDecodeError, _NotJson):
            raise
        except ValueError:  # an integer over the interpreter's digit limit
            return _BIG_INT_DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        line, column = _position(text, exc.pos)
        raise BodyError(BodyKind.PARSE, f"invalid JSON: {exc.msg}", first_line + line - 1, column) from None
    except _NotJson as exc:
        at = text.find(str(exc), start)
        line, column = _position(text, at) if at >= 0 else (1, None)
        raise BodyError(BodyKind.PARSE, f"invalid JSON: {exc} is not a JSON number", first_line + line - 1, column) from None
    except RecursionError:
        raise BodyError(BodyKind.TOO_DEEP, "JSON nests too deeply for the parser", first_line) from None


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index


def _too_deep(depth: int, line: int | None = None) -> BodyError:
    return BodyError(BodyKind.TOO_DEEP, f"JSON nests more than {depth} levels deep", line)


def _check_depth(doc: Any, limit: int, line: int | None = None) -> None:
    if _depth(doc) > limit:
        raise _too_deep(limit, line)


def _plain_array(text: str, framing: Framing) -> list[tuple[Any, bool]] | None:
    """The hot path for the usual body, an array of plain documents: one tight loop over the C
    scanner. None for anything unusual (an error, too many events, extra data, a long document
    in a non-ASCII body), which :func:`_json_documents` then reads and explains."""
    if not (text.startswith("[") and text.isascii()):
        return None
    scan, skip, limit = _DECODER.scan_once, _SKIP.match, framing.event_bytes
    found: list[tuple[Any, bool]] = []
    index = skip(text, 1).end()
    if text.startswith("]", index):
        return found if skip(text, index + 1).end() == len(text) else None
    try:
        while True:
            doc, end = scan(text, index)
            found.append((doc, end - index > limit))
            index = skip(text, end).end()
            if text.startswith(",", index):
                index = skip(text, index + 1).end()
            elif text.startswith("]", index):
                break
            else:
                return None
    except (StopIteration, ValueError, RecursionError):
        return None
    if len(found) > framing.events or skip(text, index + 1).end() != len(text):
        return None
    return found


def _json_documents(data: bytes, framing: Framing) -> Iterator[tuple[Any, bool]]:
    """The documents of a JSON body: the elements of a top-level array, or the one value.

    Yields ``(document, too_large)``: elements are parsed one at a time so that each one's size is
    known; ``too_large`` is true for a document over ``framing.event_bytes``.
    """
    text = _utf8(data)
    exact_depth = not _shallow(data, framing.depth)
    plain = None if exact_depth or not _HAS_DIGIT_LIMIT else _plain_array(text, framing)
    if plain is not None:
        yield from plain
        return
    start = _skip(text, 1 if text.startswith("\ufeff") else 0)  # RFC 8259 lets a parser skip a BOM
    ascii_only = text.isascii()

    def too_large(begin: int, end: int) -> bool:
        chars = end - begin
        if chars > framing.event_bytes:
            return True
        return not ascii_only and chars * 4 > framing.event_bytes and len(text[begin:end].encode("utf-8", "replace")) > framing.event_bytes

    if not text.startswith("[", start):
        doc, end = _parse(text, start, 1)
        if _skip(text, end) != len(text):
            line, column = _position(text, _skip(text, end))
            raise BodyError(BodyKind.PARSE, "invalid JSON: extra data after the document", line, column)
        if exact_depth:
            _check_depth(doc, framing.depth)
        yield doc, too_large(start, end)
        return
    if exact_depth:  # parse whole, measure exactly, then walk the elements
        whole, end = _parse(text, start, 1)
        _check_depth(whole, framing.depth)
    index = _skip(text, start + 1)
    if text.startswith("]", index):
        index = _skip(text, index + 1)
    else:
        count = 0
        while True:
            count += 1
            if count > framing.events:
                raise BodyError(BodyKind.TOO_MANY_EVENTS, f"more than {framing.events:,} events in one request")
            doc, end = _parse(text, index, 1)
            yield doc, too_large(index, end)
            index = _skip(text, end)
            if text.startswith(",", index):
                index = _skip(text, index + 1)
            elif text.startswith("]", index):
                index = _skip(text, index + 1)
                break
            else:
                line, column = _position(text, index)
                raise BodyError(BodyKind.PARSE, "invalid JSON: expecting ',' or ']' in the array", line, column)
    if index != len(text):
        line, column = _position(text, index)
        raise BodyError(BodyKind.PARSE, "invalid JSON: extra data after the array", line, column)


def _ndjson_documents(data: bytes, framing: Framing) -> Iterator[tuple[Any, bool]]:
    """One document per non-blank line; errors name the line (1-based, blank lines counted)."""
    exact_depth = not _shallow(data, framing.depth)
    count = 0
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        count += 1
        if count > framing.events:
            raise BodyError(BodyKind.TOO_MANY_EVENTS, f"more than {framing.events:,} events in one request")
        text = _utf8(raw, number)
        if number == 1 and text.startswith("\ufeff"):
            text = text[1:]
        doc, end = _parse(text, _skip(text, 0), number)
        if _skip(text, end) != len(text):
            raise BodyError(BodyKind.PARSE, "invalid NDJSON: more than one JSON value on the line", number, _skip(text, end) + 1)
        if exact_depth:
            _check_depth(doc, framing.depth, number)
        yield doc, len(raw.strip()) > framing.event_bytes


def documents(body: bytes, content_type: str | None, content_encoding: str | None, framing: Framing) -> Iterator[tuple[Any, bool]]:
    """The documents in a request body, each with whether it is over the per-event size.

    Raises :class:`BodyError` for the body as a whole; when it does, possibly after some documents,
    the caller must discard what it got (the request is refused as a whole).
    """
    kind = media_type(content_type)
    data = decompress(body, content_encoding, framing.body_bytes)
    if kind == NDJSON:
        return _ndjson_documents(data, framing)
    return _json_documents(data, framing)
