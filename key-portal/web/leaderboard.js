// The live leaderboard: polls /api/leaderboard every 3 s and redraws the table
// and an SVG chart of the leaders' last 60 minutes, without reloading.
"use strict";

const { api, el, $, when, fill } = HQ;
const COLORS = ["#ffb347", "#5fd38d", "#8ab4ff", "#ff6b6b", "#d291ff"];
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  return n;
}

function chart(leaders) {
  const W = 600, H = 200, P = 24;
  const max = Math.max(1, ...leaders.flatMap((e) => e.perMinute));
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
  for (let i = 0; i <= 4; i++) {
    const y = P + ((H - 2 * P) * i) / 4;
    root.append(svg("line", { x1: P, x2: W - 4, y1: y, y2: y, stroke: "#2a3560", "stroke-width": 1 }));
  }
  const label = svg("text", { x: 2, y: P - 6, fill: "#a9b3d6", "font-size": 12 });
  label.textContent = String(max);
  root.append(label);
  leaders.forEach((e, i) => {
    const pts = e.perMinute.map((v, m) => {
      const x = P + ((W - P - 4) * m) / 59;
      const y = H - P - ((H - 2 * P) * v) / max;
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    const line = svg("polyline", { points: pts.join(" "), fill: "none", stroke: COLORS[i], "stroke-width": 2.5 });
    const title = svg("title", {});
    title.textContent = e.username;
    line.append(title);
    root.append(line);
  });
  $("chart").replaceChildren(root);
  $("legend").replaceChildren(...leaders.map((e, i) => el("span", { style: `--c:${COLORS[i]}` }, e.username)));
}

async function refresh() {
  let board;
  try {
    board = await api("GET", "api/leaderboard");
    HQ.say("board-msg", "");
  } catch (e) {
    HQ.say("board-msg", "Cannot update: " + e.message, "error");
    return;
  }
  const entries = board.entries;
  fill($("board"), entries.map((e) => el("tr", { "data-user": e.username },
    el("td", { class: "rank" }, e.rank),
    el("td", {}, e.username),
    el("td", { class: "num" }, e.total),
    el("td", { class: "num opt" }, e.iridium),
    el("td", { class: "num opt" }, e.magnesite),
    el("td", { class: "opt" }, when(e.lastFulfilledAt)))), "No attendees yet.");
  const sum = (f) => entries.reduce((a, e) => a + f(e), 0);
  $("t-total").textContent = sum((e) => e.total);
  $("t-iridium").textContent = sum((e) => e.iridium);
  $("t-magnesite").textContent = sum((e) => e.magnesite);
  $("t-minute").textContent = sum((e) => e.perMinute[59] || 0);
  chart(entries.filter((e) => e.total > 0).slice(0, COLORS.length));
  $("updated").textContent = new Date(board.generatedAt).toLocaleTimeString();
}

document.addEventListener("DOMContentLoaded", () => HQ.every(3000, refresh));
