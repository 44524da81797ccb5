"""Hostile input: whatever a settings file or the flags hold, eventdash either accepts it or stops
with exit status 2 and exactly one ``eventdash: error: ...`` line on stderr, never a traceback.

Choice for argparse's own errors: argparse prints a usage block before its message; eventdash's
parser prints only the one line (with a pointer to ``--help``), so every usage and settings error
looks the same to a person and to a script: one line, status 2. The property tests below hold
every error path to that.

The concrete cases from issue 9 run the real ``python -m tui`` in a subprocess with a short
timeout (an input that is wrongly accepted makes a short headless run, or a timeout for
``--duration inf``). The property tests call :func:`tui.cli.prepare` in-process: parsing, reading
and checking without running anything.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import string
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tui.cli import Plan, prepare
from tui.settings import FIELD_PATHS, MEMCACHED_KEYS, TOP_KEYS, Settings

REPO = Path(__file__).resolve().parent.parent


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CONFIG_HOME": str(cwd / "xdg")}
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=20, check=False)


DEEP = 100_000
ZEROS_400 = "1" + "0" * 400

CASES: list[tuple[str, list[str], str | None, str]] = [
    # (id, flags, settings.json content or None, expected part of the one stderr line)
    ("rate-400-digits", [], f'{{"events_per_second": {ZEROS_400}}}', "settings.json: events_per_second: must be more than 0 and at most 200,000 events/s, got a 401-digit number"),
    ("window-400-digits", [], f'{{"window_minutes": {ZEROS_400}}}', "settings.json: window_minutes: must be more than 0 minutes and at most 300,000 buckets long, got a 401-digit number"),
    ("refresh-400-digits", [], f'{{"refresh_seconds": {ZEROS_400}}}', "settings.json: refresh_seconds: must be from 0.1 to 60 seconds, got a 401-digit number"),
    ("bucket-5000-digits", [], '{"bucket_seconds": 1' + "0" * 5000 + "}", "settings.json: bucket_seconds: must be from 1 to 3600 seconds, got a 5,001-digit number"),
    ("nested-100000", [], '{"tracking_ids": ' + "[" * DEEP + "]" * DEEP + "}", "settings.json: not valid settings: nested more than 64 levels deep at line 1, column 81"),
    ("duplicate-top", [], '{"events_per_second": 5, "events_per_second": 6}', "settings.json: the top level: key 'events_per_second' is given twice"),
    ("duplicate-nested", [], '{"memcached": {"servers": ["127.0.0.1:1"], "servers": ["127.0.0.1:2"]}}', "settings.json: memcached: key 'servers' is given twice"),
    ("zero-width-space", [], '{"tracking_ids": ["INF-a\\u200bb"]}', "settings.json: tracking_ids[0]: \"INF-a\\u200bb\" contains the invisible character U+200B ZERO WIDTH SPACE"),
    ("right-to-left-override", [], '{"tracking_ids": ["INF-\\u202eab"]}', "contains the invisible character U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("byte-order-mark-in-id", [], '{"tracking_ids": ["\\ufeffINF-a"]}', "contains the invisible character U+FEFF ZERO WIDTH NO-BREAK SPACE"),
    ("empty-prefix-in-file", [], '{"memcached": {"key_prefix": ""}}', "settings.json: memcached.key_prefix: is empty"),
    ("fullwidth-port-in-file", [], '{"memcached": {"servers": ["127.0.0.1:\\uff12\\uff12\\uff11\\uff10\\uff11"]}}', "is not a number in digits 0-9"),
    ("superscript-port", ["--memcached", "127.0.0.1:1\u00b2"], None, "--memcached[0]: port"),
    ("fullwidth-port-flag", ["--memcached", "127.0.0.1:\uff12\uff12\uff11\uff10\uff11"], None, "is not a number in digits 0-9"),
    ("empty-prefix-flag", ["--key-prefix", ""], None, "--key-prefix: is empty"),
    ("empty-settings-path", ["--settings", ""], None, "--settings: the path is empty"),
    ("settings-dev-zero", ["--settings", "/dev/zero"], None, "/dev/zero: larger than 1,024 KiB"),
    ("newline-in-settings-path", ["--settings", "a\nb.json"], None, "a\\nb.json: no such settings file"),
    ("duration-nan", ["--duration", "nan"], None, "argument --duration: expected a finite number, got 'nan'"),
    ("duration-inf", ["--duration", "inf"], None, "argument --duration: expected a finite number, got 'inf'"),
    ("rate-1e999", ["--rate", "1e999"], None, "argument --rate: expected a finite number"),
    ("bucket-flag-5000-digits", ["--bucket-seconds", "1" + "0" * 5000], None, "argument --bucket-seconds: expected a whole number"),
    ("bucket-flag-vs-file-window", ["--bucket-seconds", "7"], '{"window_minutes": 5}', "window_minutes in settings.json with --bucket-seconds: 5 min is not a whole number of 7 s buckets"),
    ("bucket-flag-vs-default-window", ["--bucket-seconds", "7"], None, "the default window_minutes with --bucket-seconds: 5 min is not a whole number of 7 s buckets"),
    ("writer-name-space", ["--writer-name", "a b"], None, "--writer-name: \"a b\" contains whitespace"),
    ("writer-name-empty", ["--writer-name", ""], None, "--writer-name: must be 1 to 64 characters long, got 0"),
    ("writer-name-too-long", ["--writer-name", "w" * 65], None, "--writer-name: must be 1 to 64 characters long, got 65"),
    ("writer-name-invisible", ["--writer-name", "a\u200bb"], None, "--writer-name: \"a\\u200bb\" contains the invisible character U+200B"),
    ("unknown-flag-usage-is-one-line", ["--nope"], None, "unrecognized arguments: --nope (see eventdash --help)"),
    ("email-salt-flag-too-long", ["--email-salt", "pepper" * 11], None, "--email-salt: is 66 bytes long in UTF-8; at most 64 are allowed (it is the key of a BLAKE2b hash"),
    ("email-salt-in-file-a-number", [], '{"email_salt": 42}', "settings.json: email_salt: expected a string (the secret key of the e-mail hash), got a number"),
    ("email-salt-lone-surrogate", [], '{"email_salt": "ab\\udcff"}', "settings.json: email_salt: is not valid UTF-8 text"),
    ("sketch-lg-k-flag-17", ["--sketch-lg-k", "17"], None, "--sketch-lg-k: must be a whole number from 8 to 16 (a sketch has 2^lg_k registers), got 17"),
    ("sketch-lg-k-flag-fraction", ["--sketch-lg-k", "13.5"], None, "argument --sketch-lg-k: expected a whole number, got '13.5'"),
    ("sketch-lg-k-in-file-7", [], '{"sketch_lg_k": 7}', "settings.json: sketch_lg_k: must be a whole number from 8 to 16"),
    ("live-minutes-flag-zero", ["--live-minutes", "0"], None, "--live-minutes: must be more than 0 minutes, got 0"),
    ("live-minutes-flag-nan", ["--live-minutes", "nan"], None, "argument --live-minutes: expected a finite number, got 'nan'"),
    ("live-minutes-beyond-retention", [], '{"live_minutes": 20000}', "settings.json: live_minutes: 20000 min is longer than the longest retention (retention_hours.x360 = 168 h)"),
    ("live-minutes-vs-bucket-flag", ["--bucket-seconds", "8", "--window-minutes", "4"], '{"live_minutes": 7}', "live_minutes in settings.json with --bucket-seconds: 7 min is not a whole number of 8 s buckets"),
]

TOML_CASES: list[tuple[str, str, str]] = [
    ("salt-date", "email_salt = 1979-05-27\n", "s.toml: email_salt: expected a string (the secret key of the e-mail hash), got a date"),
    ("lg-k-float", "sketch_lg_k = 12.0\n", "s.toml: sketch_lg_k: must be a whole number from 8 to 16 (a sketch has 2^lg_k registers), got 12.0"),
    ("rate-date", "events_per_second = 1979-05-27\n", "s.toml: events_per_second: expected a number, got a date 1979-05-27"),
    ("ids-date", "tracking_ids = [1979-05-27]\n", "s.toml: tracking_ids[0]: expected a non-empty string, got a date 1979-05-27"),
    ("prefix-time", "[memcached]\nkey_prefix = 07:32:00\n", "s.toml: memcached.key_prefix: expected a string, got a time 07:32:00"),
    ("backend-datetime", "backend = 1979-05-27T07:32:00Z\n", "s.toml: backend: must be one of auto, memory, memcached, got a date-time 1979-05-27T07:32:00+00:00"),
    ("window-local-datetime", "window_minutes = 1979-05-27T07:32:00\n", "s.toml: window_minutes: expected a number, got a date-time 1979-05-27T07:32:00"),
    ("rate-5000-digits", "events_per_second = 1" + "0" * 5000 + "\n", "s.toml: not valid settings: Exceeds the limit (4300 digits)"),
    ("nested-100000", "tracking_ids = " + "[" * DEEP + "]" * DEEP + "\n", "s.toml: not valid settings: arrays or tables nested too deeply"),
    ("rate-inf", "events_per_second = inf\n", "s.toml: events_per_second: expected a finite number, got inf"),
    ("rate-400-digits", f"events_per_second = {ZEROS_400}\n", "s.toml: events_per_second: must be more than 0 and at most 200,000 events/s, got a 401-digit number"),
]


def assert_one_error_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr[-2000:]
    assert result.stderr.startswith("eventdash: error: ")
    assert expected in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(("flags", "content", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_issue_9_inputs_end_in_one_line_and_exit_2(tmp_path: Path, flags: list[str], content: str | None, expected: str) -> None:
    if content is not None:
        (tmp_path / "settings.json").write_text(content, encoding="utf-8")
    assert_one_error_line(run(["--headless", "--duration", "2", *flags], tmp_path), expected)


@pytest.mark.parametrize(("content", "expected"), [case[1:] for case in TOML_CASES], ids=[case[0] for case in TOML_CASES])
def test_toml_dates_and_huge_values_end_in_one_line_and_exit_2(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "s.toml").write_text(content, encoding="utf-8")
    assert_one_error_line(run(["--headless", "--duration", "2", "--settings", "s.toml"], tmp_path), expected)


# --------------------------------------------------------------------------------------------------
# In-process: where the settings come from.


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and an empty XDG config directory of its own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path


def user_file(home: Path, content: str) -> Path:
    path = home / "xdg" / "eventdash" / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return path


def test_without_files_the_defaults_are_used_and_w_saves_to_the_user_file(home: Path) -> None:
    plan = prepare(["--backend", "memory"])
    assert plan.settings == Settings(backend="memory")
    assert plan.options.settings_path == home / "xdg" / "eventdash" / "settings.json"


def test_the_working_directory_file_is_read_but_never_saved_to(home: Path) -> None:
    (home / "settings.json").write_text('{"events_per_second": 7, "backend": "memory"}')
    plan = prepare([])
    assert plan.settings.events_per_second == 7
    assert plan.settings.origin_of("events_per_second") == "settings.json"
    assert plan.options.settings_path == home / "xdg" / "eventdash" / "settings.json"


def test_the_user_file_wins_over_the_working_directory_file(home: Path) -> None:
    (home / "settings.json").write_text('{"events_per_second": 7, "backend": "memory"}')
    path = user_file(home, '{"events_per_second": 9, "backend": "memory"}')
    plan = prepare([])
    assert plan.settings.events_per_second == 9
    assert plan.settings.origin_of("events_per_second") == str(path)


def test_a_bad_user_file_is_named_in_the_message(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (home / "settings.json").write_text('{"events_per_second": 7}')
    path = user_file(home, '{"events_per_second": -1}')
    with pytest.raises(SystemExit) as info:
        prepare([])
    assert info.value.code == 2
    assert capsys.readouterr().err == f"eventdash: error: {path}: events_per_second: must be more than 0 and at most 200,000 events/s, got -1\n"


def test_settings_flag_is_read_and_saved_to(home: Path) -> None:
    user_file(home, '{"events_per_second": 9}')
    (home / "mine.json").write_text('{"events_per_second": 11, "backend": "memory"}')
    plan = prepare(["--settings", "mine.json"])
    assert plan.settings.events_per_second == 11
    assert plan.options.settings_path == Path("mine.json")


def test_origin_of_names_the_flag_the_file_or_the_default(home: Path) -> None:
    (home / "settings.json").write_text('{"window_minutes": 2, "memcached": {"key_prefix": "x:"}}')
    settings = prepare(["--backend", "memory", "--memcached", "127.0.0.1:1"]).settings
    assert settings.origin_of("backend") == "--backend"
    assert settings.origin_of("memcached.servers") == "--memcached"
    assert settings.origin_of("window_minutes") == "settings.json"
    assert settings.origin_of("memcached.key_prefix") == "settings.json"
    assert settings.origin_of("events_per_second") == "the default"
    assert settings.with_rate(5).origin_of("events_per_second") == "a live change"
    assert Settings().origin_of("backend") == "the default"
    assert set(FIELD_PATHS) == {*(k for k in TOP_KEYS if k != "memcached"), *(f"memcached.{k}" for k in MEMCACHED_KEYS)}
    with pytest.raises(KeyError):
        settings.origin_of("memcached")


def test_origins_do_not_change_equality(home: Path) -> None:
    (home / "settings.json").write_text('{"backend": "memory"}')
    from_file = prepare([]).settings
    (home / "settings.json").unlink()
    from_flag = prepare(["--backend", "memory"]).settings
    assert from_file.origin_of("backend") != from_flag.origin_of("backend")
    assert from_file == from_flag and hash(from_file) == hash(from_flag)


def test_writer_name_reaches_the_run_options(home: Path) -> None:
    assert prepare(["--backend", "memory"]).options.writer_name is None
    assert prepare(["--backend", "memory", "--writer-name", "bench-1.host"]).options.writer_name == "bench-1.host"
    assert prepare(["--backend", "memory", "--writer-name", "Zürich-ï"]).options.writer_name == "Zürich-ï"


# --------------------------------------------------------------------------------------------------
# Properties: arbitrary documents and flags are accepted or refused in one line, never a traceback.

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@contextlib.contextmanager
def captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield out, err


def outcome(argv: list[str]) -> tuple[Plan | None, int, str]:
    """prepare(argv) -> (plan or None, exit status, stderr), holding it to the one-line rule."""
    with captured() as (_, err):
        try:
            plan = prepare(argv, resolve_hosts=False)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
            stderr = err.getvalue()
            if code == 2:
                assert stderr.count("\n") == 1 and stderr.endswith("\n"), stderr
                assert stderr.startswith("eventdash: error: "), stderr
                assert "Traceback" not in stderr
            else:
                assert code == 0 and stderr == "", (code, stderr)  # --help, --version
            return None, code, stderr
    assert err.getvalue() == ""
    if plan.options.events_log is not None:
        plan.options.events_log.close()
    return plan, 0, ""


class Raw:
    """A JSON fragment written as is: numbers too long for ``json.dumps`` and deep nesting."""

    def __init__(self, text: str) -> None:
        self.text = text


def to_json(value: Any) -> str:
    """JSON text of a value tree in which objects are lists of pairs, so keys may repeat."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Pairs):
        return "{" + ", ".join(f"{json.dumps(k)}: {to_json(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


class Pairs(list):  # type: ignore[type-arg]
    """A JSON object as its (key, value) pairs, in order, repeats allowed."""


huge_ints = st.builds(lambda sign, head, zeros: Raw(f"{sign}{head}{'0' * zeros}"), st.sampled_from(["", "-"]), st.integers(1, 9), st.integers(15, 6000))
deep = st.builds(lambda depth, leaf: Raw("[" * depth + leaf + "]" * depth), st.integers(1, 3000), st.sampled_from(["", "1", '"x"']))
interesting_text = st.sampled_from(["", "INF-a", "INF-\u200bx", "INF-\u202ex", "a b", "\x00", "\udcff", "\uff12", "127.0.0.1:1", "[::1]:11211", "127.0.0.1:\uff12\uff12", "memory", "auto", "x:"])
json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30), interesting_text, huge_ints, deep,
    st.sampled_from([Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e400"), Raw("-0"), Raw("1E-400")]),
)
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=4) | st.lists(st.tuples(st.text(max_size=8), inner), max_size=4).map(Pairs), max_leaves=12)
memcached_objects = st.lists(st.tuples(st.sampled_from([*MEMCACHED_KEYS, "server"]), json_values), max_size=3).map(Pairs)
settings_objects = st.lists(
    st.tuples(st.sampled_from([*TOP_KEYS, "rate"]), json_values) | st.tuples(st.just("memcached"), memcached_objects),
    max_size=5,
).map(Pairs)


def file_outcome(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    plan, code, stderr = outcome(["--settings", path.name])
    if code == 2:
        assert path.name in stderr  # a settings problem names the file it is in
    else:
        assert plan is not None and code == 0


@PROPERTY
@given(document=settings_objects | json_values)
def test_any_json_document_is_accepted_or_refused_in_one_line(home: Path, document: Any) -> None:
    file_outcome(home / "s.json", to_json(document).encode("utf-8", "surrogatepass"))


@PROPERTY
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_bytes_as_a_settings_file_are_accepted_or_refused_in_one_line(home: Path, data: bytes) -> None:
    file_outcome(home / "s.json", data)
    file_outcome(home / "s.toml", data)


def toml_key(key: str) -> str:
    return key if key and all(ch in string.ascii_letters + string.digits + "_-" for ch in key) else json.dumps(key)


toml_leaves = st.one_of(
    st.integers().map(str), st.floats().map(repr),
    st.booleans().map(lambda b: "true" if b else "false"),
    st.text(max_size=20).map(lambda t: json.dumps(t)), interesting_text.map(json.dumps),
    st.dates().map(lambda d: d.isoformat()), st.times().map(lambda t: t.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()), st.datetimes().map(lambda d: d.isoformat() + "Z"),
    huge_ints.map(lambda r: r.text), st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
)
toml_values = st.recursive(
    toml_leaves,
    lambda inner: st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]")
    | st.lists(st.tuples(st.text(max_size=6).map(toml_key), inner), max_size=3).map(lambda kv: "{" + ", ".join(f"{k} = {v}" for k, v in kv) + "}"),
    max_leaves=8,
)
toml_documents = st.builds(
    lambda top, mc: "".join(f"{toml_key(k)} = {v}\n" for k, v in top) + ("[memcached]\n" + "".join(f"{toml_key(k)} = {v}\n" for k, v in mc) if mc else ""),
    st.lists(st.tuples(st.sampled_from([*(k for k in TOP_KEYS if k != "memcached"), "rate"]), toml_values), max_size=5),
    st.lists(st.tuples(st.sampled_from([*MEMCACHED_KEYS, "server"]), toml_values), max_size=3),
)


@PROPERTY
@given(document=toml_documents | st.text(max_size=200))
def test_any_toml_document_is_accepted_or_refused_in_one_line(home: Path, document: str) -> None:
    file_outcome(home / "s.toml", document.encode("utf-8", "surrogatepass"))


FLAGS = [
    "--settings", "--rate", "--window-minutes", "--bucket-seconds", "--backend", "--memcached", "--key-prefix",
    "--email-salt", "--sketch-lg-k", "--live-minutes",
    "--seed", "--duration", "--refresh", "--events-log", "--writer-name", "--no-generate", "--headless", "--json",
    "--webhook", "--no-anomalies",
    "summary", "--version",
]
flag_values = st.text(max_size=20) | interesting_text | st.sampled_from(["nan", "inf", "-1", "0", "1e999", "7", "0.5", "1" + "0" * 5000, "memory", "s.json"])
flag_pairs = st.tuples(st.sampled_from(FLAGS), flag_values).map(list)
argvs = st.lists(flag_pairs | st.lists(st.text(max_size=12) | st.sampled_from(FLAGS), max_size=2), max_size=6).map(lambda parts: [token for part in parts for token in part])


@PROPERTY
@given(argv=argvs)
def test_any_flags_are_accepted_or_refused_in_one_line(home: Path, argv: list[str]) -> None:
    for index, token in enumerate(argv[:-1]):  # keep --events-log files inside the test's directory
        if token.startswith("--e"):
            argv[index + 1] = "log-" + argv[index + 1].replace("/", "_").replace("\x00", "_")
    (home / "s.json").write_text('{"backend": "memory"}')
    plan, code, _ = outcome(argv)
    assert code in (0, 2)
    if plan is not None:
        assert plan.command in ("dashboard", "headless", "summary")


# --------------------------------------------------------------------------------------------------
# The e-mail salt: a secret, so no message, repr or log shows it, wherever it came from.

SALT = "SeCrEt-pepper-7a1f"


def test_a_salt_in_the_environment_that_cannot_be_used_ends_in_one_line_without_it(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "EVENTDASH_EMAIL_SALT": SALT * 5}
    result = subprocess.run(
        [sys.executable, "-m", "tui", "--headless", "--duration", "2"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=20, check=False
    )
    assert_one_error_line(result, "EVENTDASH_EMAIL_SALT: is 90 bytes long in UTF-8; at most 64 are allowed")
    assert "SeCrEt" not in result.stderr


def test_a_flag_salt_that_is_refused_is_not_shown(tmp_path: Path) -> None:
    result = run(["--headless", "--duration", "2", "--email-salt", SALT * 5], tmp_path)
    assert_one_error_line(result, "--email-salt: is 90 bytes long")
    assert "SeCrEt" not in result.stderr


def test_the_salt_reaches_serve_ingest_and_the_generator_and_no_repr(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serve = prepare(["serve", "--backend", "memory", "--email-salt", SALT])
    assert serve.serve is not None and serve.serve.config.email_salt == SALT and serve.settings.email_salt == SALT
    ingest = prepare(["ingest", "--backend", "memory", f"--email-salt={SALT}"])
    assert ingest.ingest is not None and ingest.ingest.email_salt == SALT
    listen = prepare(["--listen", "127.0.0.1:8080", "--backend", "memory", "--email-salt", SALT])
    assert listen.options.serve is not None and listen.options.serve.config.email_salt == SALT
    for plan in (serve, ingest, listen):
        assert "SeCrEt" not in repr(plan)
    monkeypatch.setenv("EVENTDASH_EMAIL_SALT", SALT)
    from_env = prepare(["serve", "--backend", "memory"])
    assert from_env.serve is not None and from_env.serve.config.email_salt == SALT
    assert from_env.settings.origin_of("email_salt") == "EVENTDASH_EMAIL_SALT"
    monkeypatch.delenv("EVENTDASH_EMAIL_SALT")
    assert prepare(["serve", "--backend", "memory"]).settings.email_salt == ""


def test_the_serve_tokens_reach_its_config_and_no_repr(home: Path) -> None:
    plan = prepare(["serve", "--backend", "memory", "--ingest-token", "InGeStToKeN-0123456789", "--read-token", "ReAdToKeN-0123456789"])
    assert plan.serve is not None
    assert (plan.serve.config.ingest_token, plan.serve.config.read_token) == ("InGeStToKeN-0123456789", "ReAdToKeN-0123456789")
    assert "ToKeN" not in repr(plan)


def test_web_refuses_the_salt_flag_as_it_prints_its_command(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        prepare(["--email-salt", SALT, "web"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--email-salt: not available with web" in err and "EVENTDASH_EMAIL_SALT" in err
    assert "SeCrEt" not in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["web", "--email-salt", SALT], "unrecognized arguments: --email-salt <hidden> (see eventdash --help)"),
        (["send", "--url", "http://127.0.0.1:1/", "--rate", "1", "--duration", "1", f"--email-salt={SALT}"], "unrecognized arguments: --email-salt=<hidden>"),
        (["--e=" + SALT], "ambiguous option: --e=<hidden> could match"),
        (["summary", "--email-s", SALT, "--nope"], "unrecognized arguments: --nope"),
        (["--email-salt", "a", "a"], "invalid choice: '<hidden>' (choose from 'summary', 'query'"),
    ],
)
def test_usage_errors_never_repeat_a_salt_typed_where_it_does_not_belong(home: Path, argv: list[str], expected: str) -> None:
    _, code, stderr = outcome(argv)
    assert code == 2 and expected in stderr, stderr
    assert "SeCrEt" not in stderr


salts = st.text(max_size=80) | st.binary(max_size=70).map(lambda b: b.decode("latin-1"))


@PROPERTY
@given(tail=salts, where=st.sampled_from(["flag", "json", "toml"]))
def test_any_salt_is_accepted_whole_or_refused_in_one_line_that_never_shows_it(home: Path, tail: str, where: str) -> None:
    salt = "SeCrEt" + tail
    if where == "flag":
        argv = ["--backend", "memory", f"--email-salt={salt}"]
    else:
        path = home / f"s.{where}"
        text = json.dumps({"email_salt": salt, "backend": "memory"}) if where == "json" else f"backend = \"memory\"\nemail_salt = {json.dumps(salt)}\n"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        argv = ["--settings", path.name]
    with captured() as (out, err):
        plan, code, stderr = outcome(argv)
    assert "SeCrEt" not in stderr and "SeCrEt" not in out.getvalue() and "SeCrEt" not in err.getvalue()
    if plan is not None:
        assert plan.settings.email_salt == salt and len(salt.encode()) <= 64
        assert "SeCrEt" not in repr(plan)
    else:
        assert code == 2
