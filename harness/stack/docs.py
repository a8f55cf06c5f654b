"""Offline documentation rendered from the contract files (never from the code): Swagger UI
for an OpenAPI document, and an HTML page for an AsyncAPI document.

`docs_app` is mounted at `/docs` on each service by `accord up`; the Swagger UI assets come
from the `fastapi-offline` package and markdown is rendered here (markdown-it-py), so nothing
is fetched from the internet.
"""

from __future__ import annotations

import copy
import html
import json
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from markdown_it import MarkdownIt

from harness.authoring.contracts import Resolver

SWAGGER_PAGE = """<!doctype html>
<html lang=en><head><meta charset=utf-8><title>{title}</title>
<link rel=stylesheet href="{prefix}/static/swagger-ui.css"></head>
<body><p style="font:14px system-ui;margin:1rem">Rendered from <code>{source}</code>
(<a href="{prefix}/openapi.json">as JSON</a>) ·
<a href="{prefix}/events">events (AsyncAPI)</a>{services}</p><div id=ui></div>
<script src="{prefix}/static/swagger-ui-bundle.js"></script>
<script>
SwaggerUIBundle({{url: "{prefix}/swagger-ui.json", dom_id: "#ui", deepLinking: true}});
</script>
</body></html>
"""

# CommonMark as the AsyncAPI and OpenAPI specifications say descriptions are, plus tables;
# raw HTML in a description is shown as text, and unsafe link schemes are refused.
MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


def markdown_html(text: Any) -> str:
    """`text` (CommonMark) as HTML; the empty string when it is not a non-empty string."""
    return MARKDOWN.render(text) if isinstance(text, str) and text.strip() else ""


def _services_nav(services: Mapping[str, str] | None) -> str:
    if not services:
        return ""
    return " · services: " + ", ".join(
        f'{html.escape(name)} (<a href="{html.escape(url)}/">API</a> · '
        f'<a href="{html.escape(url)}/events">events</a>)'
        for name, url in services.items()
    )


def _md(text: Any) -> str:
    rendered = markdown_html(text)
    return f"<div class=md>{rendered}</div>" if rendered else ""


def markdown_plain(text: str) -> str:
    """`text` (CommonMark) as the words a reader sees, on one line, without markup: for
    places that show text verbatim, such as Swagger UI's server dropdown."""
    words: list[str] = []
    for token in MARKDOWN.parse(text):
        if token.type == "inline":
            for child in token.children or []:
                if child.type in ("text", "code_inline", "image"):
                    words.append(child.content)
                elif child.type in ("softbreak", "hardbreak"):
                    words.append(" ")
        elif token.type in ("code_block", "fence"):
            words.append(f" {token.content} ")
        elif token.nesting == -1:
            words.append(" ")
    return " ".join("".join(words).split())


def swagger_ui_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` as Swagger UI is given it: server descriptions, which its dropdown shows
    verbatim, in plain text rather than markdown. The contract itself is left as it is."""
    shown = copy.deepcopy(spec)
    server_lists: list[Any] = [shown.get("servers")]
    for item in (shown.get("paths") or {}).values():
        if isinstance(item, dict):
            server_lists.append(item.get("servers"))
            server_lists.extend(op.get("servers") for op in item.values() if isinstance(op, dict))
    for servers in server_lists:
        for server in servers if isinstance(servers, list) else []:
            if isinstance(server, dict) and isinstance(server.get("description"), str):
                server["description"] = markdown_plain(server["description"])
    return shown


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


def _anchor(kind: str, name: str) -> str:
    return f"{kind}-" + re.sub(r"[^A-Za-z0-9._-]", "-", name)


def _last_segment(ref: Any) -> str:
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else ""


def _properties(schema: Any) -> tuple[dict[str, Any], set[str]]:
    """The properties of an object schema and its `allOf` parts, with the required names."""
    if not isinstance(schema, dict):
        return {}, set()
    properties = dict(schema.get("properties") or {})
    required = set(schema.get("required") or [])
    for part in schema.get("allOf") or []:
        more, more_required = _properties(part)
        properties.update(more)
        required |= more_required
    return properties, required


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"array of {_type_of(schema['items'])}"
    for combinator in ("oneOf", "anyOf"):
        if isinstance(schema.get(combinator), list):
            return " | ".join(_type_of(s) for s in schema[combinator] if isinstance(s, dict))
    return str(kind or "")


def _constraints(schema: dict[str, Any]) -> str:
    items = []
    if "format" in schema:
        items.append(f"format {html.escape(str(schema['format']))}")
    if "const" in schema:
        items.append(f"always <code>{html.escape(str(schema['const']))}</code>")
    if isinstance(schema.get("enum"), list):
        items.append(
            "one of " + ", ".join(f"<code>{html.escape(str(v))}</code>" for v in schema["enum"])
        )
    if "pattern" in schema:
        items.append(f"pattern <code>{html.escape(str(schema['pattern']))}</code>")
    for key, label in (
        ("minimum", "≥"),
        ("maximum", "≤"),
        ("minLength", "length ≥"),
        ("maxLength", "length ≤"),
    ):
        if key in schema:
            items.append(f"{label} {html.escape(str(schema[key]))}")
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        items.append(
            "e.g. " + ", ".join(f"<code>{html.escape(str(v))}</code>" for v in schema["examples"])
        )
    return "<br>".join(items)


def _schema_table(schema: Any, what: str) -> str:
    properties, required = _properties(schema)
    if not properties:
        return f"<p class=none>No {html.escape(what)} declared.</p>"
    rows = []
    for name, prop in properties.items():
        prop = prop if isinstance(prop, dict) else {}
        rows.append(
            f"<tr><td><code>{html.escape(name)}</code></td>"
            f"<td>{'required' if name in required else 'optional'}</td>"
            f"<td>{html.escape(_type_of(prop))}</td><td>{_constraints(prop)}</td>"
            f"<td class=md>{markdown_html(prop.get('description'))}</td></tr>"
        )
    return (
        "<table><tr><th>name</th><th></th><th>type</th><th>values</th><th>description</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _yaml(value: Any) -> str:
    dumped = yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return f"<pre>{html.escape(dumped)}</pre>"


def _bindings(value: Any) -> str:
    if not value:
        return ""
    return f"<h4>Bindings</h4>{_yaml(value)}"


def _message_links(messages: list[tuple[str, dict[str, Any]]]) -> str:
    links = [
        f'<a href="#{html.escape(anchor)}"><code>{html.escape(str(message.get("name") or anchor))}'
        "</code></a>"
        for anchor, message in messages
    ]
    return ", ".join(links) if links else "none"


def _message_anchor(message: Any, key: str) -> str:
    name = message.get("name") if isinstance(message, dict) else None
    return _anchor("message", str(name or key))


def _heading(anchor: str, title: str, note: str, css: str = "") -> str:
    return (
        f"<section id='{html.escape(anchor)}'{css}><h3>{html.escape(title)} <small>{note}</small>"
        "</h3>"
    )


def _channel_section(key: str, channel: dict[str, Any], messages: list[Any]) -> str:
    return (
        _heading(
            _anchor("channel", key),
            str(channel.get("title") or key),
            f"channel <code>{html.escape(key)}</code>",
        )
        + f"<p>Address: <code>{html.escape(str(channel.get('address')))}</code></p>"
        f"{_md(channel.get('description'))}"
        f"<p>Messages: {_message_links(messages)}</p>"
        f"{_bindings(channel.get('bindings'))}</section>"
    )


def _operation_section(key: str, operation: dict[str, Any], raw: dict[str, Any]) -> str:
    """`raw` is the operation before its `$ref`s were followed: they name its channel and the
    messages of a message without a `name`."""
    channel_key = _last_segment((raw.get("channel") or {}).get("$ref"))
    refs = [_last_segment(m.get("$ref")) for m in raw.get("messages") or []]
    refs += [""] * len(operation.get("messages") or [])
    messages = [
        (_message_anchor(message, ref), message)
        for message, ref in zip(operation.get("messages") or [], refs, strict=False)
    ]
    action = str(operation.get("action", ""))
    verb = {"send": "Sends", "receive": "Receives"}.get(action, action)
    channel = (
        f'<a href="#{html.escape(_anchor("channel", channel_key))}">'
        f"<code>{html.escape(channel_key)}</code></a>"
        if channel_key
        else "its channel"
    )
    address = (operation.get("channel") or {}).get("address")
    if address:
        channel += f" (<code>{html.escape(str(address))}</code>)"
    return (
        _heading(
            _anchor("operation", key),
            str(operation.get("title") or key),
            f"operation <code>{html.escape(key)}</code>",
        )
        + f"<p><strong>{html.escape(verb)}</strong> {_message_links(messages)} on channel "
        f"{channel}</p>"
        f"<p>{html.escape(str(operation.get('summary') or ''))}</p>"
        f"{_md(operation.get('description'))}"
        f"{_bindings(operation.get('bindings'))}</section>"
    )


def _message_section(anchor: str, message: dict[str, Any], content_type: str) -> str:
    payload: dict[str, Any] = message.get("payload") or {}
    headers: dict[str, Any] = message.get("headers") or {}
    examples = []
    for example in message.get("examples") or []:
        label = example.get("summary") or example.get("name") or "example"
        shown = {k: example[k] for k in ("headers", "payload") if k in example}
        dumped = json.dumps(shown, indent=2, ensure_ascii=False, default=str)
        examples.append(
            f"<h4>Example: {html.escape(str(label))}</h4><pre>{html.escape(dumped)}</pre>"
        )
    version = html.escape(str(payload.get("x-schema-version", "?")))
    return (
        _heading(
            anchor,
            str(message.get("name") or anchor),
            f"{html.escape(str(message.get('title') or ''))} · schema {version}",
            " class=message",
        )
        + f"<p>{html.escape(str(message.get('summary') or ''))}</p>"
        f"{_md(message.get('description'))}"
        "<h4>Message attributes <small>headers: the SNS message attributes</small></h4>"
        f"{_md(headers.get('description'))}"
        f"<div class=attributes>{_schema_table(headers, 'message attributes')}</div>"
        f"<h4>Payload <small>{html.escape(str(message.get('contentType') or content_type))}"
        "</small></h4>"
        f"{_md(payload.get('description'))}"
        f"<div class=payload>{_schema_table(payload, 'payload fields')}</div>"
        f"{_bindings(message.get('bindings'))}{''.join(examples)}</section>"
    )


def asyncapi_page(
    document: Path, *, prefix: str = "/docs", services: Mapping[str, str] | None = None
) -> str:
    """An HTML page describing an AsyncAPI 3.0 document, its `$ref`s followed: descriptions
    rendered from markdown; every channel, operation and message with an anchor, linked from
    the contents and from the channels and operations that carry the message; every message
    with its attributes (its `headers`: the SNS message attributes) and its payload.

    `prefix` is where this service's docs are (its Swagger UI at `{prefix}/`); `services` maps
    service names to the URLs of their docs, to link each of them."""
    resolver = Resolver()
    raw = resolver.document(document).data
    data = inline_refs(resolver, document, raw)
    info = data.get("info") or {}
    title = str(info.get("title") or document.name)

    messages: dict[str, dict[str, Any]] = {}
    for key, message in ((data.get("components") or {}).get("messages") or {}).items():
        messages.setdefault(_message_anchor(message, key), message)
    contents: list[tuple[str, str, str]] = []
    channels = []
    for key, channel in (data.get("channels") or {}).items():
        carried = [
            (_message_anchor(message, name), message)
            for name, message in (channel.get("messages") or {}).items()
        ]
        for anchor, message in carried:
            messages.setdefault(anchor, message)
        contents.append(("Channel", _anchor("channel", key), str(channel.get("title") or key)))
        channels.append(_channel_section(key, channel, carried))
    operations = []
    for key, operation in (data.get("operations") or {}).items():
        contents.append(
            ("Operation", _anchor("operation", key), str(operation.get("title") or key))
        )
        operations.append(
            _operation_section(key, operation, (raw.get("operations") or {}).get(key) or {})
        )
    content_type = str(data.get("defaultContentType") or "")
    contents += [("Message", a, str(m.get("name") or a)) for a, m in messages.items()]

    nav = (
        f'<nav><a href="{html.escape(prefix)}/">HTTP API (Swagger UI)</a> · '
        f"rendered from <code>{html.escape(document.name)}</code>{_services_nav(services)}</nav>"
    )
    parts = [
        nav,
        f"<h1>{html.escape(title)} <small>{html.escape(str(info.get('version', '')))}</small></h1>",
        f"{_md(info.get('description'))}",
    ]
    if contents:
        parts.append(
            "<h2>Contents</h2><ul class=contents>"
            + "".join(
                f'<li>{kind}: <a href="#{html.escape(anchor)}">{html.escape(label)}</a></li>'
                for kind, anchor, label in contents
            )
            + "</ul>"
        )
    sections = {
        "Channels": channels,
        "Operations": operations,
        "Messages": [_message_section(a, m, content_type) for a, m in messages.items()],
    }
    parts += [f"<h2>{h}</h2>" + "".join(s) for h, s in sections.items() if s]
    return ASYNCAPI_PAGE.format(title=html.escape(title), body="".join(parts))


ASYNCAPI_PAGE = """<!doctype html>
<html lang=en><head><meta charset=utf-8><title>{title}</title>
<meta name=viewport content="width=device-width, initial-scale=1"><link rel=icon href="data:,">
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 70rem; margin: 2rem auto;
  padding: 0 1rem; color: #222; }}
nav {{ font-size: 14px; color: #555; }}
h1 small, h3 small, h4 small {{ color: #666; font-weight: normal; font-size: 70%; }}
section {{ border: 1px solid #ddd; border-radius: 6px; padding: 0 1rem; margin: 1rem 0; }}
section:target {{ border-color: #2a6; box-shadow: 0 0 0 3px #2a63; }}
table {{ border-collapse: collapse; margin: .5rem 0; }}
td, th {{ border: 1px solid #ccc; padding: 2px 8px; vertical-align: top; text-align: left; }}
td p {{ margin: 0; }}
pre {{ background: #f6f6f6; padding: 8px; white-space: pre-wrap; }}
code {{ background: #f3f3f3; padding: 0 3px; border-radius: 3px; }}
.none {{ color: #666; }}
</style></head><body>{body}</body></html>
"""


def docs_app(
    openapi: Path,
    asyncapi: Path | None,
    prefix: str = "/docs",
    *,
    services: Mapping[str, str] | None = None,
) -> FastAPI:
    """Swagger UI for `openapi` at `/`, the contract as JSON at `/openapi.json` (and as Swagger
    UI is given it at `/swagger-ui.json`), and the page for `asyncapi` at `/events`.

    `prefix` is where the app is mounted; `services` maps service names to the URLs of their
    docs (`http://127.0.0.1:3001/docs`), linked from the events page."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    spec = Resolver().document(openapi).data  # self-contained: its refs are all local
    title = str(spec.get("info", {}).get("title", openapi.name))
    shown = swagger_ui_spec(spec)
    static = resources.files("fastapi_offline") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", response_class=HTMLResponse)
    async def swagger_ui() -> str:
        return SWAGGER_PAGE.format(
            title=html.escape(title),
            prefix=prefix,
            source=html.escape(openapi.name),
            services=_services_nav(services),
        )

    @app.get("/openapi.json")
    async def openapi_json() -> JSONResponse:
        return JSONResponse(spec)

    @app.get("/swagger-ui.json")
    async def swagger_ui_json() -> JSONResponse:
        return JSONResponse(shown)

    @app.get("/events", response_class=HTMLResponse)
    async def events() -> str:
        if asyncapi is None:
            return ASYNCAPI_PAGE.format(
                title="No events",
                body=f'<nav><a href="{html.escape(prefix)}/">HTTP API (Swagger UI)</a></nav>'
                "<p>This service sends and receives no events.</p>",
            )
        return asyncapi_page(asyncapi, prefix=prefix, services=services)

    return app
