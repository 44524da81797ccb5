"""``eventdash web`` on a free loopback port, and Debian's headless Chromium driven by Playwright.

textual-serve's xterm.js draws on a canvas (WebGL) and keeps its ``Terminal`` private, so neither
the DOM nor the accessibility tree holds the screen's text. An init script catches the terminal as
textual-serve stores it (``this.terminal = new Terminal(...)``) and the tests read the screen
through xterm's public buffer API: the cells xterm draws, after it parsed what the app sent.

A missing Chromium or Playwright skips the browser tests on a developer's machine and fails them in
CI (``CI=true``), like a missing memcached. Playwright never downloads a browser here: it drives
``/usr/bin/chromium``, and every request that is not to the server under test is aborted.
"""

from __future__ import annotations

import os
import shutil
import signal
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from tests.conftest import free_port, wait_until
from tests.proc import Eventdash

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

#: Keeps the xterm.js Terminal that textual-serve assigns to ``this.terminal`` as ``window.__xterm``.
CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  set(value) {
    Object.defineProperty(this, "terminal", {value, writable: true, configurable: true, enumerable: true});
    if (value && typeof value.loadAddon === "function") window.__xterm = value;
  },
});
"""

#: The visible rows of the terminal as text, one line per row ("" before the terminal exists).
SCREEN_TEXT = """() => {
  const term = window.__xterm;
  if (!term) return "";
  const buffer = term.buffer.active;
  const rows = [];
  for (let y = 0; y < term.rows; y++) {
    const line = buffer.getLine(buffer.viewportY + y);
    rows.push(line ? line.translateToString(true) : "");
  }
  return rows.join("\\n");
}"""


def require_browser() -> None:
    """Skip without Chromium or Playwright, except in CI, where their absence is a failure."""
    missing = []
    if CHROMIUM is None:
        missing.append("chromium (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[test]')")
    if missing:
        message = f"{' and '.join(missing)} not installed; the browser tests need them"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: CI must install them")
        pytest.skip(message)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


class WebServer:
    """``eventdash web --port <free> ARGS`` on 127.0.0.1, started and ready once it answers HTTP."""

    def __init__(self, *args: str) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = Eventdash("web", "--port", str(port), *args)
        wait_until(self._up, timeout=20, what=f"eventdash web on {self.url}")

    def _up(self) -> bool:
        if self.process.proc.poll() is not None:
            raise AssertionError(f"eventdash web exited {self.process.proc.returncode}: {self.process.text('stderr')}")
        return _answers(self.url)

    def dashboards(self) -> list[psutil.Process]:
        """The processes textual-serve started, one (shell and Python) per browser connection."""
        return psutil.Process(self.process.proc.pid).children(recursive=True)

    def stop(self, signum: int = signal.SIGTERM, within: float = 10.0) -> None:
        """Stop it with ``signum``: it must exit 0 within ``within`` seconds, with open browser
        connections too, and leave no dashboard process behind."""
        dashboards = self.dashboards()
        code = self.process.stop(signum, timeout=within)
        assert code == 0, f"eventdash web exited {code} on {signal.Signals(signum).name}: {self.process.text('stderr')}"
        _, alive = psutil.wait_procs(dashboards, timeout=10)
        assert not alive, f"dashboard processes left running: {[p.cmdline() for p in alive]}"


@contextmanager
def web_server(*args: str) -> Iterator[WebServer]:
    """A :class:`WebServer` that is stopped with SIGTERM afterwards unless the test stopped it."""
    try:
        server = WebServer(*args)
        yield server
        if server.process.proc.poll() is None:
            server.stop()
    finally:
        Eventdash.kill_all()


class BrowserDashboard:
    """One browser tab on the served dashboard: read the screen, press keys, wait for text."""

    def __init__(self, page: Page) -> None:
        self.page = page

    def screen(self) -> str:
        return str(self.page.evaluate(SCREEN_TEXT))

    def wait_for_text(self, text: str, timeout: float = 20.0) -> None:
        """Wait (polling in the page on each animation frame) until the screen shows ``text``."""
        try:
            self.page.wait_for_function(f"(text) => ({SCREEN_TEXT})().includes(text)", arg=text, timeout=timeout * 1000)
        except Exception as exc:
            raise AssertionError(f"the browser never showed {text!r} within {timeout} s; screen:\n{self.screen()}") from exc

    def press(self, key: str) -> None:
        """Type ``key`` into the terminal, as a user does after clicking into the page."""
        self.page.focus(".xterm-helper-textarea")
        self.page.keyboard.press(key)


@contextmanager
def open_in_chromium(url: str, width: int = 1280, height: int = 800) -> Iterator[BrowserDashboard]:
    """Headless Debian Chromium on ``url``; only requests to ``url`` leave the page."""
    from playwright.sync_api import Route, sync_playwright

    def local_only(route: Route, *_: Any) -> None:
        if route.request.url.startswith(url):
            route.continue_()
        else:
            route.abort()  # e.g. the Google Fonts stylesheet textual-serve links: stay offline

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.route("**/*", local_only)
            page.add_init_script(CATCH_TERMINAL)
            page.goto(url)
            yield BrowserDashboard(page)
        finally:
            browser.close()
