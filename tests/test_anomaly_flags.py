"""``--webhook URL`` and ``--no-anomalies`` on the commands that read as time goes by (the dashboard,
``--headless``, ``serve``): they reach ``Settings.anomaly``, and any value is accepted or refused in
one line naming the flag, exit 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_hostile_input import PROPERTY, home, interesting_text, outcome  # noqa: F401 - home is a fixture

HOOK = "http://127.0.0.1:9000/hook"
#: The dashboard, headless and serve take the flags; each with what makes it runnable here.
COMMANDS = {"dashboard": [], "headless": ["--headless"], "serve": ["serve"]}


@pytest.mark.parametrize("command", COMMANDS)
def test_the_flags_reach_the_anomaly_settings(home: Path, command: str) -> None:
    base = [*COMMANDS[command], "--backend", "memory"]
    plan, code, _ = outcome([*base, "--webhook", HOOK])
    assert code == 0 and plan is not None
    assert plan.settings.anomaly.webhook_url == HOOK and plan.settings.anomaly.enabled
    plan, code, _ = outcome([*base, "--no-anomalies"])
    assert code == 0 and plan is not None and plan.settings.anomaly.enabled is False
    plan, _, _ = outcome(base)
    assert plan is not None and plan.settings.anomaly.enabled and plan.settings.anomaly.webhook_url == ""


def test_the_flag_wins_over_the_file_and_keeps_its_other_anomaly_settings(home: Path) -> None:
    (home / "s.json").write_text(json.dumps({"backend": "memory", "anomaly": {"webhook_url": "http://10.0.0.1/x", "for_buckets": 5}}))
    plan, code, _ = outcome(["--settings", "s.json", "--webhook", HOOK])
    assert code == 0 and plan is not None
    assert plan.settings.anomaly.webhook_url == HOOK and plan.settings.anomaly.for_buckets == 5


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://127.0.0.1/x", "must be an http:// or https:// URL with a host"),
        ("http://", "must be an http:// or https:// URL with a host"),
        ("127.0.0.1:9000", "must be an http:// or https:// URL with a host"),
        ("http://127.0.0.1:99999/x", "is not a usable URL"),
        ("http://a b/", "is not a usable URL"),
        ("http://x/\r\nX-Evil: 1", "is not a usable URL"),
        ("http://" + "a" * 3000, "is not a usable URL"),
    ],
)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_bad_url_is_refused_naming_the_flag(home: Path, command: str, url: str, why: str) -> None:
    _, code, err = outcome([*COMMANDS[command], "--backend", "memory", "--webhook", url])
    assert code == 2 and err.startswith("eventdash: error: --webhook: ") and why in err


def test_an_empty_url_turns_the_files_webhook_off(home: Path) -> None:
    (home / "s.json").write_text(json.dumps({"backend": "memory", "anomaly": {"webhook_url": HOOK}}))
    plan, code, _ = outcome(["--settings", "s.json", "--webhook", ""])
    assert code == 0 and plan is not None and plan.settings.anomaly.webhook_url == "" and plan.settings.anomaly.enabled
    plan, code, _ = outcome(["--settings", "s.json", "--webhook", "", "--no-anomalies"])
    assert code == 0 and plan is not None and not plan.settings.anomaly.enabled


def test_a_webhook_with_detection_off_is_refused(home: Path) -> None:
    _, code, err = outcome(["--backend", "memory", "--no-anomalies", "--webhook", HOOK])
    assert code == 2 and err == "eventdash: error: --webhook: contradicts --no-anomalies (with detection off, no alert is ever sent)\n"
    (home / "off.json").write_text(json.dumps({"backend": "memory", "anomaly": {"enabled": False}}))
    _, code, err = outcome(["serve", "--settings", "off.json", "--webhook", HOOK])
    assert code == 2 and err.startswith("eventdash: error: --webhook: anomaly.enabled is false in off.json")


def test_web_refuses_the_webhook_as_each_connection_would_post_every_alert(home: Path) -> None:
    _, code, err = outcome(["--webhook", HOOK, "web", "--backend", "memory"])
    assert code == 2 and err.startswith("eventdash: error: --webhook: not available with web: every browser connection")
    _, code, err = outcome(["web", "--backend", "memory", "--webhook", HOOK])
    assert code == 2 and "unrecognized arguments: --webhook" in err
    plan, code, _ = outcome(["web", "--backend", "memory", "--no-anomalies"])
    assert code == 0 and plan is not None and plan.web is not None and "--no-anomalies" in plan.web[1]


@pytest.mark.parametrize("command", [["summary"], ["query", "--from", "-1m"], ["ingest"]])
def test_commands_that_judge_nothing_do_not_take_the_flags(home: Path, command: list[str]) -> None:
    for flags in (["--webhook", HOOK], ["--no-anomalies"]):
        _, code, err = outcome([*command, "--backend", "memory", *flags])
        assert code == 2 and "unrecognized arguments" in err


@PROPERTY
@given(
    command=st.sampled_from(list(COMMANDS.values())),
    url=st.text(max_size=60) | interesting_text | st.sampled_from(["http://[::1", "http://[::1]:0/", "https://x:-1", "http://%zz/", "http://\uff12/", "http://x/\x00"]),
    prefix=st.sampled_from(["", "http://", "https://127.0.0.1:"]),
    off=st.booleans(),
)
def test_any_webhook_value_is_accepted_or_refused_in_one_line(home: Path, command: list[str], url: str, prefix: str, off: bool) -> None:
    argv = [*command, "--backend", "memory", f"--webhook={prefix}{url}", *(["--no-anomalies"] if off else [])]
    plan, code, err = outcome(argv)
    assert code in (0, 2)
    if plan is not None:
        assert plan.settings.anomaly.webhook_url == prefix + url and (not off or not prefix + url)
    elif code == 2:
        assert err.startswith("eventdash: error: --webhook: ") or "(see eventdash --help)" in err, err
