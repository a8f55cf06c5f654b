// The mailbox page of the SMTP sink (harness/stack/smtp.py `mail_app`): shows every message
// as its recipient would see it, and adds new ones in place from GET /api/messages.
// Everything from a message is put into the page as text or as an attribute, never as markup;
// its HTML part goes to a sandboxed frame (no scripts, no same origin).
"use strict";

(() => {
  const POLL_MS = 2000;
  // The same pattern as LINK in smtp.py: the links of a text part become clickable.
  const LINK = /https?:\/\/[^\s<>"']+/g;
  const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  const ago = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

  const list = document.getElementById("messages");
  const empty = document.getElementById("empty");
  const count = document.getElementById("count");
  const status = document.getElementById("status");
  const shown = new Map(); // message key -> its <article>

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    node.append(...children);
    return node;
  }

  function relative(date) {
    const seconds = Math.round((date.getTime() - Date.now()) / 1000);
    const size = Math.abs(seconds);
    if (size < 60) return ago.format(seconds, "second");
    if (size < 3600) return ago.format(Math.round(seconds / 60), "minute");
    if (size < 86400) return ago.format(Math.round(seconds / 3600), "hour");
    return ago.format(Math.round(seconds / 86400), "day");
  }

  // Links in the HTML part open in a new tab, outside the sandbox: the pages they lead to
  // (such as /verify-email) have forms, which the sandbox would block.
  function withBaseTarget(markup) {
    const base = '<base target="_blank">';
    const head = /<head(\s[^>]*)?>/i;
    if (head.test(markup)) return markup.replace(head, (tag) => tag + base);
    const doctype = /^\s*<!doctype[^>]*>/i;
    if (doctype.test(markup)) return markup.replace(doctype, (tag) => tag + base);
    return base + markup;
  }

  function textPart(text) {
    const pre = el("pre", { class: "text" });
    let last = 0;
    for (const match of text.matchAll(LINK)) {
      pre.append(text.slice(last, match.index), el("a", { href: match[0] }, match[0]));
      last = match.index + match[0].length;
    }
    pre.append(text.slice(last));
    return pre;
  }

  function render(mail) {
    const subject = mail.subject || "(no subject)";
    const parts = {};
    if (mail.html !== null) {
      parts.html = el("iframe", {
        class: "html",
        sandbox: "allow-popups allow-popups-to-escape-sandbox",
        referrerpolicy: "no-referrer",
        title: `HTML part of “${subject}”`,
        srcdoc: withBaseTarget(mail.html),
      });
    }
    if (mail.text !== null) parts.text = textPart(mail.text);

    const received = new Date(mail.received_at);
    const time = el("time", { datetime: mail.received_at, title: mail.received_at });
    time.textContent = Number.isNaN(received.getTime()) ? mail.received_at : when.format(received);
    const meta = el(
      "p",
      { class: "meta" },
      `#${mail.id} · to ${mail.recipients.join(", ")} · from ${mail.mail_from} · `,
      time,
      " ",
      el("span", { class: "ago" }),
    );

    const views = el("div", { class: "views", role: "group", "aria-label": "Part to show" });
    const show = (name) => {
      for (const [part, node] of Object.entries(parts)) node.hidden = part !== name;
      for (const button of views.children) {
        button.setAttribute("aria-pressed", String(button.dataset.part === name));
      }
    };
    for (const [name, label] of [["html", "HTML"], ["text", "Text"]]) {
      const button = el("button", { type: "button", "data-part": name }, label);
      if (parts[name]) button.addEventListener("click", () => show(name));
      else {
        button.disabled = true;
        button.title = `This message has no ${label} part.`;
      }
      views.append(button);
    }

    const article = el("article", {}, el("header", {}, el("h2", {}, subject), meta, views));
    article.append(...Object.values(parts));
    if (!parts.html && !parts.text) {
      article.append(el("p", { class: "empty" }, "This message has no text or HTML part."));
    }
    show(parts.html ? "html" : "text");
    return article;
  }

  function update(messages, arriving) {
    const keys = new Set();
    for (const mail of messages) {
      // The id alone could repeat after the sink restarts; with the time it does not.
      const key = `${mail.id}@${mail.received_at}`;
      keys.add(key);
      if (!shown.has(key)) {
        const article = render(mail);
        if (arriving) article.classList.add("new");
        shown.set(key, article);
        list.prepend(article); // messages come oldest first; the newest goes on top
      }
    }
    for (const [key, article] of shown) {
      if (!keys.has(key)) {
        article.remove();
        shown.delete(key);
      }
    }
    for (const time of list.querySelectorAll("time")) {
      const received = new Date(time.dateTime);
      if (!Number.isNaN(received.getTime())) {
        time.nextElementSibling.textContent = `(${relative(received)})`;
      }
    }
    const n = messages.length;
    count.textContent = `${n} message${n === 1 ? "" : "s"}`;
    document.title = `Accord mail (${n})`;
    empty.hidden = n > 0;
  }

  async function poll() {
    try {
      const response = await fetch("/api/messages", { cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      update(await response.json(), true);
      status.textContent = `· checked ${new Date().toLocaleTimeString()}`;
      status.classList.remove("failing");
    } catch (error) {
      status.textContent = `· cannot reach the mailbox (${error.message}); trying again`;
      status.classList.add("failing");
    }
    setTimeout(poll, POLL_MS);
  }

  update(JSON.parse(document.getElementById("initial").textContent), false);
  setTimeout(poll, POLL_MS);
})();
