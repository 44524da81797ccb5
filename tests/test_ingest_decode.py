"""The ingest gate: every body gives one result per event, or one body-level error; nothing raises."""

from __future__ import annotations

import datetime
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui.clock import FakeClock
from tui.events import EventFactory
from tui.ingest.body import BodyError, BodyKind
from tui.ingest.decode import (
    REASONS,
    Decoder,
    IngestEvent,
    IngestLimits,
    Reason,
    Rejection,
)
from tui.ingest.timestamps import parse_timestamp_ms
from tui.settings import SettingsError, check_tracking_ids, key_text_problem

BRIEF = Path(__file__).parent / "fixtures" / "brief_events.json"
#: A minute after the brief's click sample (2019-12-08T07:10:30.485Z).
NOW = datetime.datetime(2019, 12, 8, 7, 11, 30, tzinfo=datetime.timezone.utc).timestamp()
RETENTION = 3600.0
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


#: The e-mail salt of these tests (without one, no e-mail is hashed).
KEY = b"salt of the decoder tests"


def decoder(**limits: Any) -> Decoder:
    return Decoder(FakeClock(NOW), RETENTION, limits=IngestLimits(**limits), email_key=KEY)


def event(**fields: Any) -> dict[str, Any]:
    value = {"trackingId": "INF-yj562hjojbtez", "event": "click", "timestamp": "2019-12-08T07:10:30.485Z"}
    value.update(fields)
    return {"path": "/visitors/events/", "value": {k: v for k, v in value.items() if v is not ...}}


def body_error(body: bytes, content_type: str | None = "application/json", encoding: str | None = None, **limits: Any) -> BodyError:
    with pytest.raises(BodyError) as caught:
        decoder(**limits).decode(body, content_type, encoding)
    return caught.value


def test_the_briefs_exact_samples_decode_to_signup_and_user_event() -> None:
    batch = decoder().decode(BRIEF.read_bytes(), "application/json")
    assert batch.rejected == []
    signup, click = batch.events
    assert signup[:5] == ("signup", "INF-yj562hjojbtez", 1575787377289, "be4ab37a-1de9-a0f0-f973-562b7cd4365e", "0da4fc08-3f12-5890-fdce-2455fc17c394")
    assert click[:3] == ("user-event", "INF-yj562hjojbtez", 1575789030485)
    assert signup.email_hash is not None and click.email_hash is None
    assert "agency" not in repr(batch), "the e-mail address is never kept"


def test_each_sample_posted_alone_as_wrapper_bare_value_and_ndjson_gives_the_same_events() -> None:
    docs = json.loads(BRIEF.read_text())
    whole = decoder().decode(BRIEF.read_bytes()).events
    one_by_one = [decoder().decode(json.dumps(d).encode()).events[0] for d in docs]
    bare = decoder().decode(json.dumps([d["value"] for d in docs]).encode()).events
    ndjson = decoder().decode(("\n\n".join(json.dumps(d) for d in docs) + "\n").encode(), "application/x-ndjson").events
    assert whole == one_by_one == bare == ndjson and len(whole) == 2


def test_an_event_counts_as_a_ledger_tuple() -> None:
    accepted = decoder().decode(json.dumps(event()).encode()).events[0]
    assert isinstance(accepted, IngestEvent) and accepted[:3] == ("user-event", "INF-yj562hjojbtez", 1575789030485)


@pytest.mark.parametrize(
    ("doc", "field", "code", "says"),
    [
        (42, "", Reason.NOT_AN_OBJECT, "got a number"),
        ([event()], "", Reason.NOT_AN_OBJECT, "got an array"),
        ({"value": "x"}, "value", Reason.WRONG_TYPE, "got a string"),
        (event(trackingId=...), "value.trackingId", Reason.MISSING, "is missing"),
        (event(trackingId=None), "value.trackingId", Reason.MISSING, "is null"),
        (event(trackingId=7), "value.trackingId", Reason.WRONG_TYPE, "got a number"),
        (event(trackingId=""), "value.trackingId", Reason.INVALID_ID, "is empty"),
        (event(trackingId="INF a"), "value.trackingId", Reason.INVALID_ID, "whitespace"),
        (event(trackingId="INF\u0007"), "value.trackingId", Reason.INVALID_ID, "control"),
        (event(trackingId="INF\u200b"), "value.trackingId", Reason.INVALID_ID, "invisible character U+200B ZERO WIDTH SPACE"),
        (event(trackingId="INF\u0085x"), "value.trackingId", Reason.INVALID_ID, "whitespace"),
        (event(trackingId="INF\ud800"), "value.trackingId", Reason.INVALID_ID, "UTF-8"),
        (event(trackingId="x" * 129), "value.trackingId", Reason.TOO_LONG, "128 bytes"),
        (event(trackingId="é" * 65), "value.trackingId", Reason.TOO_LONG, "128 bytes"),
        (event(event=...), "value.event", Reason.MISSING, "is missing"),
        (event(event=["click"]), "value.event", Reason.WRONG_TYPE, "got an array"),
        (event(event="Click"), "value.event", Reason.UNKNOWN_EVENT, "unknown event 'Click'; known: blur, change, click"),
        (event(event="e" * 65), "value.event", Reason.TOO_LONG, "64 bytes"),
        (event(timestamp=...), "value.timestamp", Reason.MISSING, "is missing"),
        (event(timestamp=1575789030485), "value.timestamp", Reason.WRONG_TYPE, "got a number"),
        (event(timestamp="2019-12-08T07:10:30.485"), "value.timestamp", Reason.BAD_TIMESTAMP, "not an RFC 3339"),
        (event(timestamp="2019-12-08"), "value.timestamp", Reason.BAD_TIMESTAMP, "not an RFC 3339"),
        (event(timestamp="2019-02-30T07:10:30Z"), "value.timestamp", Reason.BAD_TIMESTAMP, "not an RFC 3339"),
        (event(timestamp="2019-12-08T06:11:29.999Z"), "value.timestamp", Reason.LATE, "older than the retention (3600 s)"),
        (event(timestamp="2019-12-08T07:12:30.001Z"), "value.timestamp", Reason.FUTURE, "more than 60 s ahead"),
        (event(visitorId=5), "value.visitorId", Reason.WRONG_TYPE, "got a number"),
        (event(visitorId="a\tb"), "value.visitorId", Reason.INVALID_ID, "whitespace"),
        (event(sessionId="s" * 129), "value.sessionId", Reason.TOO_LONG, "128 bytes"),
        (event(form=[]), "value.form", Reason.WRONG_TYPE, "got an array"),
        (event(form="agency@gmail.com"), "value.form", Reason.WRONG_TYPE, "got a string"),
        (event(form={"email": True}), "value.form.email", Reason.WRONG_TYPE, "got a boolean"),
        (event(form={"email": "a" * 255}), "value.form.email", Reason.TOO_LONG, "254 bytes"),
        (event(trackingId="a b")["value"], "trackingId", Reason.INVALID_ID, "whitespace"),
    ],
)
def test_a_malformed_event_is_rejected_with_its_field_code_and_reason(doc: Any, field: str, code: str, says: str) -> None:
    batch = decoder().decode(json.dumps([event(), doc]).encode())
    assert len(batch.events) == 1
    (rejection,) = batch.rejected
    assert (rejection.index, rejection.field, rejection.code) == (1, field, code)
    assert says in rejection.reason
    assert code in REASONS
    assert rejection.to_json() == {"index": 1, "field": field, "reason": rejection.reason, "code": code}


def test_the_first_problem_in_field_order_is_the_one_result() -> None:
    (rejection,) = decoder().decode(json.dumps(event(trackingId="", event="nope", timestamp="x")).encode()).rejected
    assert rejection.field == "value.trackingId"


def test_the_retention_and_skew_edges_are_inclusive() -> None:
    edges = [event(timestamp="2019-12-08T06:11:30.000Z"), event(timestamp="2019-12-08T07:12:30.000Z")]
    assert len(decoder().decode(json.dumps(edges).encode()).events) == 2


def test_optional_fields_may_be_null_or_absent() -> None:
    batch = decoder().decode(json.dumps([event(visitorId=None, sessionId=..., form=None), event(form={"formId": "x"})]).encode())
    assert [e[3:] for e in batch.events] == [(None, None, None), (None, None, None)]


def test_the_email_hash_ignores_case_and_depends_on_the_key() -> None:
    def hashed(email: str, key: bytes = KEY) -> int | None:
        return Decoder(FakeClock(NOW), RETENTION, email_key=key).decode(json.dumps(event(form={"email": email})).encode()).events[0].email_hash

    assert hashed("Agency@Gmail.com") == hashed("agency@gmail.com") != hashed("other@gmail.com")
    assert hashed("agency@gmail.com", b"secret") != hashed("agency@gmail.com")


def test_without_a_salt_no_email_is_hashed_but_it_is_still_checked() -> None:
    """No salt, no distinct signups: an unkeyed hash could be reversed from a list of addresses."""
    plain = Decoder(FakeClock(NOW), RETENTION)
    batch = plain.decode(json.dumps([event(form={"email": "agency@gmail.com"}), event(form={"email": "x" * 255})]).encode())
    assert [e.email_hash for e in batch.events] == [None]
    assert [(r.field, r.code) for r in batch.rejected] == [("value.form.email", Reason.TOO_LONG)]
    careful = plain.decode(json.dumps(event(form={"email": "Zoë@example.com"})).encode())  # non-ASCII: the careful path
    assert careful.rejected == [] and careful.events[0].email_hash is None


def test_a_custom_event_types_mapping_is_used_and_checked() -> None:
    custom = Decoder(FakeClock(NOW), RETENTION, event_types={"buy": "signup"})
    assert custom.decode(json.dumps(event(event="buy")).encode()).events[0].type == "signup"
    assert custom.decode(json.dumps(event(event="click")).encode()).rejected[0].reason == "unknown event 'click'; known: buy"
    with pytest.raises(ValueError, match="'buy' maps to 'purchase'"):
        Decoder(FakeClock(NOW), RETENTION, event_types={"buy": "purchase"})


@pytest.mark.parametrize(
    ("body", "content_type", "kind", "line", "column"),
    [
        (b"", "application/json", BodyKind.PARSE, 1, 1),
        (b'{"value": {', "application/json", BodyKind.PARSE, 1, 12),
        (b'[\n  {"a": 1},\n  {"a": 1,}\n]', "application/json", BodyKind.PARSE, 3, 11),
        (b"[{} {}]", "application/json", BodyKind.PARSE, 1, 5),
        (b"[{},", "application/json", BodyKind.PARSE, 1, 5),
        (b"{} {}", "application/json", BodyKind.PARSE, 1, 4),
        (b"[{}] x", "application/json", BodyKind.PARSE, 1, 6),
        (b'{"a": NaN}', "application/json", BodyKind.PARSE, 1, 7),
        (b'{"a": -Infinity}', "application/json", BodyKind.PARSE, 1, 7),
        (b'{"a": "\xff"}', "application/json", BodyKind.PARSE, 1, 8),
        (b'{}\n\n{"a": }\n', "application/x-ndjson", BodyKind.PARSE, 3, 7),
        (b'{}\n{} {}\n', "application/x-ndjson", BodyKind.PARSE, 2, 4),
        (b'{}\n\n\n{"\xc3":1}', "application/x-ndjson", BodyKind.PARSE, 4, 3),
        (b"{}", "application/x-www-form-urlencoded", BodyKind.UNSUPPORTED_MEDIA_TYPE, None, None),
        (b"{}", "application/json; charset=latin-1", BodyKind.UNSUPPORTED_MEDIA_TYPE, None, None),
        (b"{}", "text/html", BodyKind.UNSUPPORTED_MEDIA_TYPE, None, None),
    ],
)
def test_a_body_that_cannot_be_read_is_refused_whole_with_line_and_column(
    body: bytes, content_type: str, kind: str, line: int | None, column: int | None
) -> None:
    error = body_error(body, content_type)
    assert (error.kind, error.line, error.column) == (kind, line, column), str(error)
    assert error.status == (415 if kind == BodyKind.UNSUPPORTED_MEDIA_TYPE else 400)
    if line is not None:
        assert f"line {line}" in str(error)


@pytest.mark.parametrize("content_type", [None, "", "application/json", "Application/JSON; charset=UTF-8", "text/plain;charset=UTF-8", "application/json; boundary=x"])
def test_json_media_types_sendbeacon_included_are_accepted(content_type: str | None) -> None:
    assert len(decoder().decode(json.dumps(event()).encode(), content_type).events) == 1


def test_an_empty_array_and_blank_ndjson_are_zero_events() -> None:
    assert decoder().decode(b" [ ] ") == ([], [])
    assert decoder().decode(b"\n \n\r\n", "application/x-ndjson") == ([], [])


def test_ndjson_indexes_count_events_not_blank_lines_and_allow_crlf() -> None:
    lines = [json.dumps(event()), "", json.dumps(event(event="x")), json.dumps(event())]
    batch = decoder().decode("\r\n".join(lines).encode(), "application/x-ndjson")
    assert len(batch.events) == 2 and [r.index for r in batch.rejected] == [1]


def test_gzip_bodies_are_inflated_and_bombs_end_in_too_large() -> None:
    plain = json.dumps([event()] * 3).encode()
    assert len(decoder().decode(gzip.compress(plain), "application/json", "gzip").events) == 3
    two_members = gzip.compress(plain[:10]) + gzip.compress(plain[10:])
    assert len(decoder().decode(two_members, "application/json", "GZIP").events) == 3
    bomb = gzip.compress(b" " * 200_000_000, compresslevel=9)  # 200 MB of spaces, about 200 KB sent
    assert len(bomb) < 1_000_000
    error = body_error(bomb, encoding="gzip")
    assert (error.kind, error.status) == (BodyKind.TOO_LARGE, 413) and "inflates to more than 1,000,000 bytes" in str(error)
    assert body_error(gzip.compress(plain)[:-10], encoding="gzip").kind == BodyKind.PARSE
    assert "not valid gzip" in str(body_error(b"not gzip at all", encoding="gzip"))
    assert body_error(gzip.compress(plain), encoding="br").status == 415


def test_the_body_limit_applies_before_and_after_gzip() -> None:
    big = json.dumps([event(referrer="r" * 1000)] * 200).encode()
    assert body_error(big, body_bytes=100_000).kind == BodyKind.TOO_LARGE
    assert body_error(gzip.compress(big), encoding="gzip", body_bytes=100_000).kind == BodyKind.TOO_LARGE
    assert len(decoder(body_bytes=300_000).decode(gzip.compress(big), None, "gzip").events) == 200


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
def test_more_events_than_the_limit_is_413_and_the_limit_itself_is_fine(content_type: str) -> None:
    def body(n: int) -> bytes:
        docs = [json.dumps(event())] * n
        return ("\n".join(docs) if content_type.endswith("ndjson") else f"[{','.join(docs)}]").encode()

    assert len(decoder().decode(body(1000), content_type).events) == 1000
    error = body_error(body(1001), content_type)
    assert (error.kind, error.status) == (BodyKind.TOO_MANY_EVENTS, 413)


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
def test_one_event_over_the_document_limit_is_rejected_alone(content_type: str) -> None:
    docs = [event(), event(referrer="é" * 40_000), event()]  # 80 KB in UTF-8, 40 K characters
    text = "\n".join(json.dumps(d, ensure_ascii=False) for d in docs) if content_type.endswith("ndjson") else json.dumps(docs, ensure_ascii=False)
    batch = decoder().decode(text.encode(), content_type)
    assert len(batch.events) == 2 and batch.rejected == [Rejection(1, "", "event document is over 65,536 bytes", Reason.EVENT_TOO_LARGE)]


def nested(depth: int, inner: str = "1") -> bytes:
    return ("[" * depth + inner + "]" * depth).encode()


def test_nesting_is_limited_without_recursion_error() -> None:
    doc = json.dumps(event(extra=json.loads(nested(29))))  # wrapper, value, 29 lists: 31 deep, 32 in an array
    assert len(decoder().decode(f"[{doc}]".encode()).events) == 1
    assert body_error(f"[[{doc}]]".encode()).kind == BodyKind.TOO_DEEP
    assert body_error(f"{doc}\n[{doc}]".encode(), "application/x-ndjson", depth=31).line == 2
    for deep in (nested(100_000), b'{"a":' * 100_000):
        error = body_error(deep)
        assert (error.kind, error.status) == (BodyKind.TOO_DEEP, 400)


def test_mixed_brackets_are_counted_one_level_each() -> None:
    def alternating(pairs: int) -> bytes:
        return ('[{"a":' * pairs + "1" + "}]" * pairs).encode()

    assert len(decoder().decode(alternating(16)).rejected) == 1  # 32 deep: read, and not an event
    assert body_error(alternating(17)).kind == BodyKind.TOO_DEEP


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    batch = decoder().decode(json.dumps([event(referrer="[[[{{{" * 20), event(referrer="]]]}}}" * 20)]).encode())
    assert len(batch.events) == 2


def test_huge_integers_are_read_without_the_digit_limit_error() -> None:
    doc = json.dumps(event()).replace('"path"', '"n": ' + "9" * 10_000 + ', "path"')
    assert len(decoder().decode(doc.encode()).events) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-12-08T06:42:57.289Z", "2019-12-08T06:42:57.289+00:00"),
        ("2019-12-08T06:42:57Z", "2019-12-08T06:42:57+00:00"),
        ("2019-12-08t06:42:57.2z", "2019-12-08T06:42:57.200+00:00"),
        ("2019-12-08T12:12:57.123456789+05:30", "2019-12-08T06:42:57.123+00:00"),
        ("2019-12-07T23:42:57.289-07:00", "2019-12-08T06:42:57.289+00:00"),
    ],
)
def test_rfc3339_timestamps_parse_to_epoch_ms(text: str, expected: str) -> None:
    assert parse_timestamp_ms(text) == int(datetime.datetime.fromisoformat(expected).timestamp() * 1000)


@pytest.mark.parametrize(
    "text",
    [
        "2019-12-08T06:42:57.289", "2019-12-08 06:42:57Z", "2019-12-08T06:42:60Z", "2019-13-08T06:42:57Z",
        "2019-12-08T06:42:57.Z", "2019-12-08T06:42:57.1234567890Z", "2019-12-08T06:42:57+0530",
        "2019-12-08T06:42:57+24:00", "2019-12-08T06:42:57+05:60", "２019-12-08T06:42:57Z", "2019-12-08T06:42:57.٣Z",
        "0000-12-08T06:42:57Z", "2019-W49-7T06:42:57Z", "20191208T064257Z", "",
    ],
)  # fmt: skip
def test_malformed_timestamps_are_refused(text: str) -> None:
    assert parse_timestamp_ms(text) is None


@given(st.datetimes(min_value=datetime.datetime(1970, 1, 2), max_value=datetime.datetime(9999, 12, 30), timezones=st.timezones()))
def test_any_aware_datetime_written_by_isoformat_parses_to_its_instant(moment: datetime.datetime) -> None:
    offset = moment.utcoffset()
    if offset is None or offset.seconds % 60 or offset.microseconds:
        return  # RFC 3339 offsets are whole minutes
    expected = (moment - EPOCH) // datetime.timedelta(milliseconds=1)
    assert parse_timestamp_ms(moment.isoformat(timespec="milliseconds")) == expected
    assert parse_timestamp_ms(moment.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")) == expected


def test_the_settings_refuse_the_same_tracking_ids() -> None:
    assert key_text_problem("INF-yj562hjojbtez") is None
    with pytest.raises(SettingsError, match=r"invisible character U\+200B"):
        check_tracking_ids(["INF-\u200bx"], "eventdash:", "tracking_ids")


# ---- properties: nothing raises but BodyError, one result per event, no invalid id accepted ----

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
IDS = st.text(max_size=140) | st.sampled_from(["INF-yj562hjojbtez", "a\u200bb", "x" * 128, "é" * 64, "é" * 65]) | JSON_VALUES
EVENT_VALUES = st.fixed_dictionaries(
    {},
    optional={
        "trackingId": IDS,
        "event": st.sampled_from(["click", "formsubmit", "review", "nope", ""]) | JSON_VALUES,
        "timestamp": st.sampled_from(["2019-12-08T07:10:30.485Z", "2019-12-08T07:10:30.485+01:00", "2030-01-01T00:00:00Z"]) | JSON_VALUES,
        "visitorId": IDS,
        "sessionId": IDS,
        "form": st.fixed_dictionaries({}, optional={"email": JSON_VALUES}) | JSON_VALUES,
    },
)
EVENTS = EVENT_VALUES | st.builds(lambda v: {"path": "/visitors/events/", "value": v}, EVENT_VALUES) | JSON_VALUES


def results(body: bytes, content_type: str | None = "application/json", encoding: str | None = None) -> tuple[list[IngestEvent], list[Rejection]] | BodyError:
    try:
        return decoder().decode(body, content_type, encoding)
    except BodyError as error:
        return error


def assert_one_result_each(events: list[IngestEvent], rejected: list[Rejection], count: int) -> None:
    assert len(events) + len(rejected) == count
    assert sorted(r.index for r in rejected) == [r.index for r in rejected] and len({r.index for r in rejected}) == len(rejected)
    assert all(0 <= r.index < count and r.code in REASONS for r in rejected)
    for accepted in events:
        assert key_text_problem(accepted.tracking_id) is None and accepted.tracking_id
        assert len(accepted.tracking_id.encode()) <= 128


@settings(max_examples=300, deadline=None)  # a wall-clock deadline fails on a loaded CI machine, not on a slow decoder
@given(st.binary(max_size=300), st.sampled_from([None, "application/json", "application/x-ndjson", "text/plain", "image/png"]), st.sampled_from([None, "gzip"]))
def test_arbitrary_bytes_never_raise_anything_but_a_body_error(body: bytes, content_type: str | None, encoding: str | None) -> None:
    result = results(body, content_type, encoding)
    if not isinstance(result, BodyError):
        assert_one_result_each(*result, count=len(result[0]) + len(result[1]))


@settings(max_examples=300, deadline=None)  # a wall-clock deadline fails on a loaded CI machine, not on a slow decoder
@given(JSON_VALUES)
def test_any_json_document_gives_one_result_per_element_or_a_body_error(doc: Any) -> None:
    result = results(json.dumps(doc).encode())
    if not isinstance(result, BodyError):
        assert_one_result_each(*result, count=len(doc) if isinstance(doc, list) else 1)


@settings(max_examples=500, deadline=None)  # a wall-clock deadline fails on a loaded CI machine, not on a slow decoder
@given(st.lists(EVENTS, max_size=8), st.booleans())
def test_arbitrary_events_each_get_one_result_and_no_invalid_id_is_accepted(docs: list[Any], ndjson: bool) -> None:
    if ndjson:
        result = results("\n".join(json.dumps(d) for d in docs).encode(), "application/x-ndjson")
    else:
        result = results(json.dumps(docs).encode())
    assert not isinstance(result, BodyError)
    assert_one_result_each(*result, count=len(docs))


def test_a_seeded_generator_stream_is_accepted_whole() -> None:
    factory = EventFactory(["INF-yj562hjojbtez", "INF-3gbfcjjdsd6vhvo"], seed=7)
    made = [factory.make(int(NOW * 1000) - i * 10) for i in range(500)]
    body = json.dumps([{"path": "/visitors/events/", "value": e.doc["value"]} for e in made]).encode()
    batch = decoder().decode(body)
    assert batch.rejected == [] and [e[:3] for e in batch.events] == [m[:3] for m in made]


@settings(max_examples=500, deadline=None)  # a wall-clock deadline fails on a loaded CI machine, not on a slow decoder
@given(EVENTS)
def test_the_hot_path_accepts_only_what_the_careful_path_accepts_and_the_same_event(doc: Any) -> None:
    gate = decoder()
    now_ms = int(NOW * 1000)
    fast = gate._plain(doc, now_ms)
    if fast is not None:
        assert gate._careful(doc, now_ms) == fast


@settings(max_examples=200, deadline=None)  # a wall-clock deadline fails on a loaded CI machine, not on a slow decoder
@given(st.lists(EVENTS, max_size=6), st.sampled_from([", ", ",", " ,\n "]))
def test_the_plain_array_reader_and_the_careful_reader_agree(docs: list[Any], separator: str) -> None:
    text = "[" + separator.join(json.dumps(d) for d in docs) + "]"
    fast = decoder().decode(text.encode())
    careful = decoder().decode((" " + text).encode())  # a leading space takes the careful reader
    assert fast == careful
