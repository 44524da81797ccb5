"""Running ``eventdash serve``: bind, serve until a stop signal, shut down without losing a ``202``.

On any stop signal (:data:`tui.shutdown.STOP_SIGNALS`): new requests are answered 503, the
listening socket closes, in-flight requests finish (up to ``grace`` seconds), the sink drains
(every durable append stays in the spool) and the process exits 0.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from tui.clock import SystemClock
from tui.service.app import INGEST_PATH, begin_shutdown, make_app
from tui.service.config import ServeOptions
from tui.service.metrics import Metrics
from tui.service.state import StateDir, StateDirError
from tui.service.wiring import build
from tui.settings import Settings
from tui.shutdown import STOP_SIGNALS

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


def _say(message: str) -> None:
    print(f"eventdash: {message}", file=sys.stderr, flush=True)


async def _serve(settings: Settings, options: ServeOptions, state: StateDir) -> int:
    clock, metrics = SystemClock(), Metrics()
    service = build(settings, state, clock, metrics, options.spool_bytes)
    for line in service.spool.damage:
        _say(f"warning: {line}")
    app = make_app(service.sink, service.reader, options.config, clock, metrics, service.alerts)
    runner = web.AppRunner(app, auto_decompress=False, access_log=None, handle_signals=False, shutdown_timeout=options.grace_seconds)
    await runner.setup()
    site = web.TCPSite(runner, options.listen.host, options.listen.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        service.close()
        _say(f"serve: cannot listen on {options.listen.host}:{options.listen.port}: {exc.strerror or exc}")
        return EXIT_RUNTIME
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    _say(
        f"serve: listening on {options.listen.public_url} (POST {INGEST_PATH}, GET /api/v1/summary); "
        f"state in {state.path}, writer {state.writer_id}, {service.spool.depth():,} events recovered from the spool"
    )
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except asyncio.TimeoutError:
            service.tick()
    begin_shutdown(app)
    _say("serve: stopping: finishing the requests in flight")
    await runner.cleanup()
    service.close()
    _say(f"serve: stopped; {service.spool.depth():,} events held in the spool")
    return EXIT_OK


def run_serve(settings: Settings, options: ServeOptions) -> int:
    """``eventdash serve``: 0 after a clean stop; 1 when it cannot listen; 2 for a state dir in use."""
    warning = options.listen.warning("the ingest and read API" + ("" if options.config.ingest_token and options.config.read_token else ", without a token for each (--ingest-token, --read-token)"))
    if warning is not None:
        _say(warning)
    try:
        state = StateDir(options.state_dir)
    except StateDirError as exc:
        _say(f"error: {exc}")
        return EXIT_USAGE
    try:
        return asyncio.run(_serve(settings, options, state))
    finally:
        state.close()
