// The attendee's portal: sign in, the API key, SNS subscriptions, and what to
// paste into the workshop stack. Authenticated by the HttpOnly session cookie.
"use strict";

const { api, el, $, say, when, fill } = HQ;
let stopPolling = null;

function show(signedIn) {
  $("signin").classList.toggle("hidden", signedIn);
  for (const id of ["key-box", "sub-box", "share-box", "signout"]) $(id).classList.toggle("hidden", !signedIn);
}

function credentials() {
  return { username: $("username").value.trim(), password: $("password").value };
}

async function signIn() {
  const c = credentials();
  try {
    const r = await api("POST", "api/login", c);
    $("password").value = "";
    say("auth-msg", "");
    await enter(r.username);
  } catch (e) {
    say("auth-msg", e.status === 401 ? "Wrong username or password." : e.message, "error");
  }
}

async function signUp() {
  const c = credentials();
  try {
    await api("POST", "api/signup", c);
    await signIn();
  } catch (e) {
    say("auth-msg", e.status === 409 ? "That username is taken; pick another." : e.message, "error");
  }
}

function renderKey(k) {
  $("api-key").textContent = k.apiKey;
  $("days-left").textContent = String(k.daysLeft);
  const status = $("key-status");
  status.textContent = k.status === "active" ? "" : "(" + k.status + " — rotate to get a new key)";
  status.className = "status-" + k.status;
}

async function loadKey() {
  renderKey(await api("GET", "api/key"));
}

function subRow(s) {
  const remove = el("button", {
    type: "button", class: "secondary", "aria-label": "Remove subscription of " + s.endpoint + " to " + s.topic,
    onclick: async () => {
      try { await api("DELETE", "api/subscriptions/" + encodeURIComponent(s.id)); say("sub-msg", "Subscription removed.", "ok"); await loadSubs(); }
      catch (e) { say("sub-msg", e.message, "error"); }
    },
  }, "Remove");
  return el("tr", { "data-sub": s.id },
    el("td", {}, s.topic),
    el("td", { class: "mono" }, s.endpoint),
    el("td", { class: "status-" + s.status }, s.status === "Confirmed" ? "Confirmed" : "Pending confirmation"),
    el("td", { class: "num" }, s.delivered),
    el("td", { class: "num" + (s.failedAttempts ? " failing" : "") }, s.failedAttempts),
    el("td", { class: "opt" }, s.lastError || "—"),
    el("td", {}, remove));
}

async function loadSubs() {
  const subs = await api("GET", "api/subscriptions");
  fill($("subs"), subs.map(subRow), "No subscriptions yet.");
}

async function subscribe(topic) {
  const endpoint = $("endpoint").value.trim();
  if (!endpoint) { say("sub-msg", "Enter your endpoint URL first.", "error"); $("endpoint").focus(); return; }
  say("sub-msg", "Subscribing…");
  try {
    const s = await api("POST", "api/subscriptions", { topic, endpoint });
    say("sub-msg", "Subscribed " + s.endpoint + " to " + s.topic + ": " +
      (s.status === "Confirmed" ? "confirmed." : "waiting for your endpoint to confirm."), "ok");
    await loadSubs();
  } catch (e) {
    say("sub-msg", "Not subscribed: " + e.message, "error");
  }
}

async function loadInfo() {
  const info = await api("GET", "api/info");
  const rows = [["Fulfillment API endpoint", info.fulfillmentUrl]];
  for (const t of info.topics) rows.push([(t.name === "orderTopic" ? "Orders" : t.name) + " topic ARN", t.arn]);
  if (info.snsEndpoint) rows.push(["AWS_ENDPOINT_URL_SNS", info.snsEndpoint]);
  $("share").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, el("code", {}, v))]));
  if (info.assetsUrl) { $("assets-link").classList.remove("hidden"); }
}

async function enter(username) {
  show(true);
  $("whoami").textContent = username ? "(" + username + ")" : "";
  await loadKey();
  await loadInfo();
  if (stopPolling) stopPolling();
  stopPolling = HQ.every(3000, async () => {
    try { await loadSubs(); } catch (e) { if (e.status === 401) leave("Your session has ended; sign in again."); }
  });
}

function leave(message) {
  if (stopPolling) { stopPolling(); stopPolling = null; }
  show(false);
  say("auth-msg", message || "", message ? "error" : "");
}

document.addEventListener("DOMContentLoaded", async () => {
  $("auth-form").addEventListener("submit", (e) => { e.preventDefault(); signIn(); });
  $("signup").addEventListener("click", signUp);
  $("signout").addEventListener("click", async () => {
    try { await api("POST", "api/logout"); } catch (_) { /* signed out anyway */ }
    leave("Signed out.");
  });
  $("copy-key").addEventListener("click", async () => {
    try { await HQ.copy($("api-key").textContent); say("key-msg", "Key copied.", "ok"); }
    catch (e) { say("key-msg", "Copy failed; select the key and copy it by hand.", "error"); }
  });
  $("rotate-key").addEventListener("click", () => { $("rotate-confirm").classList.remove("hidden"); $("rotate-no").focus(); });
  $("rotate-no").addEventListener("click", () => { $("rotate-confirm").classList.add("hidden"); $("rotate-key").focus(); });
  $("rotate-yes").addEventListener("click", async () => {
    $("rotate-confirm").classList.add("hidden");
    try { renderKey(await api("POST", "api/key/rotate")); say("key-msg", "New key issued; the old one no longer works.", "ok"); }
    catch (e) { say("key-msg", e.message, "error"); }
  });
  $("sub-form").addEventListener("submit", (e) => { e.preventDefault(); subscribe("orders"); });
  for (const b of document.querySelectorAll("#sub-form button[data-topic]")) {
    if (b.type === "button") b.addEventListener("click", () => subscribe(b.dataset.topic));
  }
  try {
    const me = await api("GET", "api/me");
    await enter(me.username);
  } catch (_) {
    show(false);
  }
});
