// camctl's web configurator. Every check of what is drawn is the camera's
// own code, run by camctl (POST /api/check); this page only draws, edits
// and shows what camctl answers.
"use strict";

const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";

const state = {
  camera: null,        // selected camera id
  running: null,       // running configuration version
  doc: null,           // the configuration being edited (without "version")
  history: [],         // undo stack (JSON texts)
  tool: "select",
  draft: [],           // points of a line, zone or shelf being drawn
  selected: null,      // {kind: "lines"|"zones"|"shelves", index}
  drag: null,          // {kind, index, field, point}
  problems: [],
  size: [640, 360],    // the view's pixel size (the snapshot's)
  live: null,          // EventSource
  bins: new Map(),     // today's bins by start
  checkTimer: null,
  audit: null,
};

// ---------- helpers ----------
async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers["content-type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const type = r.headers.get("content-type") || "";
  const data = type.includes("json") ? await r.json() : await r.blob();
  if (!r.ok) throw new Error((data && data.error) || `${method} ${path}: ${r.status}`);
  return data;
}

function el(tag, attrs = {}, parent = null) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function html(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

const px = ([x, y]) => [x * state.size[0], y * state.size[1]];
const round = (v) => Math.round(v * 1000) / 1000;

function uniqueName(prefix) {
  const used = new Set(["lines", "zones", "shelves"].flatMap((k) => (state.doc[k] || []).map((e) => e.name)));
  for (let i = 1; ; i++) if (!used.has(`${prefix}-${i}`)) return `${prefix}-${i}`;
}

function pointsOf(kind, e) {
  return kind === "lines" ? e.points : e.polygon;
}

// ---------- cameras ----------
async function refreshCameras() {
  let list;
  try {
    list = await api("GET", "/api/cameras");
  } catch (e) {
    return;
  }
  const ul = $("#camera-list");
  ul.replaceChildren();
  if (list.length === 0) ul.appendChild(html("li", "No camera has reported yet.", "empty"));
  for (const c of list) {
    const li = html("li");
    li.dataset.camera = c.camera;
    li.className = (c.online === true ? "online" : c.online === false ? "offline" : "") + (c.camera === state.camera ? " selected" : "");
    const name = html("div");
    name.appendChild(html("span", "", "dot"));
    name.appendChild(html("span", c.camera, "name"));
    li.appendChild(name);
    const facts = [
      c.online === true ? "online" : c.online === false ? "offline" : "status unknown",
      c.firmware_version ? `firmware ${c.firmware_version}` : null,
      c.config_version != null ? `config v${c.config_version}` : null,
      c.fps != null ? `${c.fps.toFixed(1)} fps` : null,
      c.clock ? `clock ${c.clock}` : null,
      c.storage ? `storage ${c.storage}${c.storage_free_bytes != null ? ` (${Math.round(c.storage_free_bytes / 1e6)} MB free)` : ""}` : null,
    ].filter(Boolean);
    li.appendChild(html("div", facts.join(" · "), "facts"));
    if (c.tamper && c.tamper.length) li.appendChild(html("div", `tamper: ${c.tamper.join(", ")}`, "facts warn"));
    li.addEventListener("click", () => selectCamera(c.camera));
    ul.appendChild(li);
    if (c.camera === state.camera) {
      $("#camera-status").textContent = facts.join(" · ");
      $(".status-line").title = $(".status-line").textContent;
    }
  }
}

async function selectCamera(id) {
  state.camera = id;
  $("#workspace").hidden = false;
  $("#camera-title").textContent = id;
  $("#result").textContent = "";
  $("#snap").removeAttribute("src");
  $("#crossings").replaceChildren();
  state.bins.clear();
  drawChart();
  for (const li of document.querySelectorAll("#camera-list li")) li.classList.toggle("selected", li.dataset.camera === id);
  await loadConfig();
  openLive();
}

async function loadConfig() {
  try {
    const cfg = await api("GET", `/api/cameras/${encodeURIComponent(state.camera)}/config`);
    state.running = cfg.version ?? 0;
    delete cfg.version;
    state.doc = cfg;
  } catch (e) {
    state.running = 0;
    state.doc = { bin_minutes: 15, lines: [], zones: [] };
    $("#result").textContent = e.message;
  }
  for (const k of ["lines", "zones"]) state.doc[k] = state.doc[k] || [];
  state.history = [];
  state.selected = null;
  $("#running-version").textContent = state.running;
  changed(false);
}

// ---------- snapshot ----------
async function snapshot() {
  const btn = $("#snapshot");
  btn.disabled = true;
  $("#hint").textContent = "Asking the camera for its view…";
  try {
    const blob = await api("POST", `/api/cameras/${encodeURIComponent(state.camera)}/snapshot`);
    const img = $("#snap");
    const url = URL.createObjectURL(blob);
    img.onload = () => {
      state.size = [img.naturalWidth, img.naturalHeight];
      $("#view").style.aspectRatio = `${img.naturalWidth} / ${img.naturalHeight}`;
      $("#overlay").setAttribute("viewBox", `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
      draw();
    };
    img.src = url;
    $("#hint").replaceChildren(
      document.createTextNode(`The camera's view (people blurred by the camera). `),
      Object.assign(html("a", "Save image"), { href: url, download: `${state.camera}.jpg` }),
    );
  } catch (e) {
    $("#hint").textContent = `No snapshot: ${e.message}`;
  } finally {
    btn.disabled = false;
  }
}

// ---------- editing ----------
function remember() {
  state.history.push(JSON.stringify(state.doc));
  if (state.history.length > 100) state.history.shift();
}

function changed(validate = true) {
  $("#undo").disabled = state.history.length === 0;
  $("#delete").disabled = state.selected === null;
  draw();
  drawProps();
  fillAuditLines();
  if (validate) scheduleCheck();
  else check();
}

function scheduleCheck() {
  clearTimeout(state.checkTimer);
  state.checkTimer = setTimeout(check, 150);
}

async function check() {
  if (!state.doc) return;
  // Only the answer about the latest edit counts: on a slow link an older
  // check can come back after a newer one.
  const seq = (state.checkSeq = (state.checkSeq || 0) + 1);
  let problems, version;
  try {
    const r = await api("POST", `/api/check?running=${state.running}`, state.doc);
    [problems, version] = [r.problems, r.version];
  } catch (e) {
    problems = [{ message: e.message }];
  }
  if (seq !== state.checkSeq) return;
  state.problems = problems;
  if (version !== undefined) state.nextVersion = version;
  $("#apply").disabled = state.problems.length > 0;
  const ul = $("#problems");
  ul.replaceChildren(...state.problems.map((p) => html("li", p.message)));
  draw();
}

function setTool(tool) {
  state.tool = tool;
  state.draft = [];
  for (const b of document.querySelectorAll(".tool")) b.classList.toggle("active", b.dataset.tool === tool);
  const hints = {
    select: "Drag a corner to move it; tap an arrow to turn a line's \"in\" side.",
    line: "Tap where the count line starts, then where it ends. \"In\" is on the arrow's side.",
    zone: "Tap each corner of the zone, then the first corner again to close it.",
    shelf: "Tap two opposite corners of the shelf; its front zone is drawn below it.",
  };
  $("#hint").textContent = hints[tool];
  draw();
}

function toView(ev) {
  const svg = $("#overlay");
  const pt = svg.createSVGPoint();
  pt.x = ev.clientX;
  pt.y = ev.clientY;
  const p = pt.matrixTransform(svg.getScreenCTM().inverse());
  return [round(Math.min(1, Math.max(0, p.x / state.size[0]))), round(Math.min(1, Math.max(0, p.y / state.size[1])))];
}

function onPointerDown(ev) {
  if (!state.doc) return;
  const t = ev.target;
  const at = toView(ev);
  if (state.tool === "select") {
    if (t.dataset.handle) {
      const [kind, index, field, point] = t.dataset.handle.split(":");
      remember();
      state.drag = { kind, index: +index, field, point: +point };
      state.selected = { kind, index: +index };
      $("#overlay").setPointerCapture(ev.pointerId);
      ev.preventDefault();
      return;
    }
    if (t.dataset.arrow !== undefined) {
      remember();
      const line = state.doc.lines[+t.dataset.arrow];
      line.in_side = line.in_side === "left" ? "right" : "left";
      changed();
      return;
    }
    state.selected = t.dataset.element ? { kind: t.dataset.element.split(":")[0], index: +t.dataset.element.split(":")[1] } : null;
    changed(false);
    return;
  }
  ev.preventDefault();
  if (state.tool === "line") {
    state.draft.push(at);
    if (state.draft.length === 2) {
      remember();
      state.doc.lines.push({ name: uniqueName("line"), points: state.draft, in_side: "left" });
      state.selected = { kind: "lines", index: state.doc.lines.length - 1 };
      setTool("select");
      changed();
      return;
    }
  } else if (state.tool === "zone") {
    const first = state.draft[0];
    const near = first && Math.hypot((first[0] - at[0]) * state.size[0], (first[1] - at[1]) * state.size[1]) < 14;
    if (near && state.draft.length >= 3) {
      remember();
      const kind = $("#zone-kind").value;
      state.doc.zones.push({ name: uniqueName(kind), kind, polygon: state.draft });
      state.selected = { kind: "zones", index: state.doc.zones.length - 1 };
      setTool("select");
      changed();
      return;
    }
    state.draft.push(at);
  } else if (state.tool === "shelf") {
    state.draft.push(at);
    if (state.draft.length === 2) {
      const [[x0, y0], [x1, y1]] = state.draft;
      const [l, r, t0, b] = [Math.min(x0, x1), Math.max(x0, x1), Math.min(y0, y1), Math.max(y0, y1)];
      const fb = Math.min(1, b + Math.max(0.08, (b - t0) * 0.6));
      remember();
      state.doc.shelves = state.doc.shelves || [];
      state.doc.shelves.push({
        name: uniqueName("shelf"),
        polygon: [[l, t0], [r, t0], [r, b], [l, b]].map((p) => p.map(round)),
        grid: [2, 3],
        front: [[l, b], [r, b], [r, fb], [l, fb]].map((p) => p.map(round)),
      });
      state.selected = { kind: "shelves", index: state.doc.shelves.length - 1 };
      setTool("select");
      changed();
      return;
    }
  }
  draw();
}

function onPointerMove(ev) {
  if (!state.drag) return;
  const d = state.drag;
  const e = state.doc[d.kind][d.index];
  e[d.field][d.point] = toView(ev);
  draw();
}

function onPointerUp() {
  if (!state.drag) return;
  state.drag = null;
  changed();
}

function undo() {
  const prev = state.history.pop();
  if (prev === undefined) return;
  state.doc = JSON.parse(prev);
  state.selected = null;
  changed();
}

function deleteSelected() {
  if (!state.selected) return;
  remember();
  state.doc[state.selected.kind].splice(state.selected.index, 1);
  state.selected = null;
  changed();
}

function drawProps() {
  const box = $("#props");
  box.replaceChildren();
  const s = state.selected;
  if (!s || !state.doc[s.kind] || !state.doc[s.kind][s.index]) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const e = state.doc[s.kind][s.index];
  const name = Object.assign(document.createElement("input"), { value: e.name, ariaLabel: "name" });
  name.addEventListener("change", () => {
    remember();
    e.name = name.value;
    changed();
  });
  box.append(html("span", s.kind.replace(/s$/, "")), name);
  if (s.kind === "lines") {
    const flip = html("button", `"in" is ${e.in_side}: turn`);
    flip.type = "button";
    flip.addEventListener("click", () => {
      remember();
      e.in_side = e.in_side === "left" ? "right" : "left";
      changed();
    });
    box.append(flip);
  }
  if (s.kind === "zones") {
    const kind = $("#zone-kind").cloneNode(true);
    kind.removeAttribute("id");
    kind.value = e.kind || "area";
    kind.addEventListener("change", () => {
      remember();
      e.kind = kind.value;
      changed();
    });
    box.append(kind);
  }
}

// ---------- drawing ----------
function draw() {
  const svg = $("#overlay");
  svg.replaceChildren();
  if (!state.doc) return;
  const unit = state.size[0] / 640;
  const bad = new Set(state.problems.filter((p) => p.kind).map((p) => `${p.kind}:${p.index}`));
  const isSel = (kind, i) => state.selected && state.selected.kind === kind && state.selected.index === i;
  (state.doc.zones || []).forEach((z, i) => {
    const cls = `zone ${z.kind || "area"}${isSel("zones", i) ? " selected" : ""}${bad.has(`zones:${i}`) ? " bad" : ""}`;
    el("polygon", { points: z.polygon.map((p) => px(p).join(",")).join(" "), class: cls, "data-element": `zones:${i}` }, svg);
    label(svg, z.polygon[0], z.name, unit);
  });
  (state.doc.shelves || []).forEach((s, i) => {
    const cls = `shelf-box${isSel("shelves", i) ? " selected" : ""}${bad.has(`shelves:${i}`) ? " bad" : ""}`;
    el("polygon", { points: s.polygon.map((p) => px(p).join(",")).join(" "), class: cls, "data-element": `shelves:${i}` }, svg);
    if (s.front) el("polygon", { points: s.front.map((p) => px(p).join(",")).join(" "), class: "front" }, svg);
    if (s.grid && s.polygon.length === 4) drawGrid(svg, s.polygon, s.grid);
    label(svg, s.polygon[0], s.name, unit);
  });
  (state.doc.lines || []).forEach((l, i) => {
    const cls = `line${isSel("lines", i) ? " selected" : ""}${bad.has(`lines:${i}`) ? " bad" : ""}`;
    el("polyline", { points: l.points.map((p) => px(p).join(",")).join(" "), class: cls, "stroke-width": 3 * unit, "data-element": `lines:${i}` }, svg);
    drawArrow(svg, l, i, unit);
    label(svg, l.points[0], l.name, unit);
  });
  if (state.tool === "select") {
    for (const kind of ["lines", "zones", "shelves"]) {
      (state.doc[kind] || []).forEach((e, i) => {
        for (const field of kind === "shelves" ? ["polygon", "front"] : [kind === "lines" ? "points" : "polygon"]) {
          (e[field] || []).forEach((p, j) => {
            const [x, y] = px(p);
            el("circle", { cx: x, cy: y, r: 6 * unit, class: "handle", "data-handle": `${kind}:${i}:${field}:${j}` }, svg);
          });
        }
      });
    }
  }
  if (state.draft.length) {
    el("polyline", { points: state.draft.map((p) => px(p).join(",")).join(" "), class: "draft" }, svg);
    for (const p of state.draft) {
      const [x, y] = px(p);
      el("circle", { cx: x, cy: y, r: 5 * unit, class: "handle" }, svg);
    }
  }
  state.problems.filter((p) => p.at).forEach((p, k) => {
    const g = el("g", { class: "problem-marker", "data-problem": k }, svg);
    const [x, y] = px(p.at);
    el("circle", { cx: x, cy: y, r: 7 * unit }, g);
    // The camera's message, broken at its colons so that it stays on the
    // view; on the side of the marker with more room.
    const left = x > state.size[0] / 2;
    const t = el("text", { x: left ? x - 12 * unit : x + 12 * unit, y: y - 4 * unit, "font-size": 13 * unit, "text-anchor": left ? "end" : "start" }, g);
    p.message.split(/(?<=: )/).forEach((part, i) => {
      const span = el("tspan", { x: left ? x - 12 * unit : x + 12 * unit, dy: i === 0 ? 0 : 15 * unit }, t);
      span.textContent = part;
    });
  });
}

function label(svg, p, text, unit) {
  const [x, y] = px(p);
  const t = el("text", { x: x + 4 * unit, y: y - 6 * unit, class: "label", "font-size": 14 * unit }, svg);
  t.textContent = text;
}

function drawArrow(svg, line, i, unit) {
  const [a, b] = [px(line.points[0]), px(line.points[1])];
  const [mx, my] = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
  const len = Math.hypot(b[0] - a[0], b[1] - a[1]) || 1;
  const [dx, dy] = [(b[0] - a[0]) / len, (b[1] - a[1]) / len];
  // "left" of a walk from the first point to the second, on screen.
  const s = line.in_side === "right" ? -1 : 1;
  const [nx, ny] = [s * dy, -s * dx];
  const L = 28 * unit, W = 9 * unit;
  const tip = [mx + nx * L, my + ny * L];
  const pts = [[mx + dx * W, my + dy * W], tip, [mx - dx * W, my - dy * W]];
  el("polygon", { points: pts.map((p) => p.join(",")).join(" "), class: "arrow", "data-arrow": i }, svg).appendChild(
    Object.assign(document.createElementNS(SVG, "title"), { textContent: `"in" side of ${line.name}: tap to turn` }),
  );
  const t = el("text", { x: tip[0] + nx * 6 * unit - 6 * unit, y: tip[1] + ny * 6 * unit + 5 * unit, class: "label", "font-size": 13 * unit }, svg);
  t.textContent = "in";
}

function drawGrid(svg, q, [rows, cols]) {
  const lerp = (p, r, t) => [p[0] + (r[0] - p[0]) * t, p[1] + (r[1] - p[1]) * t];
  for (let c = 1; c < cols; c++) {
    const [a, b] = [lerp(q[0], q[1], c / cols), lerp(q[3], q[2], c / cols)].map(px);
    el("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1], class: "facing" }, svg);
  }
  for (let r = 1; r < rows; r++) {
    const [a, b] = [lerp(q[0], q[3], r / rows), lerp(q[1], q[2], r / rows)].map(px);
    el("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1], class: "facing" }, svg);
  }
}

// ---------- apply ----------
async function apply() {
  const out = $("#result");
  out.className = "";
  out.textContent = "Sending to the camera…";
  $("#apply").disabled = true;
  try {
    const r = await api("POST", `/api/cameras/${encodeURIComponent(state.camera)}/apply`, state.doc);
    if (r.accepted) {
      out.className = "ok";
      out.textContent = `The camera accepted version ${r.version}${r.confirmed ? " and runs it" : ""}.`;
      state.running = r.result.running_version;
      $("#running-version").textContent = state.running;
      state.history = [];
    } else {
      out.className = "bad";
      out.replaceChildren(html("span", `The camera rejected version ${r.version}:`), ...(r.result.problems || []).map((p) => html("div", p)));
    }
  } catch (e) {
    out.className = "bad";
    out.textContent = e.message;
  }
  changed();
}

// ---------- live ----------
function openLive() {
  if (state.live) state.live.close();
  const es = new EventSource(`/api/cameras/${encodeURIComponent(state.camera)}/live`);
  es.onmessage = (m) => {
    const { leaf, payload } = JSON.parse(m.data);
    if (leaf === "events" && payload.event === "crossing") {
      const li = html("li", `${new Date(payload.time).toLocaleTimeString()} · ${payload.direction} · ${payload.line}`);
      li.className = payload.direction;
      $("#crossings").prepend(li);
    } else if (leaf === "bins") {
      state.bins.set(payload.start, payload);
      drawChart();
    } else if (leaf === "config/state" && payload.version != null) {
      $("#running-version").textContent = payload.version;
    } else if (leaf === "shelves/reference/result") {
      $("#shelf-ref").textContent = `${payload.state}${payload.reason ? `: ${payload.reason}` : ""}`;
    }
  };
  state.live = es;
}

function drawChart() {
  const svg = $("#chart");
  svg.replaceChildren();
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  const bins = [...state.bins.values()].filter((b) => new Date(b.start) >= midnight).sort((a, b) => a.start.localeCompare(b.start));
  const max = Math.max(1, ...bins.map((b) => Math.max(b.entries, b.exits)));
  const w = Math.max(4, Math.min(30, 580 / Math.max(1, bins.length) / 2));
  bins.forEach((b, i) => {
    const x = 10 + i * w * 2.2;
    const hi = (b.entries / max) * 100, ho = (b.exits / max) * 100;
    el("rect", { x, y: 110 - hi, width: w, height: hi, class: "in" }, svg).appendChild(
      Object.assign(document.createElementNS(SVG, "title"), { textContent: `${b.start}: ${b.entries} in` }),
    );
    el("rect", { x: x + w, y: 110 - ho, width: w, height: ho, class: "out" }, svg).appendChild(
      Object.assign(document.createElementNS(SVG, "title"), { textContent: `${b.start}: ${b.exits} out` }),
    );
  });
  el("line", { x1: 5, x2: 595, y1: 110, y2: 110, stroke: "#999" }, svg);
  if (bins.length === 0) {
    const t = el("text", { x: 300, y: 60, "text-anchor": "middle", fill: "#777", "font-size": 14 }, svg);
    t.textContent = "No bin closed yet today: bins close every bin_minutes.";
  }
}

async function shelfReference() {
  $("#shelf-ref").textContent = "requested…";
  try {
    await api("POST", `/api/cameras/${encodeURIComponent(state.camera)}/shelf-reference`, { id: `camctl-${Date.now()}` });
  } catch (e) {
    $("#shelf-ref").textContent = e.message;
  }
}

// ---------- audit ----------
function fillAuditLines() {
  const sel = $("#audit-line");
  const keep = sel.value;
  sel.replaceChildren(Object.assign(html("option", "every line"), { value: "" }));
  for (const l of (state.doc && state.doc.lines) || []) sel.appendChild(Object.assign(html("option", l.name), { value: l.name }));
  sel.value = keep;
}

async function startAudit() {
  const minutes = Number($("#audit-minutes").value);
  const out = $("#audit-result");
  try {
    await api("POST", `/api/cameras/${encodeURIComponent(state.camera)}/audit`, { seconds: minutes * 60, line: $("#audit-line").value || null });
  } catch (e) {
    out.textContent = e.message;
    return;
  }
  for (const b of document.querySelectorAll(".tap")) {
    b.disabled = false;
    b.querySelector("b").textContent = "0";
  }
  $("#audit-start").disabled = true;
  state.audit = setInterval(pollAudit, 1000);
  pollAudit();
}

async function tap(kind) {
  try {
    const r = await api("POST", `/api/cameras/${encodeURIComponent(state.camera)}/audit/tap`, { kind });
    document.querySelector(`.tap[data-kind="${kind}"] b`).textContent = r.count;
  } catch (e) {
    $("#audit-result").textContent = e.message;
  }
}

async function pollAudit() {
  const out = $("#audit-result");
  let r;
  try {
    r = await api("GET", `/api/cameras/${encodeURIComponent(state.camera)}/audit`);
  } catch (e) {
    out.textContent = e.message;
    return;
  }
  if (r.state === "running") {
    out.textContent = `${Math.ceil(r.remaining_s)} s left`;
    return;
  }
  if (r.state !== "done") return;
  clearInterval(state.audit);
  $("#audit-start").disabled = false;
  for (const b of document.querySelectorAll(".tap")) b.disabled = true;
  const rep = r.report;
  const table = html("table");
  table.appendChild(html("tr")).append(...["", "tapped", "counted", "missed", "extra", "accuracy"].map((h) => html("th", h)));
  for (const d of rep.directions) {
    table.appendChild(html("tr")).append(
      ...[d.direction, d.truth, d.counted, d.missed, d.extra, d.accuracy == null ? "–" : `${(d.accuracy * 100).toFixed(1)} %`].map((v) => html("td", String(v))),
    );
  }
  const link = Object.assign(html("a", "Open the report (save it with the install)"), {
    href: `/api/cameras/${encodeURIComponent(state.camera)}/audit/report.html`,
    target: "_blank",
  });
  out.replaceChildren(html("p", rep.verdict, `verdict ${rep.pass ? "pass" : "fail"}`), table, link);
}

// ---------- wiring ----------
function init() {
  api("GET", "/api/info").then((i) => ($("#where").textContent = `store ${i.store} on ${i.broker}`)).catch(() => {});
  refreshCameras();
  setInterval(refreshCameras, 2000);
  $("#snapshot").addEventListener("click", snapshot);
  for (const b of document.querySelectorAll(".tool")) b.addEventListener("click", () => setTool(b.dataset.tool));
  $("#undo").addEventListener("click", undo);
  $("#delete").addEventListener("click", deleteSelected);
  $("#apply").addEventListener("click", apply);
  $("#shelf-reference").addEventListener("click", shelfReference);
  $("#audit-start").addEventListener("click", startAudit);
  for (const b of document.querySelectorAll(".tap")) b.addEventListener("click", () => tap(b.dataset.kind));
  const svg = $("#overlay");
  svg.addEventListener("pointerdown", onPointerDown);
  svg.addEventListener("pointermove", onPointerMove);
  svg.addEventListener("pointerup", onPointerUp);
  svg.addEventListener("pointercancel", onPointerUp);
  document.addEventListener("keydown", (ev) => {
    if (ev.target.tagName === "INPUT") return;
    if (ev.key === "Escape") setTool("select");
    if ((ev.ctrlKey || ev.metaKey) && ev.key === "z") undo();
    if (state.audit && !document.querySelector(".tap").disabled) {
      const k = { i: "in", o: "out", p: "passer" }[ev.key];
      if (k) tap(k);
    }
  });
}

init();
