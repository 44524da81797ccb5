"""History over HTTP in ``serve``: aggregates at once, or as a background report to poll and fetch.

- ``GET /api/v1/aggregates?from=-1h&to=now&step=1m&type=signup&tracking_id=INF-*&group_by=type&format=json``
  (``type`` and ``tracking_id`` repeatable; ``format`` json, allezon or csv): 200 with the rows; 400
  naming a bad parameter (a step finer than is kept says what is); 503 when the store cannot be read.
- ``POST /api/v1/reports`` with the same parameters as a JSON object (``type`` and ``tracking_id``
  a string or a list): 202 ``{"report_id": …}``; 400 naming a bad parameter; 429 with
  ``Retry-After`` when :data:`~tui.history.reports.MAX_RUNNING` reports run already (or
  :data:`~tui.history.reports.MAX_KEPT` are kept).
- ``GET /api/v1/reports/{id}``: 202 ``{"status": "running", "progress": 0.25}``; 200 with the CSV
  (or the JSON of ``format=json`` with ``Accept: application/json``); 404 unknown or expired (a report
  is kept 1 h after it ends); a failed report 503 (the store could not be read) or 422 (the answer is
  too large), with ``{"status": "failed", "error": …}``.

Same token, shutdown and CORS rules as the other read routes (``refuse`` and ``preflight`` of
:func:`tui.service.app.make_app`); registered from it in one call.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

from tui.clock import Clock
from tui.history.aggregate import QueryResult, run_query
from tui.history.export import to_allezon, to_csv, to_json
from tui.history.plan import check_kept
from tui.history.query import Query, QueryError, QueryParams, parse_query, url_name
from tui.history.reports import Reports, ReportsBusy
from tui.history.source import HistorySource
from tui.service.metrics import Metrics
from tui.store import StoreUnavailable

PARAMS = ("from", "to", "step", "type", "tracking_id", "group_by")
REPEATABLE = ("type", "tracking_id")
HTTP_FORMATS = ("json", "allezon", "csv")
MAX_REPORT_BODY = 64 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Refuse = Callable[[web.Request, "str | None", str], "web.Response | None"]


@runtime_checkable
class HasHistory(Protocol):
    """A reader that can also answer history (the store-backed one)."""

    history: HistorySource


def _bad(exc: QueryError) -> web.Response:
    return web.json_response({"error": str(exc), "parameter": exc.param}, status=400)


def _unavailable(why: str) -> web.Response:
    response = web.json_response({"error": f"the counts cannot be read now: {why}"}, status=503)
    response.headers["Retry-After"] = "1"
    return response


def params_from(values: Mapping[str, list[Any]]) -> QueryParams:
    """The query's fields from URL parameters or a JSON body (each name with its list of values)."""
    for name, given in values.items():
        if name not in PARAMS:
            raise QueryError(name[:40], f"{name[:40]!r}: unknown parameter; use {', '.join(PARAMS)}")
        if name not in REPEATABLE and len(given) > 1:
            raise QueryError(name, f"{name}: given more than once")
        if not all(isinstance(v, str) for v in given):
            raise QueryError(name, f"{name}: expected a string{' or a list of strings' if name in REPEATABLE else ''}")

    default = QueryParams()

    def one(name: str, fallback: str) -> str:
        return values[name][0] if name in values else fallback

    return QueryParams(
        one("from", default.start), one("to", default.end), one("step", default.step),
        tuple(values.get("type", ())), tuple(values.get("tracking_id", ())), values["group_by"][0] if "group_by" in values else None,
    )


def checked(source: HistorySource, values: Mapping[str, list[Any]], now: float) -> Query:
    """Parse and check a query against the prefix's retention; raises QueryError or StoreUnavailable."""
    params = params_from(values)
    layout = source.layout()
    query = parse_query(params, now, layout.bucket_seconds, url_name)
    check_kept(query, layout, now, url_name, params.start)
    return query


def add_history_routes(app: web.Application, reader: object, clock: Clock, metrics: Metrics, refuse: Refuse, preflight: Handler, read_token: str | None) -> None:
    """Register the history routes on ``app`` (see the module's docstring)."""
    source = reader.history if isinstance(reader, HasHistory) else None
    reports = Reports(clock)

    def answer(values: Mapping[str, list[Any]], now: float, progress: Callable[[float], None] | None = None) -> QueryResult:
        """Check and run a query in one go (one thread hop per request: the hop costs more than the check)."""
        assert source is not None
        query = checked(source, values, now)
        return run_query(source.store, source.layout(), query, now, url_name, progress=progress)

    async def values_of(request: web.Request) -> Mapping[str, list[Any]] | web.Response:
        """The query's parameters (from the URL, or a report's JSON body), or the refusal."""
        refused = refuse(request, read_token, "read")
        if refused is not None:
            return refused
        if source is None:
            return web.json_response({"error": "history is read from memcached (Store v2); this server has no store to read"}, status=503)
        if request.method == "GET":
            return {name: request.query.getall(name) for name in request.query if name != "format"}
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        return {k: (v if isinstance(v, list) and k in REPEATABLE else [v]) for k, v in body.items()}

    async def aggregates(request: web.Request) -> web.Response:
        fmt = request.query.get("format", "json")
        if len(request.query.getall("format", [])) > 1:
            return _bad(QueryError("format", "format: given more than once"))
        if fmt not in HTTP_FORMATS:
            return _bad(QueryError("format", f"format: expected one of {', '.join(HTTP_FORMATS)}, got {fmt[:40]!r}"))
        values = await values_of(request)
        if isinstance(values, web.Response):
            return values
        started = time.perf_counter()
        try:
            result = await asyncio.to_thread(answer, values, clock.time())
        except QueryError as exc:
            return _bad(exc)
        except StoreUnavailable as exc:
            metrics.store_errors.labels("read").inc()
            return _unavailable(str(exc))
        metrics.read_seconds.labels("/api/v1/aggregates").observe(time.perf_counter() - started)
        if fmt == "csv":
            return web.Response(text=to_csv(result), content_type="text/csv")
        return web.json_response(to_allezon(result) if fmt == "allezon" else to_json(result))

    async def create_report(request: web.Request) -> web.Response:
        values = await values_of(request)
        if isinstance(values, web.Response):
            return values
        now = clock.time()
        try:
            assert source is not None
            await asyncio.to_thread(checked, source, values, now)  # refused now (400) rather than as a failed report
        except QueryError as exc:
            return _bad(exc)
        except StoreUnavailable as exc:
            return _unavailable(str(exc))
        try:
            report_id = reports.start(lambda progress: answer(values, now, progress), (QueryError, StoreUnavailable))
        except ReportsBusy as exc:
            response = web.json_response({"error": str(exc)}, status=429)
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        location = f"/api/v1/reports/{report_id}"
        response = web.json_response({"report_id": report_id, "status": "running", "location": location}, status=202)
        response.headers["Location"] = location
        return response

    async def get_report(request: web.Request) -> web.Response:
        refused = refuse(request, read_token, "read")
        if refused is not None:
            return refused
        report = reports.get(request.match_info["report_id"])
        if report is None:
            return web.json_response({"error": f"unknown report id; a report is kept {reports.keep_seconds // 60} min after it ends"}, status=404)
        if report.status == "running":
            return web.json_response({"report_id": report.report_id, "status": "running", "progress": round(report.progress, 3)}, status=202)
        if report.status == "failed" or report.result is None:
            status = 422 if isinstance(report.exception, QueryError) else 503
            return web.json_response({"report_id": report.report_id, "status": "failed", "error": report.error}, status=status)
        if "application/json" in request.headers.get("Accept", ""):
            return web.json_response({"report_id": report.report_id, "status": "done", **to_json(report.result)})
        response = web.Response(text=to_csv(report.result), content_type="text/csv")
        response.headers["Content-Disposition"] = f'attachment; filename="eventdash-report-{report.report_id}.csv"'
        return response

    for method, path, handler in (
        ("GET", "/api/v1/aggregates", aggregates),
        ("POST", "/api/v1/reports", create_report),
        ("GET", "/api/v1/reports/{report_id}", get_report),
    ):
        app.router.add_route(method, path, handler)
    for path in ("/api/v1/aggregates", "/api/v1/reports", "/api/v1/reports/{report_id}"):
        app.router.add_route("OPTIONS", path, preflight)


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    """A report's query: a JSON object of at most :data:`MAX_REPORT_BODY` bytes."""
    if request.content_length is not None and request.content_length > MAX_REPORT_BODY:
        return web.json_response({"error": f"body is over {MAX_REPORT_BODY:,} bytes", "parameter": "body"}, status=413)
    raw = b""
    while chunk := await request.content.read(65536):
        raw += chunk
        if len(raw) > MAX_REPORT_BODY:
            return web.json_response({"error": f"body is over {MAX_REPORT_BODY:,} bytes", "parameter": "body"}, status=413)
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        return web.json_response({"error": f"body: not JSON ({exc})", "parameter": "body"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "body: expected a JSON object of query parameters", "parameter": "body"}, status=400)
    return body
