// fig operator console. Plain JavaScript, no build, no inline script (the page's CSP forbids it).
// The admin token lives in sessionStorage (this tab only) and travels only in the Authorization
// header, never in a URL. Everything shown comes from the admin API; the server enforces roles,
// the buttons only mirror them.
"use strict";

const TOKEN_KEY = "fig.console.token";
const REFRESH_MS = 2000;
const HISTORY_LIMIT = 200;
const HISTORY_SHOWN = 50;
const OPERATOR_NEEDED = "operator role needed";

const state = { me: null, timer: null, sloActor: "system:slo-guard", capabilities: [], dialog: null };
const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- DOM helpers (text only: no innerHTML)
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function setRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

// ---------------------------------------------------------------- formatting
const fmtRate = (v) => (v === null || v === undefined ? "…" : v < 10 ? v.toFixed(2) : v.toFixed(1));
const fmtRatio = (v) => (v === null || v === undefined ? "–" : (v * 100).toFixed(v < 0.01 && v > 0 ? 2 : 1) + " %");
const fmtToggle = (t) => (!t ? "" : t.state === "percent" || t.state === "shadow" ? `${t.state} ${t.percent}` : t.state);
const fmtTime = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "");
function fmtBytes(n) {
  if (n === null || n === undefined) return "unknown";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// ---------------------------------------------------------------- API
class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { Authorization: `Bearer ${token || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, { method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, "the gateway's admin listener is unreachable");
  }
  const text = await resp.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
  if (!resp.ok) {
    const message = (json && json.error) || text || resp.statusText;
    if (resp.status === 401) signOut(`Signed out: ${message}`);
    throw new ApiError(resp.status, `${resp.status}: ${message}`);
  }
  return json;
}

// ---------------------------------------------------------------- session
async function signIn() {
  const token = $("token").value.trim();
  $("login-error").textContent = "";
  if (!token) { $("login-error").textContent = "Paste a token first."; return; }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  await start();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
  state.me = null;
  $("app").hidden = true;
  $("session").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("capabilities").querySelector("tbody").replaceChildren();
}

async function start() {
  if (!sessionStorage.getItem(TOKEN_KEY)) { signOut(); return; }
  try {
    state.me = await api("GET", "/api/v1/whoami");
  } catch (e) {
    signOut(e.status === 401 ? "That token was refused." : e.message);
    return;
  }
  $("who").textContent = `${state.me.name} · role ${state.me.role}`;
  $("who").dataset.role = state.me.role;
  $("login").hidden = true;
  $("session").hidden = false;
  $("app").hidden = false;
  await refresh();
  if (state.timer) clearInterval(state.timer);
  state.timer = setInterval(refresh, REFRESH_MS);
}

let refreshing = false;
async function refresh() {
  if (refreshing || !state.me) return;
  refreshing = true;
  try {
    await Promise.allSettled([refreshOverview(), refreshBridge(), refreshHistory()]);
    await refreshShadow();
  } finally {
    refreshing = false;
  }
}

// ---------------------------------------------------------------- capabilities
function actionButton(label, action, cap, title) {
  const may = state.me && state.me.may_change;
  const button = el("button", {
    type: "button",
    dataset: { action, capability: cap },
    disabled: !may,
    title: may ? title : OPERATOR_NEEDED,
    onclick: () => onAction(action, cap),
  }, label);
  // A disabled button shows no tooltip in some browsers: its wrapper carries it too.
  return el("span", { title: may ? null : OPERATOR_NEEDED }, button);
}

function buildRow(cap) {
  const may = state.me && state.me.may_change;
  const percent = el("input", {
    type: "number", min: "0", max: "100", step: "1", "aria-label": `percent to new for ${cap}`,
    dataset: { percentFor: cap }, disabled: !may, title: may ? "share of users sent to new" : OPERATOR_NEEDED,
  });
  const cells = ["name", "state", "percent", "legacy-rate", "legacy-errors", "legacy-breaker", "new-rate", "new-errors", "new-breaker"]
    .map((c) => el("td", { class: c.match(/rate|errors|percent/) ? `num ${c}` : c, dataset: { cell: c } }));
  const actions = el("td", { class: "actions" },
    actionButton("→ legacy", "legacy", cap, "send every request to legacy"),
    actionButton("→ new", "new", cap, "send every request to new"),
    actionButton("shadow", "shadow", cap, "legacy answers; new gets a copy to compare"),
    el("span", { title: may ? null : OPERATOR_NEEDED }, percent),
    actionButton("set %", "percent", cap, "send this share of users to new (sticky)"),
    actionButton("roll back", "rollback", cap, "go back to the previous state"));
  return el("tr", { dataset: { capability: cap } }, cells, actions);
}

function breakerCell(td, b) {
  const s = b ? b.state : "n/a";
  td.textContent = s.replace("_", "-");
  td.className = `breaker breaker-${s}`;
  td.title = b ? `${b.consecutive_failures} failures in a row; opened ${b.times_opened} times` : "";
}

async function refreshOverview() {
  let data;
  try {
    data = await api("GET", "/api/v1/overview");
    $("overview-error").textContent = "";
  } catch (e) {
    $("overview-error").textContent = `Could not load capabilities: ${e.message}`;
    return;
  }
  state.sloActor = data.slo_guard_actor || state.sloActor;
  state.capabilities = data.capabilities;
  const tbody = $("capabilities").querySelector("tbody");
  const seen = new Set();
  for (const cap of data.capabilities) {
    seen.add(cap.name);
    let row = tbody.querySelector(`tr[data-capability="${CSS.escape(cap.name)}"]`);
    if (!row) { row = buildRow(cap.name); tbody.append(row); }
    const cell = (c) => row.querySelector(`td[data-cell="${c}"]`);
    cell("name").textContent = cap.name;
    cell("state").textContent = cap.state;
    cell("state").className = `state state-${cap.state}`;
    cell("state").title = cap.previous ? `previous: ${cap.previous} (roll back returns there)` : "no previous state";
    cell("percent").textContent = cap.state === "shadow" ? `0 (sample ${cap.percent})` : String(cap.percent);
    for (const side of ["legacy", "new"]) {
      const s = cap.sides[side];
      cell(`${side}-rate`).textContent = fmtRate(s.requests_per_second);
      cell(`${side}-rate`).title = `${s.requests_total} requests since start`;
      cell(`${side}-errors`).textContent = fmtRatio(s.error_ratio);
      cell(`${side}-errors`).title = `${fmtRate(s.errors_per_second)} errors/s; ${s.errors_total} since start`;
      cell(`${side}-errors`).classList.toggle("bad", (s.error_ratio || 0) > 0.01);
      breakerCell(cell(`${side}-breaker`), s.breaker);
    }
  }
  for (const row of [...tbody.children]) if (!seen.has(row.dataset.capability)) row.remove();
  fillShadowSelect(data.capabilities);
}

// ---------------------------------------------------------------- actions and the reason dialog
function onAction(action, cap) {
  const row = $("capabilities").querySelector(`tr[data-capability="${CSS.escape(cap)}"]`);
  const current = row ? row.querySelector('td[data-cell="state"]').textContent : "?";
  let body, path = `/api/v1/capabilities/${encodeURIComponent(cap)}/toggle`, method = "PUT", title;
  if (action === "rollback") {
    method = "POST"; path = `/api/v1/capabilities/${encodeURIComponent(cap)}/rollback`; body = {};
    title = `Roll ${cap} back to its previous state`;
  } else if (action === "percent") {
    const input = row.querySelector("input[data-percent-for]");
    const p = Number(input.value);
    if (input.value === "" || !Number.isInteger(p) || p < 0 || p > 100) {
      notice(`Enter a whole percentage from 0 to 100 for ${cap} first.`, true);
      input.focus();
      return;
    }
    body = { state: "percent", percent: p };
    title = `Send ${p} % of ${cap}'s users to new (now: ${current})`;
  } else {
    body = { state: action };
    title = `Flip ${cap} to ${action} (now: ${current})`;
  }
  openDialog({ title, method, path, body, cap });
}

function openDialog(request) {
  state.dialog = request;
  $("reason-title").textContent = request.title;
  $("reason").value = "";
  $("reason-error").textContent = "";
  $("reason-confirm").disabled = false;
  $("reason-dialog").showModal();
  $("reason").focus();
}

async function confirmDialog() {
  const request = state.dialog;
  if (!request) return;
  const reason = $("reason").value.trim();
  if (!reason) { $("reason-error").textContent = "A reason is required."; $("reason").focus(); return; }
  $("reason-confirm").disabled = true;
  try {
    const entry = await api(request.method, request.path, { ...request.body, reason });
    $("reason-dialog").close();
    state.dialog = null;
    notice(`${request.cap}: ${fmtToggle(entry.from)} → ${fmtToggle(entry.to)} (${reason})`);
    await refresh();
  } catch (e) {
    $("reason-error").textContent = `Refused by the gateway — ${e.message}`;
    $("reason-confirm").disabled = false;
  }
}

function notice(text, bad) {
  $("notice").textContent = text;
  $("notice").className = bad ? "error" : "notice";
}

// ---------------------------------------------------------------- shadow
function fillShadowSelect(caps) {
  const select = $("shadow-capability");
  const names = caps.map((c) => c.name);
  const have = [...select.options].map((o) => o.value);
  if (names.join("\n") !== have.join("\n")) {
    const chosen = select.value;
    select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    const shadowed = caps.find((c) => c.state === "shadow");
    select.value = names.includes(chosen) ? chosen : shadowed ? shadowed.name : names[0] || "";
  }
}

async function refreshShadow() {
  const cap = $("shadow-capability").value;
  if (!cap) return;
  let data;
  try {
    data = await api("GET", `/api/v1/capabilities/${encodeURIComponent(cap)}/mismatches`);
  } catch (e) {
    $("shadow-summary").textContent = `Could not load mismatches: ${e.message}`;
    return;
  }
  const c = data.counts;
  $("shadow-summary").textContent = c
    ? `mismatch rate ${fmtRatio(c.compared ? data.mismatch_rate : null)} · ${c.compared} compared, ${c.mismatched} differed, ${c.shadow_errors} shadow errors`
    : "shadow figures unavailable";
  const rows = (data.mismatches || []).slice(0, 20).flatMap((m) =>
    m.comparison.differences.map((d, i) => el("tr", {},
      el("td", {}, i === 0 ? new Date(m.recorded_at_ms).toISOString().replace("T", " ").slice(0, 19) + "Z" : ""),
      el("td", {}, i === 0 ? `${m.method} ${m.path}${m.request_id ? ` (${m.request_id})` : ""}` : ""),
      el("td", {}, d.at),
      el("td", {}, el("code", { class: "diff" }, d.legacy === null ? "(absent)" : d.legacy)),
      el("td", {}, el("code", { class: "diff" }, d.new === null ? "(absent)" : d.new)))));
  setRows($("mismatches").querySelector("tbody"), rows);
  $("shadow-empty").textContent = rows.length ? "" : "No mismatches recorded for this capability.";
}

// ---------------------------------------------------------------- CDC bridge
async function refreshBridge() {
  const box = $("bridge");
  let b;
  try {
    b = await api("GET", "/api/v1/bridge");
  } catch (e) {
    box.replaceChildren(el("p", { class: "error" }, `Could not ask the gateway: ${e.message}`));
    return;
  }
  if (!b.configured) {
    box.replaceChildren(el("p", { class: "hint", dataset: { bridge: "not-configured" } },
      "Bridge not configured: set [console] bridge_metrics_url in the gateway config to see CDC status here."));
    return;
  }
  if (!b.reachable) {
    box.replaceChildren(el("p", { class: "error", dataset: { bridge: "unreachable" } }, `Bridge unreachable: ${b.error || "no answer"}`));
    return;
  }
  if (b.error) {
    box.replaceChildren(el("p", { class: "error", dataset: { bridge: "unreadable" } }, `Bridge metrics unreadable: ${b.error}`));
    return;
  }
  const reasons = Object.entries(b.dead_letters_by_reason || {}).map(([r, n]) => `${r}: ${n}`).join(", ");
  const snapshot = Object.entries(b.snapshot || {}).map(([t, s]) =>
    `${t} ${s.progress === null || s.progress === undefined ? "?" : (s.progress * 100).toFixed(0) + " %"}${s.rows !== null && s.rows !== undefined ? ` (${s.rows} rows)` : ""}`).join(", ");
  const figures = [
    ["state", b.streaming === null || b.streaming === undefined ? "unknown" : b.streaming ? "streaming" : "standby / starting"],
    ["replication lag", fmtBytes(b.slot_lag_bytes)],
    ["events/s", fmtRate(b.events_per_second)],
    ["events since start", b.events_total],
    ["dead letters", `${b.dead_letters_total}${reasons ? ` (${reasons})` : ""}`],
    ["snapshot", snapshot || "none"],
  ];
  box.replaceChildren(el("dl", { class: "figures", dataset: { bridge: "reachable" } },
    figures.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { class: b.dead_letters_total > 0 && k === "dead letters" ? "bad" : null }, v)])));
}

// ---------------------------------------------------------------- history and automatic rollbacks
async function refreshHistory() {
  let entries;
  try {
    entries = await api("GET", `/api/v1/history?limit=${HISTORY_LIMIT}`);
  } catch (e) {
    setRows($("history").querySelector("tbody"), [el("tr", {}, el("td", { colspan: "7", class: "error" }, e.message))]);
    return;
  }
  const change = (e) => (e.from || e.to ? `${fmtToggle(e.from)} → ${fmtToggle(e.to)}` : "");
  setRows($("history").querySelector("tbody"), entries.slice(0, HISTORY_SHOWN).map((e) => el("tr", { class: e.outcome === "refused" ? "refused" : null },
    el("td", {}, fmtTime(e.at)),
    el("td", {}, `${e.actor}${e.role ? ` (${e.role})` : ""}`),
    el("td", {}, e.action),
    el("td", {}, e.capability || ""),
    el("td", {}, change(e)),
    el("td", {}, e.reason || ""),
    el("td", { class: e.outcome === "refused" ? "bad" : null }, e.outcome + (e.detail ? ` — ${e.detail}` : "")))));
  const autos = entries.filter((e) => e.actor === state.sloActor && e.outcome === "applied");
  setRows($("auto-rollbacks").querySelector("tbody"), autos.map((e) => el("tr", {},
    el("td", {}, fmtTime(e.at)), el("td", {}, e.capability || ""), el("td", {}, fmtToggle(e.from)),
    el("td", {}, fmtToggle(e.to)), el("td", {}, e.reason || ""))));
  $("auto-rollbacks-empty").textContent = autos.length ? "" : `None in the last ${HISTORY_LIMIT} audit entries.`;
}

// ---------------------------------------------------------------- wiring
document.addEventListener("DOMContentLoaded", () => {
  $("login-button").addEventListener("click", signIn);
  $("token").addEventListener("keydown", (e) => { if (e.key === "Enter") signIn(); });
  $("logout-button").addEventListener("click", () => signOut("Signed out."));
  $("reason-confirm").addEventListener("click", confirmDialog);
  $("reason-cancel").addEventListener("click", () => { $("reason-dialog").close(); state.dialog = null; });
  $("reason").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) confirmDialog(); });
  $("shadow-capability").addEventListener("change", refreshShadow);
  start();
});
