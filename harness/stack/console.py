"""The event-flow and trace pages of `accord up`'s local console (served beside the mailbox by
`harness/stack/smtp.py` `mail_app`), read from the stack's in-process span store
(`services.kit.tracing.SpanStore`: every service of `accord up` runs in its process).

- `/events` and `GET /api/events`: every event with its hops (written to the outbox, published
  to SNS, delivered to each queue, then handled, absorbed as a duplicate, retried or
  dead-lettered), each with its time; the page follows `/api/events` as it changes.
- `/traces/{traceId}` and `GET /api/traces/{traceId}`: a trace's spans (service, name, parent,
  start, duration) as a waterfall, from the HTTP request to the last consumer;
  `GET /api/traces` the latest traces.
"""

from __future__ import annotations

import html
import re
from importlib import resources
from typing import Any, Final

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response

from services.kit.tracing import SpanStore

TRACE_ID: Final = re.compile(r"^[0-9a-fA-F]{32}$")

# The console runs its own script only, and reads its own JSON.
CONSOLE_POLICY: Final = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; form-action 'none'"
)

CONSOLE_SCRIPT: Final = (resources.files("harness.stack") / "console.js").read_text(
    encoding="utf-8"
)


def add_console(app: FastAPI, spans: SpanStore) -> None:
    """Serve the console's pages and their JSON on `app` (the mailbox's)."""

    @app.get("/api/events")
    async def events() -> list[dict[str, Any]]:
        return spans.events()

    @app.get("/api/traces")
    async def traces() -> list[dict[str, Any]]:
        return spans.traces()

    @app.get("/api/traces/{trace_id}")
    async def trace(trace_id: str) -> Response:
        found = spans.trace(trace_id) if TRACE_ID.match(trace_id) else []
        if not found:
            return JSONResponse(
                {
                    "type": "about:blank",
                    "title": "Not found",
                    "status": 404,
                    "detail": f"no spans of trace {trace_id} (yet)",
                },
                status_code=404,
                media_type="application/problem+json",
            )
        return JSONResponse(
            {"traceId": trace_id.lower(), "spans": [span.as_json() for span in found]}
        )

    @app.get("/events", response_class=HTMLResponse)
    async def events_page() -> HTMLResponse:
        return _page("Accord events", "events", "")

    @app.get("/traces/{trace_id}", response_class=HTMLResponse)
    async def trace_page(trace_id: str) -> HTMLResponse:
        return _page(f"Accord trace {trace_id[:8]}", "trace", trace_id)

    @app.get("/console.js")
    async def console_script() -> Response:
        return Response(
            CONSOLE_SCRIPT, media_type="text/javascript", headers={"cache-control": "no-cache"}
        )


def _page(title: str, view: str, trace_id: str) -> HTMLResponse:
    return HTMLResponse(
        PAGE.format(title=html.escape(title), view=view, trace=html.escape(trace_id, quote=True)),
        headers={"content-security-policy": CONSOLE_POLICY},
    )


PAGE: Final = """<!doctype html>
<html lang=en><head><meta charset=utf-8><title>{title}</title>
<meta name=viewport content="width=device-width, initial-scale=1">
<meta name=referrer content=no-referrer><link rel=icon href="data:,">
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 72rem; margin: 2rem auto;
  padding: 0 1rem; color: #222; }}
[hidden] {{ display: none !important; }}
nav a {{ margin-right: 1rem; }}
.meta, .status, time, .detail {{ color: #666; font-size: 13px; }}
article {{ border: 1px solid #ccc; border-radius: 6px; padding: .25rem 1rem .75rem;
  margin: .75rem 0; }}
article h2 {{ margin: .5rem 0 .25rem; font-size: 1.05rem; }}
ol.hops {{ margin: 0; padding-left: 1.25rem; }}
.hop-handled .what {{ color: #176; }}
.hop-duplicate .what {{ color: #865; }}
.hop-retried .what, .hop-publish-failed .what {{ color: #a60; }}
.hop-dead-lettered .what {{ color: #a00; font-weight: bold; }}
.span {{ display: grid; grid-template-columns: 22rem 1fr 6rem; gap: .5rem; align-items: center;
  font-size: 13px; border-bottom: 1px solid #eee; padding: 2px 0; }}
.span .label {{ overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }}
.span .service {{ display: inline-block; min-width: 6rem; color: #555; }}
.lane {{ position: relative; height: 14px; background: #f6f6f6; }}
.bar {{ position: absolute; top: 0; height: 14px; min-width: 2px; background: #4a7bd0;
  border-radius: 2px; }}
.kind-CONSUMER .bar {{ background: #3a9a6a; }}
.kind-PRODUCER .bar {{ background: #c08a2a; }}
.kind-CLIENT .bar {{ background: #8a6ad0; }}
.error .bar {{ background: #c03030; }}
.duration {{ text-align: right; color: #555; }}
.marks {{ color: #a60; }}
.empty {{ color: #666; }}
</style></head>
<body data-view="{view}" data-trace="{trace}">
<nav><a href="/">mail</a><a href="/events">events</a></nav>
<h1 id=title>{title}</h1>
<p class=meta><span id=summary></span> · JSON at <a id=json href="/api/events">/api/events</a>
· updates live <span id=status class=status role=status></span></p>
<noscript><p>This page needs JavaScript; its data is at the JSON link above.</p></noscript>
<p id=empty class=empty hidden>Nothing yet: register a user (see the README) and watch.</p>
<div id=content></div>
<script src="/console.js"></script>
</body></html>
"""
