// Shared helpers for HQ's pages. Everything user-supplied goes through
// textContent (never innerHTML), so usernames and URLs cannot become markup.
"use strict";

const HQ = {
  /** Calls HQ's JSON API; throws an Error carrying the API's message. Paths are
   * relative ("api/key"), so the pages also work under an API Gateway stage
   * prefix such as /prod/. */
  async api(method, path, body, bearer) {
    const headers = { "x-hq-csrf": "1" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (bearer) headers["authorization"] = "Bearer " + bearer;
    let res;
    try {
      res = await fetch(path, {
        method, headers, credentials: "same-origin", cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new Error("HQ cannot be reached: " + e.message);
    }
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!res.ok) {
      const err = new Error((data && (data.message || data.error)) || ("HQ answered " + res.status));
      err.status = res.status;
      err.code = data && data.error;
      throw err;
    }
    return data;
  },

  /** Builds an element: el("td", {class: "num"}, "text", child, ...). */
  el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === undefined || c === null) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  },

  $(id) { return document.getElementById(id); },

  /** Shows a message in an aria-live element. */
  say(id, text, kind) {
    const m = HQ.$(id);
    m.textContent = text || "";
    m.className = "msg" + (kind ? " " + kind : "");
  },

  when(ts) {
    if (!ts) return "—";
    const d = new Date(ts);
    const s = Math.round((Date.now() - d.getTime()) / 1000);
    if (s < 60) return Math.max(s, 0) + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    return d.toLocaleString();
  },

  /** Fills a tbody with rows; keeps the table's previous rows if `rows` is empty and a placeholder is given. */
  fill(tbody, rows, empty) {
    tbody.replaceChildren(...(rows.length ? rows : [HQ.el("tr", {}, HQ.el("td", { colspan: 20 }, empty))]));
  },

  /** Copies text to the clipboard, with a fallback for plain-HTTP pages. */
  async copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    const t = HQ.el("textarea", { "aria-hidden": "true" });
    t.value = text;
    document.body.append(t);
    t.select();
    document.execCommand("copy");
    t.remove();
  },

  /** Repeats `fn` every `ms` while the page is visible. */
  every(ms, fn) {
    let timer = null;
    const tick = async () => {
      try { await fn(); } catch (_) { /* shown by fn */ }
      timer = setTimeout(tick, ms);
    };
    tick();
    return () => clearTimeout(timer);
  },
};
