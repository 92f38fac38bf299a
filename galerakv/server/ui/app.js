// The galerakv dashboard: three pages over the server's own JSON (/ui/api/...) and the API (/v1/...).
// No framework, nothing from the network. The bearer token lives in sessionStorage (this tab only),
// never in the address.
"use strict";

const TOKEN_KEY = "galerakv-token";
const $ = (id) => document.getElementById(id);
const state = { me: null, page: null, timer: null, loop: 0, ns: "", prefix: "", cursor: null, key: null, entry: null };

// ------------------------------------------------------------------ requests

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.headers);
  opts.cache = "no-store";
  const response = await fetch(path, opts);
  if (response.status === 401) {
    showSignin("The server did not accept the token: sign in again.");
    throw new Error("unauthorized");
  }
  return response;
}

async function problemText(response) {
  try {
    const body = await response.json();
    return (body.code ? body.code + ": " : "") + (body.detail || body.title || response.statusText);
  } catch (e) {
    return response.status + " " + response.statusText;
  }
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function bytes(n) {
  if (n === null || n === undefined) return "-";
  if (n < 1024) return n + " B";
  if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
  if (n < 1073741824) return (n / 1048576).toFixed(1) + " MiB";
  return (n / 1073741824).toFixed(2) + " GiB";
}

// ------------------------------------------------------------------ sign in and who

function showSignin(message) {
  stopTimer();
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== "signin";
  $("signin-error").textContent = message || "";
  $("token").focus();
}

async function loadMe() {
  const response = await fetch("/ui/api/me", { headers: headers(), cache: "no-store" });
  if (response.status === 401) {
    state.me = null;
    return false;
  }
  state.me = await response.json();
  const who = state.me.auth ? "token " + state.me.name + (state.me.admin ? " (admin)" : "") : "no authentication";
  $("who").textContent = who;
  $("signout").hidden = !state.me.auth;
  return true;
}

function scopeFor(ns) {
  const scopes = (state.me && state.me.scopes) || {};
  return scopes[ns] || scopes["*"] || null;
}

function mayWrite(ns) {
  return scopeFor(ns) === "readwrite";
}

// ------------------------------------------------------------------ routing

function stopTimer() {
  if (state.timer) clearTimeout(state.timer);
  state.timer = null;
  state.loop = (state.loop || 0) + 1; // a tick still awaiting its answer ends its loop there
}

function every(ms, fn) {
  stopTimer();
  const loop = state.loop;
  const tick = async () => {
    try { await fn(); } catch (e) { /* shown by fn; keep polling */ }
    if (state.loop === loop) state.timer = setTimeout(tick, ms);
  };
  tick();
}

async function route() {
  if (!state.me && !(await loadMe())) return showSignin("");
  const page = (location.hash.match(/^#\/(cluster|traffic|keys)/) || [null, "cluster"])[1];
  state.page = page;
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== "page-" + page;
  for (const a of document.querySelectorAll("header nav a")) {
    if (a.id === "nav-" + page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  document.title = page[0].toUpperCase() + page.slice(1) + " - galerakv dashboard";
  if (page === "cluster") every(1000, loadCluster);
  else if (page === "traffic") every(1000, loadTraffic);
  else { stopTimer(); openKeysPage(); }
}

// ------------------------------------------------------------------ cluster page

async function loadCluster() {
  const response = await api("/ui/api/cluster");
  if (!response.ok) {
    setVerdict("error", "Cannot read the cluster: " + (await problemText(response)));
    return;
  }
  renderCluster(await response.json());
}

function setVerdict(verdict, text) {
  const v = $("verdict");
  v.className = "verdict " + verdict;
  v.dataset.verdict = verdict;
  v.textContent = text;
}

function renderCluster(view) {
  $("cluster-updated").textContent = new Date().toLocaleTimeString();
  const nodes = $("nodes");
  const reasons = $("reasons");
  reasons.replaceChildren();
  if (view.kind === "sqlite") {
    setVerdict(view.server.ready ? "healthy" : "down", "SQLite on one machine: " + (view.server.ready ? "ready" : view.server.detail));
    nodes.replaceChildren();
    $("sqlite").hidden = false;
    $("balancer-block").hidden = true;
    $("doctor-block").hidden = true;
    const facts = [["File", view.path], ["File size", bytes(view.file_bytes)], ["Write-ahead log", bytes(view.wal_bytes)],
      ["Revision", view.revision], ["Compacted up to", view.compacted], ["synchronous", view.synchronous]];
    $("sqlite-facts").replaceChildren(...facts.filter(([, v]) => v !== undefined).flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v ?? "-") })]));
    return;
  }
  $("sqlite").hidden = true;
  if (view.kind === "none" || view.error) {
    // no reading of the cluster (no [cluster] nodes, or the toolkit's reading failed): the server's own view
    if (view.error) setVerdict("error", view.error + " - below, the nodes as this server's routing sees them");
    else setVerdict(view.server.ready ? "healthy" : "down", "Galera, seen by this server only (no [cluster] nodes in its galerakv.toml): " + view.server.detail);
    nodes.replaceChildren(...(view.server.nodes || []).map((n) => el("article", { class: "node" + (n.healthy ? "" : " down"), "data-node": n.name, "data-state": n.state || "" },
      el("h4", {}, n.name, n.writer ? el("span", { class: "badge", "data-writer": "true", text: "writer" }) : ""),
      el("p", { text: (n.state || "-") + " " + (n.reason || "") }))));
    $("balancer-block").hidden = true;
    $("doctor-block").hidden = true;
    return;
  }
  setVerdict(view.verdict, "Cluster " + view.cluster + ": " + view.verdict);
  for (const r of view.reasons || []) reasons.append(el("li", { text: r }));
  nodes.replaceChildren(...(view.nodes || []).map((n) => nodeCard(n, view.writer)));
  renderBalancer(view.balancer);
  renderDoctor(view.doctor, view.doctor_error);
}

function nodeCard(n, writer) {
  const down = !n.reachable;
  const card = el("article", { class: "node" + (down ? " down" : n.serving ? "" : " unhealthy"), "data-node": n.name,
    "data-state": down ? "down" : n.state, "aria-label": "node " + n.name });
  const title = el("h4", {}, n.name);
  if (n.name === writer) title.append(el("span", { class: "badge", "data-writer": "true", text: "writer" }));
  if (n.maintenance) title.append(el("span", { class: "badge maint", text: "maintenance" }));
  card.append(title);
  const rows = down
    ? [["State", "DOWN"], ["Why", n.error || "no answer"]]
    : [["State", n.state], ["Primary", n.primary ? "yes" : "no (" + n.cluster_status + ")"], ["Ready", n.ready ? "yes" : "no"],
      ["Cluster size seen", n.cluster_size], ["Last committed", n.last_committed],
      ["Flow control paused", (n.flow_control_paused * 100).toFixed(1) + " %"], ["Receive queue", n.recv_queue],
      ["Certification failures", n.cert_failures]];
  if (n.address) rows.push(["Address", n.address]);
  card.append(el("dl", { class: "facts" }, ...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })])));
  return card;
}

function renderBalancer(lb) {
  $("balancer-block").hidden = !lb;
  if (!lb) return;
  $("balancer-summary").textContent = lb.kind + (lb.address ? " on " + lb.address : "") + ": " + (lb.running ? "running" : "NOT running") +
    (lb.problems && lb.problems.length ? " - " + lb.problems.join("; ") : "");
  const rows = (lb.servers || []).map((s) => el("tr", { "data-server": s.server, "data-listener": s.listener },
    el("td", { text: s.listener }), el("td", { text: s.server }),
    el("td", { text: s.backup ? "backup" : s.listener === "rw" ? "active" : "reader" }),
    el("td", { text: s.status + ((lb.drained || []).includes(s.server) ? " (maintenance)" : "") }),
    el("td", { text: ((s.check || "") + " " + (s.check_detail || "")).trim() }), el("td", { text: String(s.sessions) })));
  $("balancer").tBodies[0].replaceChildren(...rows);
}

function renderDoctor(report, error) {
  const block = $("doctor-block");
  block.hidden = !report && !error;
  if (!report) {
    $("doctor-summary").textContent = error ? "The doctor could not run: " + error : "";
    $("findings").replaceChildren();
    return;
  }
  const c = report.counts || {};
  $("doctor-summary").textContent = report.findings.length
    ? report.findings.length + " finding(s): " + Object.entries(c).filter(([, n]) => n).map(([s, n]) => n + " " + s).join(", ")
    : "No problem found.";
  $("findings").replaceChildren(...report.findings.map((f) => {
    const item = el("li", { class: f.severity, "data-code": f.code, "data-node": f.node || "" },
      el("strong", { text: f.severity.toUpperCase() + " " }), el("code", { text: f.code }),
      " " + (f.node || "(cluster)") + ": " + f.summary);
    for (const e of f.evidence || []) item.append(el("div", { class: "evidence", text: "evidence: " + e }));
    item.append(el("p", { class: "fix", text: "fix: " + f.fix }));
    return item;
  }));
}

// ------------------------------------------------------------------ traffic page

const COLORS = ["#1f5fa8", "#b3261e", "#1f7a3a", "#9a6200", "#6b3fa0", "#00796b"];

function drawChart(svg, legend, series, unit, now, window) {
  // x: the server's clock (its last sample is "now"), so a browser with another clock draws the same
  const W = 600, H = 160, PAD = 4;
  const all = series.flatMap((s) => s.points.map((p) => p[1]).filter((v) => v !== null));
  const max = Math.max(1e-9, ...all);
  const t1 = now, t0 = t1 - window;
  const x = (t) => ((t - t0) / (t1 - t0)) * W;
  const y = (v) => H - PAD - (v / max) * (H - 2 * PAD);
  const lines = series.map((s, i) => {
    const pts = s.points.filter((p) => p[1] !== null).map((p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ");
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", pts);
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", COLORS[i % COLORS.length]);
    line.setAttribute("stroke-width", "1.5");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    return line;
  });
  svg.replaceChildren(...lines);
  legend.replaceChildren(...series.map((s, i) => {
    const last = s.points.length ? s.points[s.points.length - 1][1] : null;
    const span = el("span", { text: "\u25A0 " + s.name + ": " + (last === null ? "-" : last) + " " + unit + " now" });
    span.style.color = COLORS[i % COLORS.length];
    return span;
  }), el("span", { text: "scale: 0 to " + (all.length ? +max.toFixed(3) : 0) + " " + unit + ", " + Math.round(window / 60) + " minutes to now" }));
}

async function loadTraffic() {
  const response = await api("/ui/api/traffic");
  if (!response.ok) return;
  const data = await response.json();
  $("requests-total").textContent = String(data.requests_total);
  const s = data.samples;
  const now = s.length ? s[s.length - 1].t : Date.now() / 1000;
  drawChart($("chart-rps"), $("legend-rps"), [{ name: "requests", points: s.map((p) => [p.t, p.rps]) }], "req/s",
    now, data.window);
  drawChart($("chart-latency"), $("legend-latency"), [
    { name: "p50", points: s.map((p) => [p.t, p.p50_ms]) },
    { name: "p99", points: s.map((p) => [p.t, p.p99_ms]) }], "ms", now, data.window);
  const codes = [...new Set(s.flatMap((p) => Object.keys(p.errors)))].sort();
  drawChart($("chart-errors"), $("legend-errors"), (codes.length ? codes : ["none"]).map((code) => ({
    name: code, points: s.map((p) => [p.t, (p.errors[code] || 0) / data.interval]) })), "err/s", now, data.window);
}

// ------------------------------------------------------------------ keys page

function enc(s) {
  return encodeURIComponent(s);
}

async function openKeysPage() {
  const response = await api("/ui/api/namespaces");
  if (response.ok) {
    const { namespaces } = await response.json();
    $("ns-list").replaceChildren(...namespaces.map((n) => el("option", { value: n })));
    if (!state.ns && namespaces.length) { $("ns").value = namespaces[0]; }
  }
  if (state.ns) await listKeys(false);
}

async function listKeys(more) {
  $("keys-error").textContent = "";
  if (!more) { state.cursor = null; $("listing").replaceChildren(); }
  renderCrumbs();
  $("create-block").hidden = !mayWrite(state.ns);
  const params = new URLSearchParams({ prefix: state.prefix, delimiter: "/", keys_only: "true", limit: "100" });
  if (more && state.cursor) params.set("cursor", state.cursor);
  const response = await api("/v1/ns/" + enc(state.ns) + "/kv?" + params);
  if (!response.ok) { $("keys-error").textContent = await problemText(response); return; }
  const page = await response.json();
  const list = $("listing");
  if (!more) {
    for (const p of page.prefixes) {
      list.append(el("li", {}, el("button", { type: "button", class: "prefix", "data-prefix": p, text: p.slice(state.prefix.length) })));
    }
  }
  for (const item of page.items) {
    list.append(el("li", {}, el("button", { type: "button", class: "key", "data-key": item.key, text: item.key.slice(state.prefix.length) })));
  }
  if (!list.children.length) list.append(el("li", { class: "empty", text: "No key under this prefix." }));
  state.cursor = page.next_cursor;
  $("more").hidden = !page.next_cursor;
}

function renderCrumbs() {
  const parts = state.prefix.split("/").slice(0, -1);
  const crumbs = [el("button", { type: "button", "data-prefix": "", text: state.ns + ":" })];
  let acc = "";
  for (const part of parts) {
    acc += part + "/";
    crumbs.push(el("button", { type: "button", "data-prefix": acc, text: part + "/" }));
  }
  $("crumbs").replaceChildren(...crumbs);
}

function isText(type, data) {
  if (/^(text\/|application\/(json|xml|javascript|x-www-form-urlencoded)|[^;]*\+(json|xml))/i.test(type)) return true;
  try { new TextDecoder("utf-8", { fatal: true }).decode(data); return data.length > 0 && !/[\x00-\x08\x0e-\x1f]/.test(new TextDecoder().decode(data)); }
  catch (e) { return false; }
}

function hexdump(data) {
  const lines = [];
  for (let i = 0; i < data.length && i < 65536; i += 16) {
    const row = Array.from(data.slice(i, i + 16));
    lines.push(i.toString(16).padStart(8, "0") + "  " + row.map((b) => b.toString(16).padStart(2, "0")).join(" ").padEnd(48) +
      "  " + row.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join(""));
  }
  return lines.join("\n");
}

function base64(data) {
  let s = "";
  for (let i = 0; i < data.length; i += 8192) s += String.fromCharCode(...data.subarray(i, i + 8192));
  return btoa(s);
}

function renderValue() {
  const e = state.entry;
  if (!e) return;
  const view = $("v-view").value;
  let text;
  if (view === "json") {
    try { text = JSON.stringify(JSON.parse(new TextDecoder().decode(e.data)), null, 2); }
    catch (err) { text = "(not valid JSON: " + err.message + ")"; }
  } else if (view === "hex") text = hexdump(e.data);
  else if (view === "base64") text = base64(e.data);
  else text = new TextDecoder().decode(e.data);
  $("v-value").textContent = text;
}

async function fetchEntry(key) {
  const response = await api("/v1/ns/" + enc(state.ns) + "/kv/" + enc(key));
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(await problemText(response));
  const data = new Uint8Array(await response.arrayBuffer());
  return { key, data, type: response.headers.get("content-type") || "", etag: response.headers.get("etag"),
    expires: response.headers.get("x-galerakv-expires-at") };
}

async function openKey(key) {
  state.key = key;
  $("conflict").hidden = true;
  $("edit-form").hidden = true;
  $("delete-confirm").hidden = true;
  $("viewer-message").textContent = "";
  let entry;
  try { entry = await fetchEntry(key); } catch (e) { $("keys-error").textContent = e.message; return; }
  if (!entry) { $("keys-error").textContent = "The key " + key + " no longer exists."; $("viewer").hidden = true; return; }
  showEntry(entry);
  $("viewer").hidden = false;
  $("viewer-key").focus();
}

function showEntry(entry) {
  state.entry = entry;
  $("viewer-key").textContent = entry.key;
  $("viewer-key").setAttribute("tabindex", "-1");
  $("v-type").textContent = entry.type;
  $("v-size").textContent = bytes(entry.data.length) + (entry.data.length >= 1024 ? " (" + entry.data.length + " bytes)" : "");
  $("v-etag").textContent = entry.etag;
  $("v-expires").textContent = entry.expires ? new Date(parseFloat(entry.expires) * 1000).toLocaleString() : "never";
  const text = isText(entry.type, entry.data);
  $("v-view").value = !text ? "hex" : /json/i.test(entry.type) ? "json" : "text";
  entry.text = text;
  renderValue();
  const writable = mayWrite(state.ns);
  $("v-actions").hidden = !writable;
  $("edit").hidden = !writable || !text;
  $("delete").hidden = !writable;
}

async function save(event) {
  event.preventDefault();
  const e = state.entry;
  const response = await api("/v1/ns/" + enc(state.ns) + "/kv/" + enc(e.key), {
    method: "PUT", body: $("edit-value").value, headers: { "If-Match": e.etag, "Content-Type": e.type } });
  if (response.status === 412) return conflict(e.key, "saved");
  if (!response.ok) { $("viewer-message").textContent = "Not saved: " + (await problemText(response)); return; }
  $("edit-form").hidden = true;
  await openKey(e.key);
  $("viewer-message").textContent = "Saved.";
}

async function conflict(key, what) {
  const current = await fetchEntry(key);
  $("edit-form").hidden = true;
  $("delete-confirm").hidden = true;
  $("conflict").hidden = false;
  $("conflict-text").textContent = current
    ? "Not " + what + ": someone changed this key since you opened it. Nothing was stored. Its ETag is now " + current.etag + "; its current value:"
    : "Not " + what + ": someone deleted this key since you opened it. Nothing was stored.";
  $("conflict-value").textContent = current ? (isText(current.type, current.data) ? new TextDecoder().decode(current.data) : hexdump(current.data)) : "";
  if (current) showEntry(current);
}

async function removeKey() {
  const e = state.entry;
  const response = await api("/v1/ns/" + enc(state.ns) + "/kv/" + enc(e.key), { method: "DELETE", headers: { "If-Match": e.etag } });
  if (response.status === 412) return conflict(e.key, "deleted");
  if (!response.ok && response.status !== 404) { $("viewer-message").textContent = "Not deleted: " + (await problemText(response)); return; }
  $("viewer").hidden = true;
  state.entry = null;
  await listKeys(false);
  $("keys-error").textContent = "Deleted " + e.key + ".";
}

async function create(event) {
  event.preventDefault();
  const key = state.prefix + $("create-key").value;
  const response = await api("/v1/ns/" + enc(state.ns) + "/kv/" + enc(key), {
    method: "PUT", body: $("create-value").value, headers: { "If-None-Match": "*", "Content-Type": $("create-type").value } });
  if (response.status === 412) { $("keys-error").textContent = "Not created: the key " + key + " already exists."; return; }
  if (!response.ok) { $("keys-error").textContent = "Not created: " + (await problemText(response)); return; }
  $("create-form").reset();
  await listKeys(false);
  await openKey(key);
}

// ------------------------------------------------------------------ wiring

function init() {
  window.addEventListener("hashchange", route);
  document.querySelector(".skip").addEventListener("click", (event) => { event.preventDefault(); $("main").focus(); });
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    if (await loadMe()) route(); else showSignin("The server did not accept this token.");
  });
  $("signout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); state.me = null; showSignin("Signed out."); });
  $("ns-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.ns = $("ns").value.trim();
    state.prefix = "";
    $("viewer").hidden = true;
    listKeys(false);
  });
  $("listing").addEventListener("click", (event) => {
    const b = event.target.closest("button");
    if (!b) return;
    if (b.dataset.prefix !== undefined) { state.prefix = b.dataset.prefix; listKeys(false); }
    else if (b.dataset.key !== undefined) openKey(b.dataset.key);
  });
  $("crumbs").addEventListener("click", (event) => {
    const b = event.target.closest("button");
    if (b) { state.prefix = b.dataset.prefix; listKeys(false); }
  });
  $("more").addEventListener("click", () => listKeys(true));
  $("v-view").addEventListener("change", renderValue);
  $("edit").addEventListener("click", () => {
    $("edit-value").value = new TextDecoder().decode(state.entry.data);
    $("conflict").hidden = true;
    $("edit-form").hidden = false;
    $("edit-value").focus();
  });
  $("cancel").addEventListener("click", () => { $("edit-form").hidden = true; $("edit").focus(); });
  $("edit-form").addEventListener("submit", save);
  $("delete").addEventListener("click", () => { $("delete-confirm").hidden = false; $("delete-confirm").focus(); });
  $("delete-confirm").addEventListener("click", removeKey);
  $("create-form").addEventListener("submit", create);
  route();
}

document.addEventListener("DOMContentLoaded", init);
