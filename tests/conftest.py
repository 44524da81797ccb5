"""Fixtures: real memcached servers on free loopback ports, a fake clock, small settings.

A missing ``memcached`` binary skips the store tests on a developer's machine, but fails them in CI
(``CI=true``), where ``.ci/run`` installs it: the store is never mocked.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote

import pytest
from pymemcache.client.base import Client

from tui.clock import FakeClock
from tui.settings import Server, Settings
from tui.store import MemcachedStore, MemoryStore, Store

MEMCACHED = shutil.which("memcached") or ("/usr/bin/memcached" if os.path.exists("/usr/bin/memcached") else None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition`` until it holds; fail the test with ``what`` if it does not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"version\r\n")
            return sock.recv(64).startswith(b"VERSION")
    except OSError:
        return False


@dataclass
class MemcachedServer:
    """A memcached process on 127.0.0.1 that a test can stop and start again on the same port."""

    port: int = field(default_factory=free_port)
    memory_mb: int = 64
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def server(self) -> Server:
        return Server("127.0.0.1", self.port)

    def start(self) -> None:
        assert MEMCACHED is not None
        as_root = ["-u", "root"] if os.geteuid() == 0 else []  # memcached refuses root without -u
        self.process = subprocess.Popen(
            [MEMCACHED, *as_root, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", str(self.memory_mb), "-t", "2"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        process = self.process

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"memcached exited: {process.stderr.read().decode() if process.stderr else ''}")
            return _answers(self.port)

        wait_until(up, what=f"memcached on {self.address}")

    def stored(self) -> dict[str, bytes]:
        """Every key on the server with its value: what eventdash wrote (see :func:`all_keys`)."""
        return all_keys(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def _require_memcached() -> None:
    if MEMCACHED is None:
        if os.environ.get("CI") == "true":
            pytest.fail("memcached is not installed; CI must install it (apt-get install -y memcached)")
        pytest.skip("memcached is not installed (apt-get install -y memcached)")


@pytest.fixture
def memcached() -> Iterator[MemcachedServer]:
    """A fresh memcached for one test."""
    _require_memcached()
    server = MemcachedServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def memcached_factory() -> Iterator[Callable[[], MemcachedServer]]:
    """Start as many fresh memcached servers as a test needs; all are stopped afterwards."""
    _require_memcached()
    started: list[MemcachedServer] = []

    def make() -> MemcachedServer:
        server = MemcachedServer()
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(autouse=True)
def private_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own ``~/.config/eventdash/settings.json``, crash log or exports must not leak into a
    test (and a test must not write there): every test, and every eventdash it starts, gets its own."""
    home = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))  # exports (the dashboard's e)


@pytest.fixture(autouse=True)
def no_orphan_processes() -> Iterator[None]:
    """A test that fails before stopping its eventdash processes must not leave them running."""
    from tests.proc import Eventdash

    yield
    Eventdash.kill_all()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "memcached"])
def store(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Store]:
    """The same contract on both stores, prefix ``t:``: the embedded one and a fresh real memcached."""
    if request.param == "memory":
        yield MemoryStore(clock, key_prefix="t:")
        return
    server: MemcachedServer = request.getfixturevalue("memcached")
    mc = MemcachedStore([server.server], "t:")
    yield mc
    mc.close()


def ttl(port: int, key: str) -> int:
    """Remaining TTL of ``key`` by memcached's meta get (``mg <key> t``), as any client sees it."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"mg {key} t\r\n".encode())
        reply = sock.recv(256).decode()
    assert reply.startswith("HD"), reply
    return int(reply.split()[1][1:])


def all_keys(port: int) -> dict[str, bytes]:
    """Every key on the server with its value (lru_crawler metadump), to see what eventdash wrote."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"lru_crawler metadump all\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            data += sock.recv(65536)
    keys = [unquote(line.split()[0].split(b"=")[1].decode()) for line in data.splitlines() if line.startswith(b"key=")]
    plain = Client(("127.0.0.1", port))
    found = plain.get_many(keys)
    plain.close()
    return found


@pytest.fixture
def settings() -> Settings:
    return Settings(tracking_ids=("INF-a", "INF-b", "INF-c"), backend="memory")
