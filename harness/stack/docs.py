"""Offline documentation rendered from the contract files (never from the code): Swagger UI
for an OpenAPI document, and an HTML page for an AsyncAPI document.

`docs_app` is mounted at `/docs` on each service by `accord up`; the Swagger UI assets come
from the `fastapi-offline` package, so nothing is fetched from the internet.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from harness.contracts import Resolver

SWAGGER_PAGE = """<!doctype html>
<html lang=en><head><meta charset=utf-8><title>{title}</title>
<link rel=stylesheet href="{prefix}/static/swagger-ui.css"></head>
<body><p style="font:14px system-ui;margin:1rem">Rendered from <code>{source}</code> ·
<a href="{prefix}/events">events (AsyncAPI)</a></p><div id=ui></div>
<script src="{prefix}/static/swagger-ui-bundle.js"></script>
<script>
SwaggerUIBundle({{url: "{prefix}/openapi.json", dom_id: "#ui", deepLinking: true}});
</script>
</body></html>
"""


def inline_refs(resolver: Resolver, base: Path, value: Any, depth: int = 0) -> Any:
    """`value` with every `$ref` replaced by its target (cycles stop at a depth)."""
    if depth > 20:
        return value
    if isinstance(value, dict):
        if isinstance(value.get("$ref"), str):
            target_path, target = resolver.deref(base, value)
            return inline_refs(resolver, target_path, target, depth + 1)
        return {k: inline_refs(resolver, base, v, depth) for k, v in value.items()}
    if isinstance(value, list):
        return [inline_refs(resolver, base, v, depth) for v in value]
    return value


def _schema_table(schema: dict[str, Any]) -> str:
    required = set(schema.get("required", []))
    rows = []
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type", "")
        detail = prop.get("format") or (f"const {prop['const']}" if "const" in prop else "")
        rows.append(
            f"<tr><td><code>{html.escape(name)}</code>{' *' if name in required else ''}</td>"
            f"<td>{html.escape(str(kind))}</td><td>{html.escape(str(detail))}</td>"
            f"<td>{html.escape(str(prop.get('description', '')))}</td></tr>"
        )
    return (
        "<table><tr><th>field</th><th>type</th><th>format</th><th>description</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def asyncapi_page(document: Path) -> str:
    """An HTML page describing an AsyncAPI 3.0 document, its `$ref`s followed."""
    resolver = Resolver()
    data = inline_refs(resolver, document, resolver.document(document).data)
    info = data.get("info", {})
    title = html.escape(info.get("title", document.name))
    parts = [
        f"<h1>{title} <small>{html.escape(info.get('version', ''))}</small></h1>",
        f"<pre class=desc>{html.escape(info.get('description', ''))}</pre>",
    ]
    for name, channel in (data.get("channels") or {}).items():
        address = html.escape(str(channel.get("address")))
        parts.append(
            f"<h2>Channel {html.escape(name)}: <code>{address}</code></h2>"
            f"<pre>{html.escape(json.dumps(channel.get('bindings', {}), indent=2))}</pre>"
        )
    for name, operation in (data.get("operations") or {}).items():
        names = [m.get("name", "?") for m in operation.get("messages", [])]
        parts.append(
            f"<h2>Operation {html.escape(name)} ({html.escape(operation.get('action', ''))})</h2>"
            f"<p>{html.escape(operation.get('summary', ''))} Messages: "
            f"{html.escape(', '.join(names))}</p>"
            f"<pre>{html.escape(json.dumps(operation.get('bindings', {}), indent=2))}</pre>"
        )
    messages: dict[str, Any] = dict((data.get("components") or {}).get("messages") or {})
    for channel in (data.get("channels") or {}).values():
        messages.update(channel.get("messages") or {})
    for message in messages.values():
        payload = message.get("payload", {})
        examples = [e.get("payload") for e in message.get("examples", [])]
        parts.append(
            f"<h2 id='{html.escape(message.get('name', ''))}'>Message "
            f"<code>{html.escape(message.get('name', ''))}</code> "
            f"<small>schema {html.escape(str(payload.get('x-schema-version', '?')))}</small></h2>"
            f"<p>{html.escape(message.get('summary', ''))}</p>{_schema_table(payload)}"
            + "".join(f"<pre>{html.escape(json.dumps(e, indent=2))}</pre>" for e in examples if e)
        )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>"
        + html.escape(info.get("title", "AsyncAPI"))
        + "</title><style>body{font:15px/1.5 system-ui;max-width:70rem;margin:2rem auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
        "pre{background:#f6f6f6;padding:8px;white-space:pre-wrap}</style></head><body>"
        + "".join(parts)
        + "</body></html>"
    )


def docs_app(openapi: Path, asyncapi: Path | None, prefix: str = "/docs") -> FastAPI:
    """Swagger UI for `openapi` at `/`, its JSON at `/openapi.json`, and `asyncapi` at `/events`."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    spec = Resolver().document(openapi).data  # self-contained: its refs are all local
    title = str(spec.get("info", {}).get("title", openapi.name))
    static = resources.files("fastapi_offline") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", response_class=HTMLResponse)
    async def swagger_ui() -> str:
        return SWAGGER_PAGE.format(
            title=html.escape(title), prefix=prefix, source=html.escape(openapi.name)
        )

    @app.get("/openapi.json")
    async def openapi_json() -> JSONResponse:
        return JSONResponse(spec)

    @app.get("/events", response_class=HTMLResponse)
    async def events() -> str:
        if asyncapi is None:
            return "<p>This service sends and receives no events.</p>"
        return asyncapi_page(asyncapi)

    return app
