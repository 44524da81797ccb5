"""The HTTP face of ``serve``: ``make_app(sink, reader, config, clock, metrics)`` builds it.

Routes (every answer is JSON, errors included, except ``/metrics``):

- ``POST /visitors/events/``: 202 ``{"accepted": n, "rejected": [{"index", "field", "reason",
  "code"}]}`` once the accepted events are durable; 400 (with line and column), 413, 415 for a body
  refused as a whole; 401 without the ingest token (when one is set); 429 with ``Retry-After``
  when the spool is full; 503 when the spool cannot write, or while shutting down.
- ``GET /api/v1/summary?minutes=N``, ``GET /api/v1/summary/{type}?tracking_id=…&minutes=N``,
  ``GET /api/v1/series?type=…&tracking_id=…&minutes=N&step=10s|1m|1h``: answers with ``asOf``,
  ``window`` (minutes, bucket seconds, the ``±B s`` bound), ``incomplete`` and ``lagSeconds``;
  400 naming a bad parameter; 401 without the read token (when one is set); 503 when the store
  cannot be read.
- ``GET /api/v1/summary/{type}?tracking_id=…&distinct=visitors|signups&minutes=N``: that id's
  distinct visitors of the type (or distinct sign-up e-mails, type ``signup`` only) as
  ``{"estimate", "lower", "upper"}`` under the ``distinct`` name, with ``incompleteParts`` when a
  sketch was lost; ``GET /api/v1/live?tracking_id=…``: distinct visitors over the last
  ``live_minutes`` (7 by default), every type united, of one id or, without ``tracking_id``, of all.
- ``GET /api/v1/alerts?type=…&tracking_id=…&state=firing|pending``: the active alerts (spikes and
  drops, README "Anomalies"), firing first, with how detection is doing (``anomaly``) and the
  webhook's deliveries (``webhook``, null without one); ``GET /api/v1/alerts/history`` (``state``
  firing or resolved): the announced transitions, oldest first. 400 naming a bad parameter; 401
  without the read token; 404 when detection is off (``anomaly.enabled`` false, ``--no-anomalies``):
  no list is not the same as an empty one; 503 when detection stopped on a bug.
- ``GET /healthz`` (the process answers), ``GET /readyz`` (sink and reader ready, not stopping),
  ``GET /metrics`` (Prometheus text; behind the read token when one is set).

CORS: a request whose ``Origin`` is listed (or any, with ``*``) gets ``Access-Control-Allow-Origin``;
a preflight ``OPTIONS`` from an origin not listed gets 403. aiohttp's own gzip inflation must be off
(``web.AppRunner(app, auto_decompress=False)``, as :mod:`tui.service.server` does): it has no size
cap, and the decoder inflates under its own.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tui import EVENT_TYPES
from tui.anomaly.alerts import FIRING, PENDING, RESOLVED
from tui.clock import Clock
from tui.ingest.body import BodyError
from tui.ingest.decode import Decoder
from tui.service.anomalies import AlertSource
from tui.service.config import ServiceConfig
from tui.service.history_routes import add_history_routes
from tui.service.metrics import Metrics
from tui.service.ports import QueryError, ReadAnswer, Reader, ReadUnavailable, Sink
from tui.service.spool import SpoolError, SpoolFull
from tui.settings import key_text_problem

INGEST_PATH = "/visitors/events/"
STEPS: dict[str, int] = {"10s": 10, "1m": 60, "1h": 3600}
#: ``state=`` of the alerts routes: the active alerts are pending or firing; the history holds the
#: announced transitions, to firing and to resolved.
ALERT_STATES: dict[str, tuple[str, ...]] = {"/api/v1/alerts": (FIRING, PENDING), "/api/v1/alerts/history": (FIRING, RESOLVED)}
#: ``distinct=`` of one id's summary: distinct visitor ids, or distinct sign-up e-mail hashes.
DISTINCT: tuple[str, ...] = ("visitors", "signups")
CORS_HEADERS = "Content-Type, Content-Encoding, Authorization, X-Eventdash-Token"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class _State:
    closing: bool = False


STATE = web.AppKey("state", _State)


def begin_shutdown(app: web.Application) -> None:
    """From now on every request is answered 503 (in-flight ones finish normally)."""
    app[STATE].closing = True


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _token_ok(request: web.Request, token: str | None) -> bool:
    """No token configured, or the request carries it (``Authorization: Bearer`` or ``X-Eventdash-Token``)."""
    if token is None:
        return True
    given = request.headers.get("X-Eventdash-Token")
    if given is None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        given = value.strip() if scheme.lower() == "bearer" else None
    return given is not None and hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode())


def _unauthorized(what: str) -> web.Response:
    response = _error(401, f"missing or wrong {what} token: send Authorization: Bearer TOKEN or X-Eventdash-Token: TOKEN")
    response.headers["WWW-Authenticate"] = 'Bearer realm="eventdash"'
    return response


def _route_name(request: web.Request) -> str:
    """The route's template, never the raw path: a hostile client cannot mint label values."""
    info = request.match_info
    if info.http_exception is not None:
        return "unmatched"
    return info.route.resource.canonical if info.route.resource is not None else "unmatched"


class _Params:
    """Query parameters checked one by one; each problem is a :class:`QueryError` naming it."""

    def __init__(self, request: web.Request, allowed: tuple[str, ...]) -> None:
        self.query = request.query
        for name in self.query:
            if name not in allowed:
                raise QueryError(name[:40], f"unknown parameter; this route takes {', '.join(allowed)}")
            if len(self.query.getall(name)) > 1:
                raise QueryError(name, "given more than once")

    def minutes(self, default: float) -> float:
        text = self.query.get("minutes")
        if text is None:
            return default
        try:
            value = float(text) if text.isascii() and len(text) <= 20 else math.nan
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            raise QueryError("minutes", f"expected a number of minutes more than 0, got {text[:40]!r}")
        return value

    def etype(self, text: str | None) -> str:
        if text is None:
            raise QueryError("type", f"missing; one of {', '.join(EVENT_TYPES)}")
        if text not in EVENT_TYPES:
            raise QueryError("type", f"expected one of {', '.join(EVENT_TYPES)}, got {text[:40]!r}")
        return text

    def tracking_id(self, required: bool, limit: int) -> str | None:
        text = self.query.get("tracking_id")
        if text is None:
            if required:
                raise QueryError("tracking_id", "missing")
            return None
        problem = "is empty" if not text else key_text_problem(text)
        if problem is None and len(text.encode("utf-8", "surrogateescape")) > limit:
            problem = f"is longer than {limit} bytes"
        if problem is not None:
            raise QueryError("tracking_id", f"{text[:40]!r} {problem}")
        return text

    def distinct(self, etype: str) -> str | None:
        """What to count distinctly instead of events: ``visitors``, or ``signups`` (type signup)."""
        text = self.query.get("distinct")
        if text is None:
            return None
        if text not in DISTINCT:
            raise QueryError("distinct", f"expected one of {', '.join(DISTINCT)}, got {text[:40]!r}")
        if text == "signups" and etype != "signup":
            raise QueryError("distinct", f"signups are counted for type signup only, not {etype}; use distinct=visitors")
        return text

    def alert_state(self, allowed: tuple[str, ...]) -> str | None:
        text = self.query.get("state")
        if text is not None and text not in allowed:
            raise QueryError("state", f"expected one of {', '.join(allowed)}, got {text[:40]!r}")
        return text

    def step(self) -> int:
        text = self.query.get("step")
        if text is None or text not in STEPS:
            raise QueryError("step", f"expected one of {', '.join(STEPS)}, got {(text or '')[:40]!r}")
        return STEPS[text]


def _iso(seconds: float) -> str:
    millis = int(seconds * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000)) + f".{millis % 1000:03d}Z"


def _render(answer: ReadAnswer) -> dict[str, Any]:
    minutes = answer.window_seconds / 60
    return {
        "asOf": _iso(answer.as_of),
        "window": {
            "minutes": int(minutes) if minutes.is_integer() else minutes,
            "bucketSeconds": answer.bucket_seconds,
            "bound": f"±{answer.bound_seconds or answer.bucket_seconds} s",
        },
        "incomplete": answer.incomplete,
        "lagSeconds": None if answer.lag_seconds is None else round(answer.lag_seconds, 3),
        **answer.data,
    }


def make_app(
    sink: Sink, reader: Reader, config: ServiceConfig, clock: Clock, metrics: Metrics, alerts: AlertSource | None = None
) -> web.Application:
    """The application; serve it with ``auto_decompress=False``. ``alerts``: the pipeline's
    anomaly watch and webhook (none: the alerts routes answer that detection is off)."""
    decoder = Decoder(clock, config.retention_seconds, config.event_types, config.limits, email_key=config.email_salt.encode())
    limit = config.limits.body_bytes
    origins = frozenset(config.cors_origins)
    retry_after = str(config.retry_after_seconds)
    metrics.watch(sink.depth, sink.age)
    alerts = alerts if alerts is not None else AlertSource()
    metrics.watch_alerts(alerts)

    def allowed_origin(request: web.Request) -> str | None:
        origin = request.headers.get("Origin")
        if origin is None or not origins:
            return None
        return "*" if "*" in origins else origin if origin in origins else None

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every answer JSON, counted by route and status, with CORS headers; no path ends in a 500
        with a traceback: an unexpected failure is logged once and answered with a short 500."""
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # aiohttp's own 404, 405, ...
            response = _error(exc.status, exc.reason)
            for name in ("Allow",):
                if name in exc.headers:
                    response.headers[name] = exc.headers[name]
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            from tui.shutdown import describe_crash

            print(f"eventdash: serve: {describe_crash(f'{request.method} {_route_name(request)}', exc)}", flush=True)
            metrics.store_errors.labels("internal").inc()
            response = _error(500, "internal error; the details are in the server's crash log")
        metrics.requests.labels(_route_name(request), str(response.status)).inc()
        origin = allowed_origin(request)
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            if origin != "*":
                response.headers["Vary"] = "Origin"
        return response

    async def preflight(request: web.Request) -> web.Response:
        origin = allowed_origin(request)
        if origin is None:
            return _error(403, "origin not allowed; the server lists the origins it accepts (--cors-origin)")
        response = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = "POST, GET, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
        return response

    def retry(status: int, message: str, seconds: str = retry_after) -> web.Response:
        response = _error(status, message)
        response.headers["Retry-After"] = seconds
        return response

    def refuse(request: web.Request, token: str | None, what: str) -> web.Response | None:
        """503 while shutting down, 401 without the token; None to go on."""
        if request.app[STATE].closing:
            response = retry(503, "shutting down; retry another server or later")
            response.force_close()
            return response
        return None if _token_ok(request, token) else _unauthorized(what)

    async def read_body(request: web.Request) -> bytes | web.Response:
        if request.content_length is not None and request.content_length > limit:
            return _error(413, f"body is {request.content_length:,} bytes; at most {limit:,} are accepted")
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := await request.content.read(65536):
                size += len(chunk)
                if size > limit:
                    return _error(413, f"body is over {limit:,} bytes; at most {limit:,} are accepted")
                chunks.append(chunk)
        except (HttpProcessingError, OSError, asyncio.IncompleteReadError) as exc:
            return _error(400, f"the body could not be read: {getattr(exc, 'message', None) or exc}")
        return b"".join(chunks)

    async def ingest(request: web.Request) -> web.Response:
        refused = refuse(request, config.ingest_token, "ingest")
        if refused is not None:
            return refused
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
        try:
            batch = decoder.decode(body, request.headers.get("Content-Type"), request.headers.get("Content-Encoding"))
        except BodyError as exc:
            where = {k: v for k, v in (("line", exc.line), ("column", exc.column)) if v is not None}
            return _error(exc.status, str(exc), **where)
        if batch.events:
            try:
                await sink.accept(batch.events)
            except SpoolFull as exc:
                return retry(429, f"{exc}; retry later", str(max(exc.retry_after, config.retry_after_seconds)))
            except SpoolError as exc:
                metrics.store_errors.labels("spool").inc()
                return retry(503, f"the events could not be made durable: {exc}")
            metrics.accepted.inc(len(batch.events))
        for code, count in Counter(r.code for r in batch.rejected).items():  # one inc per reason, not per event
            metrics.rejected.labels(code).inc(count)
        return web.json_response({"accepted": len(batch.events), "rejected": [r.to_json() for r in batch.rejected]}, status=202)

    def read_route(route: str, allowed: tuple[str, ...], ask: Callable[[web.Request, _Params], Awaitable[ReadAnswer]]) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            refused = refuse(request, config.read_token, "read")
            if refused is not None:
                return refused
            started = time.perf_counter()
            try:
                answer = await ask(request, _Params(request, allowed))
            except QueryError as exc:
                return _error(400, str(exc), parameter=exc.parameter)
            except ReadUnavailable as exc:
                metrics.store_errors.labels("read").inc()
                return retry(503, f"the counts cannot be read now: {exc}")
            metrics.read_seconds.labels(route).observe(time.perf_counter() - started)
            return web.json_response(_render(answer))

        return handle

    tid_limit = config.limits.tracking_id_bytes

    async def ask_summary(request: web.Request, p: _Params) -> ReadAnswer:
        return await reader.summary(p.minutes(config.default_minutes))

    async def ask_one(request: web.Request, p: _Params) -> ReadAnswer:
        etype = p.etype(request.match_info["type"])
        tid = p.tracking_id(required=True, limit=tid_limit)
        assert tid is not None
        distinct = p.distinct(etype)
        if distinct is not None:
            return await reader.distinct_for(etype, tid, distinct, p.minutes(config.default_minutes))
        return await reader.summary_for(etype, tid, p.minutes(config.default_minutes))

    async def ask_live(request: web.Request, p: _Params) -> ReadAnswer:
        return await reader.live(p.tracking_id(required=False, limit=tid_limit))

    async def ask_series(request: web.Request, p: _Params) -> ReadAnswer:
        etype, tid = p.etype(p.query.get("type")), p.tracking_id(required=False, limit=tid_limit)
        return await reader.series(etype, tid, p.minutes(config.default_minutes), p.step())

    def alerts_route(route: str) -> Handler:
        """The active alerts (``/api/v1/alerts``) or the announced transitions (``/history``),
        filtered; a snapshot of the last poll, so no store is read here."""
        states = ALERT_STATES[route]
        key = "history" if route.endswith("/history") else "alerts"

        async def handle(request: web.Request) -> web.Response:
            refused = refuse(request, config.read_token, "read")
            if refused is not None:
                return refused
            try:
                p = _Params(request, ("type", "tracking_id", "state"))
                etype = p.etype(p.query["type"]) if "type" in p.query else None
                tid, state = p.tracking_id(required=False, limit=tid_limit), p.alert_state(states)
            except QueryError as exc:
                return _error(400, str(exc), parameter=exc.parameter)
            status = alerts.anomaly()
            if status is None:
                return _error(404, "anomaly detection is off on this server (anomaly.enabled is false in the settings, or --no-anomalies)")
            if alerts.error is not None:
                return _error(503, f"anomaly detection stopped: {alerts.error}; counting goes on, alerts need a restart")
            chosen = [
                a.to_json() for a in (status.history if key == "history" else status.alerts)
                if (etype is None or a.type == etype) and (tid is None or a.id == tid) and (state is None or a.state == state)
            ]
            webhook = alerts.webhook_status()
            return web.json_response({key: chosen, "anomaly": status.to_json(), "webhook": None if webhook is None else webhook.to_json()})

        return handle

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        checks = {"stopping": (not request.app[STATE].closing, "shutting down"), "sink": sink.ready(), "reader": reader.ready()}
        ready = all(ok for ok, _ in checks.values())
        problems = {name: why for name, (ok, why) in checks.items() if not ok}
        return web.json_response({"ready": ready, "problems": problems}, status=200 if ready else 503)

    async def metrics_page(request: web.Request) -> web.Response:
        if not _token_ok(request, config.read_token):
            return _unauthorized("read")
        response = web.Response(body=generate_latest(metrics.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application(middlewares=[guard])
    app[STATE] = _State()
    routes: list[tuple[str, str, Handler]] = [
        ("POST", INGEST_PATH, ingest),
        ("GET", "/api/v1/summary", read_route("/api/v1/summary", ("minutes",), ask_summary)),
        ("GET", "/api/v1/summary/{type}", read_route("/api/v1/summary/{type}", ("tracking_id", "minutes", "distinct"), ask_one)),
        ("GET", "/api/v1/live", read_route("/api/v1/live", ("tracking_id",), ask_live)),
        ("GET", "/api/v1/series", read_route("/api/v1/series", ("type", "tracking_id", "minutes", "step"), ask_series)),
        ("GET", "/api/v1/alerts", alerts_route("/api/v1/alerts")),
        ("GET", "/api/v1/alerts/history", alerts_route("/api/v1/alerts/history")),
        ("GET", "/healthz", healthz),
        ("GET", "/readyz", readyz),
        ("GET", "/metrics", metrics_page),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
        app.router.add_route("OPTIONS", path, preflight)
    add_history_routes(app, reader, clock, metrics, refuse, preflight, config.read_token)  # /api/v1/aggregates, /api/v1/reports
    return app
