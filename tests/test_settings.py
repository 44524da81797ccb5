"""Settings: the documented defaults load, and every bad value is refused with a precise message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tui.settings import (
    DEFAULT_TRACKING_IDS,
    EMAIL_SALT_ENV,
    Server,
    Settings,
    SettingsError,
    build_settings,
    read_settings_file,
    save_settings,
)

REPO = Path(__file__).resolve().parent.parent


def test_repo_settings_json_is_the_documented_default() -> None:
    raw = read_settings_file(REPO / "settings.json")
    settings = build_settings(raw, resolve_hosts=False)
    assert settings == Settings()
    assert set(raw) == {"events_per_second", "window_minutes", "bucket_seconds", "tracking_ids", "backend", "memcached"}
    assert settings.tracking_ids[:4] == ("INF-yj562hjojbtez", "INF-3gbfcjjdsd6vhvo", "INF-ixpktk3itsk86", "INF-1bi5qk0zocqcz")
    assert len(set(DEFAULT_TRACKING_IDS)) == 10


def test_toml_settings_are_read_too(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('events_per_second = 250\nwindow_minutes = 0.5\n[memcached]\nservers = ["127.0.0.1:11311"]\n')
    settings = build_settings(read_settings_file(path))
    assert settings.events_per_second == 250 and settings.window_seconds == 30
    assert settings.memcached.servers == (Server("127.0.0.1", 11311),)


def _error(raw: dict[str, Any]) -> str:
    with pytest.raises(SettingsError) as info:
        build_settings(raw, origin="s.json", environ={})
    return str(info.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"events_per_secnd": 5}, "unknown key 'events_per_secnd'; did you mean 'events_per_second'?"),
        ({"memcached": {"server": []}}, "did you mean 'servers'?"),
        ({"events_per_second": "fast"}, "events_per_second: expected a number, got \"fast\""),
        ({"events_per_second": True}, "events_per_second: expected a number"),
        ({"events_per_second": 0}, "events_per_second: must be more than 0 and at most 200,000 events/s, got 0"),
        ({"events_per_second": 1e9}, "at most 200,000"),
        ({"window_minutes": 0}, "window_minutes: must be more than 0 minutes"),
        ({"window_minutes": -2}, "window_minutes: must be more than 0 minutes"),
        ({"window_minutes": [5]}, "window_minutes: expected a number"),
        ({"window_minutes": 0.1}, "shorter than one bucket (10 s)"),
        ({"window_minutes": 5.05}, "not a whole number of 10 s buckets; use 5 or 5.16667"),
        ({"window_minutes": 100000}, "at most 300,000 are kept"),
        ({"bucket_seconds": 0}, "bucket_seconds: must be from 1 to 3600 seconds, got 0"),
        ({"bucket_seconds": 2.5}, "bucket_seconds: expected a whole number of seconds"),
        ({"tracking_ids": []}, "tracking_ids: the list is empty"),
        ({"tracking_ids": "INF-a"}, "tracking_ids: expected a list of strings"),
        ({"tracking_ids": ["INF-a", "INF-a"]}, "tracking_ids[1]: \"INF-a\" is listed twice"),
        ({"tracking_ids": ["INF a"]}, "tracking_ids[0]: \"INF a\" contains whitespace"),
        ({"tracking_ids": ["INF-\u0001"]}, "contains a control character"),
        ({"tracking_ids": ["INF-\udcff"]}, "is not valid UTF-8"),
        ({"tracking_ids": [7]}, "tracking_ids[0]: expected a non-empty string, got 7"),
        ({"tracking_ids": ["I" * 240]}, "memcached allows 250"),
        ({"backend": "redis"}, "backend: must be one of auto, memory, memcached, got \"redis\""),
        ({"memcached": []}, "memcached: expected an object"),
        ({"memcached": {"servers": []}}, "memcached.servers: the list is empty"),
        ({"memcached": {"servers": ["localhost"]}}, "memcached.servers[0]: \"localhost\" is not host:port"),
        ({"memcached": {"servers": ["127.0.0.1:abc"]}}, "port \"abc\" in \"127.0.0.1:abc\" is not a number"),
        ({"memcached": {"servers": ["127.0.0.1:70000"]}}, "port 70000 in \"127.0.0.1:70000\" is out of range 1-65535"),
        ({"memcached": {"servers": ["no-such-host.invalid:11211"]}}, "host \"no-such-host.invalid\" does not resolve"),
        ({"memcached": {"servers": "127.0.0.1:1,"}}, "memcached.servers[1]: \"\" is not host:port"),
        ({"memcached": {"servers": 11211}}, "memcached.servers: expected a list of \"host:port\" strings, got 11211"),
        ({"memcached": {"servers": [11211]}}, "memcached.servers[0]: expected \"host:port\", got 11211"),
        ({"memcached": {"key_prefix": 5}}, "memcached.key_prefix: expected a string, got 5"),
        ({"refresh_seconds": "1"}, "refresh_seconds: expected a number"),
        ({"memcached": {"key_prefix": "event dash"}}, "memcached.key_prefix: \"event dash\" contains whitespace"),
        ({"memcached": {"key_prefix": "x" * 129}}, "is 129 bytes long; at most 128 are allowed"),
        ({"refresh_seconds": 0}, "refresh_seconds: must be from 0.1 to 60 seconds"),
        ({"events_per_second": 10**400}, "events_per_second: must be more than 0 and at most 200,000 events/s, got a 401-digit number"),
        ({"window_minutes": -(10**30)}, "window_minutes: must be more than 0 minutes and at most 300,000 buckets long, got a negative 31-digit number"),
        ({"bucket_seconds": 10**20}, "bucket_seconds: must be from 1 to 3600 seconds, got a 21-digit number"),
        ({"refresh_seconds": float("nan")}, "refresh_seconds: expected a finite number, got nan"),
        ({"tracking_ids": ["INF-\u200bx"]}, "contains the invisible character U+200B ZERO WIDTH SPACE"),
        ({"tracking_ids": ["INF-\u202ex"]}, "contains the invisible character U+202E RIGHT-TO-LEFT OVERRIDE"),
        ({"memcached": {"key_prefix": ""}}, "memcached.key_prefix: is empty"),
        ({"memcached": {"key_prefix": "x\u2066:"}}, "contains the invisible character U+2066 LEFT-TO-RIGHT ISOLATE"),
        ({"memcached": {"servers": ["127.0.0.1:\uff11\uff12"]}}, "is not a number in digits 0-9"),
        ({"event_types": ["click"]}, "event_types: expected an object such as {\"formsubmit\": \"signup\"}"),
        ({"event_types": {}}, "event_types: is empty; map at least one event name to one of signup, user-event, review"),
        ({"event_types": {"purchase": "sale"}}, "event_types.purchase: must be one of signup, user-event, review, got \"sale\""),
        ({"event_types": {"": "signup"}}, "event_types: the event name \"\" is empty"),
        ({"event_types": {"form submit": "signup"}}, "event_types: the event name \"form submit\" contains whitespace"),
        ({"event_types": {"x" * 65: "signup"}}, "is longer than 64 bytes"),
        ({"event_types": {f"e{i}": "review" for i in range(1001)}}, "event_types: 1,001 names given; at most 1,000 are allowed"),
        ({"email_salt": "s" * 65}, "email_salt: is 65 bytes long in UTF-8; at most 64 are allowed (it is the key of a BLAKE2b hash"),
        ({"email_salt": "é" * 33}, "email_salt: is 66 bytes long in UTF-8; at most 64 are allowed"),
        ({"email_salt": 1234}, "email_salt: expected a string (the secret key of the e-mail hash), got a number"),
        ({"email_salt": ["x"]}, "email_salt: expected a string (the secret key of the e-mail hash), got a list"),
        ({"email_salt": "ab\udcff"}, "email_salt: is not valid UTF-8 text"),
        ({"sketch_lg_k": 7}, "sketch_lg_k: must be a whole number from 8 to 16 (a sketch has 2^lg_k registers), got 7"),
        ({"sketch_lg_k": 17}, "sketch_lg_k: must be a whole number from 8 to 16"),
        ({"sketch_lg_k": 13.0}, "sketch_lg_k: must be a whole number from 8 to 16 (a sketch has 2^lg_k registers), got 13.0"),
        ({"sketch_lg_k": "13"}, "sketch_lg_k: must be a whole number from 8 to 16 (a sketch has 2^lg_k registers), got \"13\""),
        ({"sketch_lg_k": True}, "sketch_lg_k: must be a whole number from 8 to 16"),
        ({"sketch_lg_k": 10**30}, "sketch_lg_k: must be a whole number from 8 to 16 (a sketch has 2^lg_k registers), got a 31-digit number"),
        ({"live_minutes": 0}, "live_minutes: must be more than 0 minutes, got 0"),
        ({"live_minutes": -7}, "live_minutes: must be more than 0 minutes"),
        ({"live_minutes": "7"}, "live_minutes: expected a number"),
        ({"live_minutes": 0.1}, "live_minutes: 0.1 min is shorter than one bucket (10 s)"),
        ({"live_minutes": 7.05}, "live_minutes: 7.05 min is not a whole number of 10 s buckets; use 7 or 7.16667"),
        ({"live_minutes": 10081}, "live_minutes: 10081 min is longer than the longest retention (retention_hours.x360 = 168 h)"),
        ({"live_minutes": float("inf")}, "live_minutes: expected a finite number"),
    ],
)
def test_bad_values_are_refused_naming_the_field_and_what_is_allowed(raw: dict[str, Any], expected: str) -> None:
    message = _error(raw)
    assert message.startswith("s.json: ")
    assert expected in message


def test_a_flag_is_named_in_the_message_instead_of_the_field() -> None:
    with pytest.raises(SettingsError, match=r"^--rate: must be more than 0"):
        build_settings({"events_per_second": -1}, labels={"events_per_second": "--rate"}, origin="s.json")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"events_per_second": 5,}', "not valid JSON: Expecting property name enclosed in double quotes at line 1, column 25"),
        ("[1, 2]", "the top level must be an object"),
        ("\xff\xfe", "not UTF-8 text"),
    ],
)
def test_unreadable_files_say_where(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "s.json"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(SettingsError, match=expected):
        read_settings_file(path)


def test_toml_errors_give_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("events_per_second = \n")
    with pytest.raises(SettingsError, match=r"not valid TOML: .*line 1, column 21"):
        read_settings_file(path)


def test_missing_file_and_directory_are_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no such settings file"):
        read_settings_file(tmp_path / "nope.json")
    with pytest.raises(SettingsError, match="is a directory"):
        read_settings_file(tmp_path)


def test_live_changes_use_the_same_checks() -> None:
    settings = Settings()
    assert settings.with_rate(400).events_per_second == 400
    assert settings.with_window(6).window_buckets == 36
    with pytest.raises(SettingsError, match="must be more than 0"):
        settings.with_rate(0)
    with pytest.raises(SettingsError, match="must be more than 0 minutes"):
        settings.with_window(0)


def test_saved_settings_load_back_the_same(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    settings = Settings(events_per_second=250, window_minutes=7)
    save_settings(settings, path)
    assert build_settings(json.loads(path.read_text()), resolve_hosts=False) == settings


def test_a_window_that_does_not_fit_the_buckets_names_both_sources() -> None:
    with pytest.raises(SettingsError, match=r"^the default window_minutes with bucket_seconds in s.json: 5 min is not a whole number of 7 s buckets"):
        build_settings({"bucket_seconds": 7}, origin="s.json")
    with pytest.raises(SettingsError, match=r"^window_minutes in s.json with --bucket-seconds: 5 min is not"):
        build_settings({"bucket_seconds": 7, "window_minutes": 5}, labels={"bucket_seconds": "--bucket-seconds"}, origin="s.json")
    with pytest.raises(SettingsError, match=r"^s.json: window_minutes: 5 min is not"):
        build_settings({"bucket_seconds": 7, "window_minutes": 5}, origin="s.json")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"a": 1, "a": 2}', "s.json: the top level: key 'a' is given twice"),
        ('{"memcached": {"servers": [], "servers": []}}', "s.json: memcached: key 'servers' is given twice"),
        ('{"tracking_ids": [{"x": 1, "x": 2}]}', "s.json: tracking_ids[0]: key 'x' is given twice"),
        ('{"bucket_seconds": 1' + "0" * 5000 + "}", "s.json: bucket_seconds: must be from 1 to 3600 seconds, got a 5,001-digit number"),
        ("[" * 5000 + "]" * 5000, "s.json: not valid settings: nested more than 64 levels deep at line 1, column 65"),
    ],
    ids=["repeated-top", "repeated-memcached", "repeated-in-list", "5001-digits", "5000-deep"],
)
def test_json_parse_level_trouble_is_refused_naming_the_file(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(content)
    with pytest.raises(SettingsError) as info:
        build_settings(read_settings_file(path), origin="s.json")
    assert str(info.value).replace(f"{tmp_path}/", "").startswith(expected)


# -- email_salt, sketch_lg_k, live_minutes ------------------------------------------------------------

SALT = "pepper-0f9e8d7c6b5a"


def test_the_new_settings_are_read_from_json_and_toml_and_saved_back(tmp_path: Path) -> None:
    raw = {"email_salt": SALT, "sketch_lg_k": 14, "live_minutes": 3.5}
    settings = build_settings(raw, origin="s.json", environ={})
    assert (settings.email_salt, settings.sketch_lg_k, settings.live_minutes) == (SALT, 14, 3.5)
    assert settings.origin_of("email_salt") == settings.origin_of("sketch_lg_k") == settings.origin_of("live_minutes") == "s.json"
    toml = tmp_path / "s.toml"
    toml.write_text(f'email_salt = "{SALT}"\nsketch_lg_k = 14\nlive_minutes = 3.5\n')
    assert build_settings(read_settings_file(toml), environ={}) == settings
    path = tmp_path / "s.json"
    save_settings(settings, path)
    assert {k: json.loads(path.read_text())[k] for k in raw} == raw
    assert build_settings(json.loads(path.read_text()), resolve_hosts=False, environ={}) == settings


def test_the_defaults() -> None:
    settings = build_settings({}, environ={})
    assert (settings.email_salt, settings.sketch_lg_k, settings.live_minutes) == ("", 13, 7.0) == (Settings().email_salt, Settings().sketch_lg_k, Settings().live_minutes)


def test_the_salt_is_never_shown_in_a_repr_or_a_message() -> None:
    settings = build_settings({"email_salt": SALT}, environ={})
    assert SALT not in repr(settings) and SALT not in str(settings)
    for bad in (SALT * 4, SALT + "\udcff"):
        with pytest.raises(SettingsError) as info:
            build_settings({"email_salt": bad}, origin="s.json", environ={})
        assert SALT not in str(info.value) and "pepper" not in str(info.value)
    with pytest.raises(SettingsError) as info:
        build_settings({"email_salt": 123456789}, origin="s.json", environ={})
    assert "123456789" not in str(info.value)


def test_the_salt_comes_from_the_environment_when_the_settings_leave_it_empty(tmp_path: Path) -> None:
    env = {EMAIL_SALT_ENV: SALT}
    from_env = build_settings({}, environ=env)
    assert from_env.email_salt == SALT and from_env.origin_of("email_salt") == "EVENTDASH_EMAIL_SALT"
    assert build_settings({"email_salt": ""}, environ=env).email_salt == SALT
    assert build_settings({"email_salt": "from-the-file"}, environ=env).email_salt == "from-the-file"  # the file (or flag) wins
    assert build_settings({}, environ={EMAIL_SALT_ENV: ""}).email_salt == ""
    with pytest.raises(SettingsError, match=r"^EVENTDASH_EMAIL_SALT: is 70 bytes long in UTF-8; at most 64") as info:
        build_settings({}, origin="s.json", environ={EMAIL_SALT_ENV: "x" * 70})
    assert "xxxx" not in str(info.value)
    # saving never copies a secret from the environment into a file; reading it back takes it from there again
    assert from_env.to_raw()["email_salt"] == ""
    path = tmp_path / "s.json"
    save_settings(from_env, path)
    assert SALT not in path.read_text()
    assert build_settings(json.loads(path.read_text()), resolve_hosts=False, environ=env) == from_env


def test_the_default_live_window_fits_any_buckets_but_a_given_one_must_fit() -> None:
    assert build_settings({"bucket_seconds": 8, "window_minutes": 4}, environ={}).live_minutes == 52 * 8 / 60  # 7 min, rounded to buckets
    assert build_settings({"bucket_seconds": 3600, "window_minutes": 60}, environ={}).live_minutes == 60  # one bucket at least
    short = build_settings({"window_minutes": 2, "retention_hours": {"x1": 0.05, "x6": 0.05, "x60": 0.05, "x360": 0.05}}, environ={})
    assert short.live_minutes == 3  # no longer than the longest retention
    with pytest.raises(SettingsError, match=r"^live_minutes in s.json with --bucket-seconds: 7 min is not a whole number of 8 s buckets; use 6.93333 or 7.06667"):
        build_settings({"bucket_seconds": 8, "window_minutes": 4, "live_minutes": 7}, labels={"bucket_seconds": "--bucket-seconds"}, origin="s.json", environ={})
    with pytest.raises(SettingsError, match=r"^--live-minutes: 0.05 min is shorter than one bucket"):
        build_settings({"live_minutes": 0.05}, labels={"live_minutes": "--live-minutes"}, environ={})
    with pytest.raises(SettingsError, match=r"^s.json: live_minutes: 61 min is longer than the longest retention \(retention_hours.x360 = 1 h\)"):
        build_settings({"live_minutes": 61, "retention_hours": {"x1": 1, "x6": 1, "x60": 1, "x360": 1}}, origin="s.json", environ={})


def test_live_seconds_is_live_minutes_in_whole_buckets_for_the_api_and_the_dashboard_alike() -> None:
    assert Settings().live_seconds == 420
    assert Settings(bucket_seconds=60, live_minutes=7).live_seconds == 420
    assert Settings(bucket_seconds=300, live_minutes=7).live_seconds == 300  # 1.4 buckets: the nearest whole one
    assert Settings(bucket_seconds=600, live_minutes=2).live_seconds == 600  # at least one
