// The console pages of `accord up` (harness/stack/console.py): the event flow (/events) and a
// trace's waterfall (/traces/{traceId}), redrawn from their JSON every second. Everything from
// the data goes into the page as text or as an attribute, never as markup.
"use strict";

(() => {
  const POLL_MS = 1000;
  const body = document.body;
  const view = body.dataset.view;
  const traceId = body.dataset.trace;
  const content = document.getElementById("content");
  const empty = document.getElementById("empty");
  const summary = document.getElementById("summary");
  const status = document.getElementById("status");
  const json = document.getElementById("json");
  const clock = new Intl.DateTimeFormat(undefined, {
    hour: "2-digit", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3,
  });
  let last = "";

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value !== null && value !== undefined) node.setAttribute(name, String(value));
    }
    node.append(...children);
    return node;
  }

  function time(iso) {
    const date = new Date(iso);
    const shown = Number.isNaN(date.getTime()) ? iso : clock.format(date);
    return el("time", { datetime: iso, title: iso }, shown);
  }

  const WORDS = {
    written: "written to the outbox",
    published: "published",
    "publish-failed": "publishing failed",
    delivered: "delivered",
    handled: "handled",
    duplicate: "absorbed as a duplicate",
    retried: "failed, to be retried",
    "dead-lettered": "dead-lettered",
  };

  function renderEvents(events) {
    summary.textContent = `${events.length} events`;
    empty.hidden = events.length > 0;
    return events.map((event) => {
      const hops = el("ol", { class: "hops" });
      for (const hop of event.hops) {
        hops.append(
          el(
            "li",
            {
              class: `hop hop-${hop.hop}`,
              "data-hop": hop.hop,
              "data-service": hop.service,
              "data-queue": hop.queue,
            },
            time(hop.at),
            " ",
            el("span", { class: "what" }, WORDS[hop.hop] || hop.hop),
            " ",
            el("span", { class: "detail" }, `${hop.detail} · ${hop.service}`),
          ),
        );
      }
      const reached = event.services.length ? ` → ${event.services.join(", ")}` : "";
      return el(
        "article",
        { class: "event", "data-event-type": event.eventType, "data-event-id": event.eventId },
        el(
          "h2",
          {},
          `${event.eventType}${reached} `,
          el("a", { href: `/traces/${event.traceId}`, class: "trace" }, "trace"),
        ),
        el("p", { class: "meta" }, `event ${event.eventId}`),
        hops,
      );
    });
  }

  function renderTrace(trace) {
    const spans = trace.spans;
    const ids = new Set(spans.map((span) => span.spanId));
    const children = new Map();
    for (const span of spans) {
      const parent = ids.has(span.parentId) ? span.parentId : null;
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(span);
    }
    const start = Math.min(...spans.map((span) => span.startUnixNano));
    const end = Math.max(...spans.map((span) => span.startUnixNano + span.durationMs * 1e6));
    const total = Math.max(end - start, 1);
    const services = new Set(spans.map((span) => span.service));
    summary.textContent =
      `${spans.length} spans · ${services.size} services · ${(total / 1e6).toFixed(1)} ms`;
    const rows = [];
    const walk = (parent, depth) => {
      for (const span of children.get(parent) || []) {
        const bar = el("div", { class: "bar" });
        bar.style.left = `${((span.startUnixNano - start) / total) * 100}%`;
        bar.style.width = `${((span.durationMs * 1e6) / total) * 100}%`;
        const marks = span.events.map((event) => event.name).filter((name) => name !== "outbox.write");
        const label = el(
          "div",
          { class: "label", title: JSON.stringify(span.attributes, null, 1) },
          "\u00a0\u00a0".repeat(depth),
          el("span", { class: "service" }, span.service),
          " ",
          el("span", { class: "name" }, span.name),
          marks.length ? el("span", { class: "marks" }, ` (${marks.join(", ")})`) : "",
        );
        rows.push(
          el(
            "div",
            {
              class: `span kind-${span.kind}${span.status === "ERROR" ? " error" : ""}`,
              "data-service": span.service,
              "data-name": span.name,
              "data-span-id": span.spanId,
              "data-parent-id": span.parentId,
            },
            label,
            el("div", { class: "lane" }, bar),
            el("div", { class: "duration" }, `${span.durationMs.toFixed(1)} ms`),
          ),
        );
        walk(span.spanId, depth + 1);
      }
    };
    walk(null, 0);
    empty.hidden = true;
    return rows;
  }

  async function refresh() {
    const url = view === "trace" ? `/api/traces/${encodeURIComponent(traceId)}` : "/api/events";
    json.href = url;
    json.textContent = url;
    try {
      const response = await fetch(url, { cache: "no-store" });
      if (response.status === 404) {
        empty.hidden = false;
        status.textContent = "";
        return;
      }
      if (!response.ok) throw new Error(`${response.status}`);
      const text = await response.text();
      status.textContent = "";
      status.classList.remove("failing");
      if (text === last) return;
      last = text;
      const data = JSON.parse(text);
      content.replaceChildren(...(view === "trace" ? renderTrace(data) : renderEvents(data)));
    } catch (error) {
      status.textContent = `(cannot reach the stack: ${error.message})`;
      status.classList.add("failing");
    }
  }

  refresh();
  setInterval(refresh, POLL_MS);
})();
