"""``eventdash web``: the real server on a free loopback port, the real dashboard in headless Chromium.

Servers are only ever started on 127.0.0.1; what a non-loopback ``--host`` does is tested through
the function that decides the warning, never by listening there.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import open_in_chromium, require_browser, web_server
from tests.conftest import free_port
from tui.cli import make_parser
from tui.web import Listen, WebUsageError, dashboard_command, listen_from

REPO = Path(__file__).resolve().parent.parent


def run_web(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", "web", *args], check=False, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_dashboard_draws_in_chromium_answers_keys_and_a_signal_stops_it_cleanly(signum: int) -> None:
    require_browser()
    with web_server("--backend", "memory", "--seed", "1", "--rate", "200") as server, open_in_chromium(server.url) as tab:
        tab.wait_for_text("Event types")
        tab.wait_for_text("INF-")  # a tracking id: the counts arrived, not only the frame
        assert "Tracking ids · signup" in tab.screen()
        tab.press("t")
        tab.wait_for_text("Tracking ids · user-event")
        assert "paused" not in tab.screen()
        tab.press(" ")
        tab.wait_for_text("paused")
        assert len(server.dashboards()) >= 1  # the connection runs its own dashboard process
        server.stop(signum)  # with the tab still open: exit 0, no dashboard process left
        tab.page.wait_for_selector("body.-closed", state="attached", timeout=10_000)  # "Session ended."


def test_the_dashboard_flags_reach_the_dashboard_each_connection_starts() -> None:
    require_browser()
    args = ("--backend", "memory", "--seed", "1", "--rate", "300", "--window-minutes", "2", "--bucket-seconds", "5", "--key-prefix=-web:")
    with web_server(*args) as server, open_in_chromium(server.url) as tab:
        tab.wait_for_text("last 2 min ±5 s")
        tab.wait_for_text("300/s")
        assert "embedded" in tab.screen()


def test_the_dashboard_command_passes_every_given_flag_and_only_those() -> None:
    parser = make_parser()
    args = parser.parse_args(["--rate", "50", "web", "--port", "8080", "--seed", "3", "--no-generate", "--key-prefix=-x:", "--settings", "s.toml"])
    assert dashboard_command(args, parser) == [
        sys.executable, "-m", "tui", "--rate=50.0", "--seed=3", "--no-generate", "--settings=s.toml", "--key-prefix=-x:",
    ]
    assert dashboard_command(parser.parse_args(["web"]), parser) == [sys.executable, "-m", "tui"]


def test_the_dashboard_command_repeats_each_scenario_and_passes_the_backfill_as_typed() -> None:
    parser = make_parser()
    args = parser.parse_args(["web", "--scenario", "diurnal", "--scenario", "drop:signup:*:-1s", "--backfill", "30m"])
    assert dashboard_command(args, parser) == [sys.executable, "-m", "tui", "--scenario=diurnal", "--scenario=drop:signup:*:-1s", "--backfill=30m"]


@pytest.mark.parametrize("flag", [["--headless"], ["--events-log", "ev.jsonl"]])
def test_flags_a_browser_dashboard_cannot_honour_are_refused(flag: list[str], tmp_path: Path) -> None:
    parser = make_parser()
    with pytest.raises(WebUsageError, match=f"^{flag[0]}: not available with web"):
        dashboard_command(parser.parse_args([*flag, "web"]), parser)


@pytest.mark.parametrize("port", ["0", "65536", "-1", "８０８０", "80a", "", " 8080", "8_080", "1e3"])
def test_a_bad_port_exits_2_with_one_line_naming_the_flag(port: str) -> None:
    result = run_web("--port", port)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("eventdash: error: --port: expected a port number 1-65535"), result.stderr
    assert repr(port) in result.stderr


@pytest.mark.parametrize("host", ["", "exa mple", "bad_host!", "-lead.example", "127.0.0.1:80", "http://127.0.0.1", "ünï.example"])
def test_a_bad_host_exits_2_with_one_line_naming_the_flag(host: str) -> None:
    result = run_web(f"--host={host}", "--port", str(free_port()))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("eventdash: error: --host: "), result.stderr


def test_bad_dashboard_settings_exit_2_before_serving() -> None:
    result = run_web("--port", str(free_port()), "--window-minutes", "5.05")
    assert result.returncode == 2
    assert result.stderr.startswith("eventdash: error: --window-minutes") and "Serving" not in result.stdout


def test_a_port_in_use_exits_1_with_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_web("--port", str(port), "--backend", "memory")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in result.stderr, result.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_loopback_hosts_get_no_warning(host: str) -> None:
    assert Listen(host, 8000, "").warning() is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_any_other_host_gets_the_no_authentication_warning(host: str) -> None:
    warning = Listen(host, 8000, "").warning()
    assert warning is not None and f"{host}:8000" in warning and "not loopback" in warning and "no password" in warning


def test_the_default_is_loopback_port_8000_and_ipv6_urls_get_brackets() -> None:
    parser = make_parser()
    assert listen_from(parser.parse_args(["web"])) == Listen("127.0.0.1", 8000, "http://127.0.0.1:8000")
    assert listen_from(parser.parse_args(["web", "--host", "::1", "--port", "9"])).public_url == "http://[::1]:9"
    given = parser.parse_args(["web", "--public-url", "https://dash.example/"])
    assert listen_from(given).public_url == "https://dash.example"
    with pytest.raises(WebUsageError, match="^--public-url: "):
        listen_from(argparse.Namespace(public_url="ftp://x"))
