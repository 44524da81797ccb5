"""A query result as CSV, JSON or Allezon's ``{"columns": [...], "rows": [...]}``: one writer per
format, shared by ``eventdash query``, the HTTP API, reports and the history screen's export, so
every face gives the same numbers in the same shape.

* CSV: ``bucket,[type,][tracking_id,]count,incomplete`` -- the step's start in ISO-8601 UTC with
  milliseconds, the group columns, the count, and ``true`` where part of the step could not be read.
  A tracking id a spreadsheet would run as a formula (``=…``, ``+…``, ``-…``, ``@…``) gets a leading
  ``'``, as in the dashboard's exports: ids come from whoever posts events, and a report is a download.
* JSON: the query as answered (range, step, filters), ``rows`` as objects (``bucket`` and
  ``bucketMs``, the group columns, ``count``, ``incomplete``) and ``incomplete`` listing each gap
  with why, as ``summary --json`` does.
* Allezon: ``columns`` such as ``["1m_bucket", "type", "count"]`` and ``rows`` as lists in that
  order, plus the same ``incomplete`` list.
"""

from __future__ import annotations

import csv
import io
from typing import Any, TextIO

from tui.events import iso_ms
from tui.history.aggregate import QueryResult
from tui.history.export_files import csv_cell
from tui.history.query import format_duration


def gaps_json(result: QueryResult) -> list[dict[str, object]]:
    return [gap.to_json(result.bucket_seconds) for gap in result.incomplete]


def to_json(result: QueryResult) -> dict[str, Any]:
    query = result.query
    names = query.group_by
    return {
        "from": iso_ms(query.start_ms), "fromMs": query.start_ms, "to": iso_ms(query.end_ms), "toMs": query.end_ms,
        "step": format_duration(query.step_seconds), "stepSeconds": query.step_seconds,
        "types": list(query.types), "trackingIds": list(query.tracking_ids), "groupBy": list(names),
        "asOf": iso_ms(int(result.as_of * 1000)),
        "rows": [
            {"bucket": row.start_iso, "bucketMs": row.start_ms, **dict(zip(names, row.group)), "count": row.count, "incomplete": row.incomplete}
            for row in result.rows
        ],
        "incomplete": gaps_json(result),
    }


def to_allezon(result: QueryResult) -> dict[str, Any]:
    query = result.query
    columns = [f"{format_duration(query.step_seconds)}_bucket", *query.group_by, "count"]
    return {"columns": columns, "rows": [[row.start_iso, *row.group, row.count] for row in result.rows], "incomplete": gaps_json(result)}


def write_csv(result: QueryResult, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["bucket", *result.query.group_by, "count", "incomplete"])
    writer.writerows([row.start_iso, *map(csv_cell, row.group), row.count, "true" if row.incomplete else "false"] for row in result.rows)


def to_csv(result: QueryResult) -> str:
    out = io.StringIO()
    write_csv(result, out)
    return out.getvalue()
