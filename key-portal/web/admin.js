// The facilitator console. The admin token lives in this closure only: never
// in storage, a cookie or a URL, so closing the tab forgets it.
"use strict";

const { api, el, $, say, when, fill } = HQ;
let token = null;
let stopPolling = null;
const admin = (method, path, body) => api(method, path, body, token);

function topicRow(t, published) {
  const short = t.name === "orderTopic" ? "orders" : t.name;
  const rate = el("input", { type: "number", min: 0, max: 60000, step: "any", value: t.ratePerMinute, "aria-label": "Orders per minute for " + short });
  const share = el("input", { type: "number", min: 0, max: 1, step: 0.05, value: t.malformedShare, "aria-label": "Malformed share for " + short });
  const save = el("button", { type: "button", onclick: () => setRate(short, { ratePerMinute: Number(rate.value), malformedShare: Number(share.value) }) }, "Save");
  const pause = el("button", { type: "button", class: "secondary", onclick: () => setRate(short, { paused: !t.paused }) }, t.paused ? "Resume" : "Pause");
  return el("tr", { "data-topic": short },
    el("td", {}, short), el("td", {}, rate), el("td", {}, share),
    el("td", { class: t.paused ? "failing" : "status-active" }, t.paused ? "paused" : "flowing"),
    el("td", {}, save, " ", pause),
    el("td", { class: "num" }, published));
}

async function setRate(topic, patch) {
  try {
    await admin("PUT", "admin/api/rates/" + topic, patch);
    say("topics-msg", "Saved " + topic + ".", "ok");
    await refresh();
  } catch (e) { say("topics-msg", e.message, "error"); }
}

function userRow(u) {
  const revoke = u.keyStatus === "active"
    ? el("button", { type: "button", class: "danger", "aria-label": "Revoke the key of " + u.username, onclick: async () => {
        try { await admin("POST", "admin/api/users/" + encodeURIComponent(u.username) + "/revoke-key"); say("users-msg", "Revoked the key of " + u.username + ".", "ok"); await refresh(); }
        catch (e) { say("users-msg", e.message, "error"); }
      } }, "Revoke key")
    : null;
  return el("tr", { "data-user": u.username },
    el("td", {}, u.username), el("td", { class: "opt mono" }, u.keyId || "—"),
    el("td", { class: "status-" + (u.keyStatus || "none") }, u.keyStatus || "no key yet"),
    el("td", { class: "num" }, u.daysLeft ?? "—"), el("td", {}, revoke));
}

function subRow(s) {
  return el("tr", { class: s.failedAttempts ? "failing" : "" },
    el("td", {}, s.owner || "(SNS API)"), el("td", {}, s.topic), el("td", { class: "mono" }, s.endpoint),
    el("td", { class: "status-" + s.status }, s.status), el("td", { class: "num" }, s.delivered),
    el("td", { class: "num" }, s.failedAttempts), el("td", { class: "num opt" }, s.retriesPending ?? 0),
    el("td", { class: "opt" }, s.lastError || "—"), el("td", { class: "opt" }, when(s.lastDeliveredAt)));
}

function showLab(c) {
  const r = c.receiving;
  const on = r.latencyMs > 0 || r.errorShare > 0;
  $("lab-state").textContent = on
    ? "ACTIVE: " + (r.latencyMs ? (r.latencyRandom ? "random latency up to " : "latency ") + r.latencyMs + " ms" : "no extra latency") +
      ", " + Math.round(r.errorShare * 100) + "% of requests answered " + r.errorStatus
    : "Off: the fulfillment API behaves normally.";
  $("lab-state").className = "msg " + (on ? "error" : "ok");
}

async function refresh() {
  const [stats, topics, users, subs, chaos] = await Promise.all([
    admin("GET", "admin/api/stats"), admin("GET", "admin/api/rates"), admin("GET", "admin/api/users"),
    admin("GET", "admin/api/subscriptions"), admin("GET", "admin/api/chaos"),
  ]);
  const totals = [["Attendees", stats.attendees], ["Fulfillments", stats.fulfillments], ["Fulfillments / min", stats.fulfillmentsLastMinute],
    ["Orders published", stats.ordersPublished], ["Deliveries", stats.deliveries], ["Delivery failures", stats.deliveryFailures]];
  $("totals").replaceChildren(...totals.map(([k, v]) => el("div", {}, el("small", {}, k), el("span", { class: "big" }, v ?? 0))));
  const focused = document.activeElement && document.activeElement.closest("#topics");
  if (!focused) fill($("topics"), topics.map((t) => topicRow(t, (stats.publishedByTopic || {})[t.name] ?? 0)), "");
  fill($("users"), users.map(userRow), "No attendees yet.");
  subs.sort((a, b) => (b.failedAttempts > 0) - (a.failedAttempts > 0) || b.failedAttempts - a.failedAttempts);
  fill($("subs"), subs.map(subRow), "No subscriptions yet.");
  showLab(chaos);
}

async function loadShare() {
  const info = await api("GET", "api/info");
  const rows = [["Key portal", info.portalUrl], ["Fulfillment API endpoint", info.fulfillmentUrl], ["Leaderboard", info.leaderboardUrl]];
  for (const t of info.topics) rows.push([(t.name === "orderTopic" ? "Orders" : t.name) + " topic ARN", t.arn]);
  if (info.snsEndpoint) rows.push(["AWS_ENDPOINT_URL_SNS", info.snsEndpoint]);
  if (info.assetsUrl) rows.push(["Workshop files", info.assetsUrl]);
  $("share").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, el("code", {}, v))]));
}

async function signIn(candidate) {
  token = candidate;
  try {
    await admin("GET", "admin/api/users");
  } catch (e) {
    token = null;
    say("signin-msg", e.status === 401 ? "That is not the admin token." : e.message, "error");
    return;
  }
  $("token").value = "";
  say("signin-msg", "");
  $("signin").classList.add("hidden");
  $("console").classList.remove("hidden");
  $("signout").classList.remove("hidden");
  await loadShare();
  stopPolling = HQ.every(3000, refresh);
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("token").value.trim()); });
  $("signout").addEventListener("click", () => {
    token = null;
    if (stopPolling) stopPolling();
    $("console").classList.add("hidden");
    $("signout").classList.add("hidden");
    $("signin").classList.remove("hidden");
  });
  $("surge-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await admin("POST", "admin/api/surge", { topic: $("surge-topic").value, count: Number($("surge-count").value), seconds: Number($("surge-seconds").value) });
      say("topics-msg", "Surge started.", "ok");
    } catch (err) { say("topics-msg", err.message, "error"); }
  });
  $("lab-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      showLab(await admin("PUT", "admin/api/chaos", { receiving: {
        latencyMs: Number($("lab-latency").value), latencyRandom: $("lab-random").checked,
        errorShare: Number($("lab-share").value), errorStatus: Number($("lab-status").value) } }));
      say("lab-msg", "Applied.", "ok");
    } catch (err) { say("lab-msg", err.message, "error"); }
  });
  $("lab-off").addEventListener("click", async () => {
    try {
      showLab(await admin("PUT", "admin/api/chaos", { receiving: { latencyMs: 0, latencyRandom: false, errorShare: 0 } }));
      $("lab-latency").value = 0; $("lab-share").value = 0; $("lab-random").checked = false;
      say("lab-msg", "All lab faults off.", "ok");
    } catch (err) { say("lab-msg", err.message, "error"); }
  });
  $("reset-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await admin("POST", "admin/api/reset", { scope: $("reset-scope").value, confirm: $("reset-confirm").value });
      $("reset-confirm").value = "";
      say("reset-msg", "Reset done.", "ok");
      await refresh();
    } catch (err) { say("reset-msg", err.message, "error"); }
  });
});
