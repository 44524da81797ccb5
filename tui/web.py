"""``eventdash web``: the same dashboard in a browser, served by textual-serve.

textual-serve starts one dashboard process per browser connection (it runs a shell command), so
this module only checks where to listen and turns the dashboard flags given to ``web`` back into
the command line of that process. It has no authentication: it listens on 127.0.0.1 unless told
otherwise, and says so on stderr when told otherwise.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tui.listen import Listen, parse_host, parse_port
from tui.listen import ListenError as WebUsageError

if TYPE_CHECKING:
    from textual_serve.server import Server

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000

#: Flags of the main parser that ``web`` does not pass to its dashboards, and why.
NOT_FOR_WEB = {
    "headless": "the browser shows the dashboard; run --headless on its own",
    "events_log": "every browser connection is its own process, and their lines would interleave in one file",
    "listen": "every browser connection is its own process, and only one can listen; run eventdash --listen on its own",
    "generate": "it goes with --listen",
    "state_dir": "every browser connection is its own process, and only one can hold a state directory",
    "email_salt": "web prints the command it runs for each connection, and the salt is a secret; set EVENTDASH_EMAIL_SALT instead",
    "webhook": "every browser connection is its own dashboard, and each would post every alert; give the URL to one process (serve, or eventdash --headless)",
}
_NOT_COPIED = {"help", "version", *NOT_FOR_WEB}


def add_web_command(commands: Any, parser: argparse.ArgumentParser) -> None:
    """Add the ``web`` subcommand to ``commands``, with every dashboard flag of ``parser``.

    The dashboard flags are the main parser's own actions, shared as argparse's ``parents`` shares
    them, so a flag added to the dashboard is accepted after ``web`` and passed through without a
    second definition here.
    """
    web = commands.add_parser(
        "web",
        help="serve the dashboard in a browser (textual-serve; no authentication)",
        description="Serve the dashboard in a browser: each connection runs its own dashboard with the flags given here. "
        "There is no authentication: it listens on 127.0.0.1 unless --host says otherwise.",
    )
    s = argparse.SUPPRESS
    web.add_argument("--host", metavar="HOST", default=s, help=f"address to listen on (default {DEFAULT_HOST}; anything but loopback is reachable by others)")
    web.add_argument("--port", metavar="PORT", default=s, help=f"port to listen on, 1-65535 (default {DEFAULT_PORT})")
    web.add_argument("--public-url", metavar="URL", default=s, help="the URL browsers use to reach this server, when it is not http://HOST:PORT (e.g. behind a proxy)")
    for action in _dashboard_actions(parser):
        web._add_action(action)


def _dashboard_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The main parser's flags that a browser dashboard takes."""
    return [
        action
        for action in parser._actions
        if action.option_strings and action.dest not in _NOT_COPIED and not isinstance(action, argparse._SubParsersAction)
    ]


def parse_public_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or not text.isprintable() or " " in text:
        raise WebUsageError(f"--public-url: expected an http:// or https:// URL, got {text!r}")
    return text.rstrip("/")


def listen_from(args: argparse.Namespace) -> Listen:
    """Check ``--host``, ``--port`` and ``--public-url``; :class:`WebUsageError` names the bad one."""
    host = parse_host(getattr(args, "host", DEFAULT_HOST))
    port = parse_port(getattr(args, "port", str(DEFAULT_PORT)))
    shown = f"[{host}]" if ":" in host else host
    public = getattr(args, "public_url", None)
    return Listen(host, port, parse_public_url(public) if public is not None else f"http://{shown}:{port}")


def dashboard_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """The command textual-serve runs per connection: this Python, ``-m tui``, and the given flags.

    ``sys.executable -m tui`` works in a venv whose ``bin`` is not on PATH. Values are written as
    ``--flag=value`` so that one starting with ``-`` stays a value.
    """
    for dest, why in NOT_FOR_WEB.items():
        if hasattr(args, dest):
            raise WebUsageError(f"--{dest.replace('_', '-')}: not available with web: {why}")
    command = [sys.executable, "-m", "tui"]
    for action in _dashboard_actions(parser):
        if hasattr(args, action.dest):
            flag = action.option_strings[-1]
            value = getattr(args, action.dest)
            if action.nargs == 0:
                command.append(flag)
            else:  # a repeatable flag (--scenario) holds a list: each value again
                command.extend(f"{flag}={one}" for one in (value if isinstance(value, list) else [value]))
    return command


def _server_class() -> type[Server]:
    """textual-serve's server, made to end the open sessions when it stops.

    Without this, SIGTERM with a browser connected waited about 20 s in aiohttp's shutdown for the
    session's websocket handler to end on its own. Cancelling it makes textual-serve send the
    dashboard its quit message, so every dashboard flushes and exits before the server does.
    """
    # imported here: only ``web`` pays for asyncio and aiohttp
    import asyncio

    from aiohttp import web
    from textual_serve.server import Server

    class EndingServer(Server):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.sessions: dict[asyncio.Task[Any], asyncio.Event] = {}

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            task, ended = asyncio.current_task(), asyncio.Event()
            assert task is not None
            self.sessions[task] = ended
            try:
                return await super().handle_websocket(request)
            finally:
                del self.sessions[task]
                ended.set()

        async def on_shutdown(self, app: web.Application) -> None:
            ended = list(self.sessions.values())
            for task in self.sessions:
                task.cancel()
            await asyncio.gather(*(event.wait() for event in ended))

    return EndingServer


def serve_web(listen: Listen, command: list[str]) -> int:
    """Serve until SIGINT or SIGTERM (exit 0); a port that cannot be bound exits 1 with one line."""
    warning = listen.warning()
    if warning is not None:
        print(f"eventdash: {warning}", file=sys.stderr, flush=True)
    server = _server_class()(shlex.join(command), host=listen.host, port=listen.port, title="eventdash", public_url=listen.public_url)
    try:
        server.serve()
    except OSError as exc:
        print(f"eventdash: web: cannot listen on {listen.host}:{listen.port}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 1
    return 0
