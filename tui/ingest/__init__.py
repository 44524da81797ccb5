"""Events from outside: request bodies decoded and checked (:mod:`tui.ingest.decode`), with the body
framing in :mod:`tui.ingest.body` and timestamps in :mod:`tui.ingest.timestamps`. No Textual, no
aiohttp: the HTTP server, the NDJSON reader and the tests all use the same gate."""
