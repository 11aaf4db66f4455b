// Lumen console page. Plain JavaScript, no framework: log in, open one WebSocket, draw the two
// planes with their overlays, show robot and safety state, and send commands. The server checks
// every command again (lease, role, rate, ranges); this page only makes them easy to give.
"use strict";

const $ = (id) => document.getElementById(id);
const ui = {
  ws: null, hello: null, state: null, seq: 0,
  // Deadman sources: pointer on the button, Space, a gamepad button. Held while any is.
  holds: { pointer: false, key: false, pad: false },
  held: false, timer: null,
  jog: null,          // joint jog demand (array) while a jog button is down
  tip: null,          // tip jog direction while a tip button is down
  hand: [0, 0, 0],    // hand displacement of the current tip-jog stroke (mm)
  frames: [null, null], tips: [null, null],
  clutch: false,      // engaged: dragging on an image moves the tip
  drag: null,         // the drag of the current clutched stroke
  bench: new URLSearchParams(location.search).has("bench"),
};

// ---- login -------------------------------------------------------------------------------
async function start() {
  const me = await fetch("/api/me", { credentials: "same-origin" });
  if (me.ok) { showApp(await me.json()); } else { $("login").hidden = false; $("login-user").focus(); }
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("login-error").textContent = "";
  const r = await fetch("/api/login", {
    method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: $("login-user").value, password: $("login-password").value }),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) { $("login-error").textContent = body.error || "login failed"; return; }
  $("login-password").value = "";
  $("login").hidden = true;
  showApp(body);
});

$("logout").addEventListener("click", async () => {
  await fetch("/api/logout", { method: "POST", credentials: "same-origin" });
  location.reload();
});

function showApp(me) {
  $("app").hidden = false;
  $("who").textContent = `${me.user} (${me.role})`;
  $("lease-override").hidden = me.role !== "supervisor";
  connect();
}

// ---- socket ------------------------------------------------------------------------------
function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  ui.ws = ws;
  ws.onopen = () => setPill("conn", "connected", "ok");
  ws.onclose = () => {
    setPill("conn", "disconnected", "bad");
    setHeld(false);
    note("connection closed", false);
  };
  ws.onmessage = (m) => {
    if (typeof m.data !== "string") { frame(m.data); return; }
    const msg = JSON.parse(m.data);
    if (msg.type === "hello") hello(msg);
    else if (msg.type === "state") state(msg);
    else if (msg.type === "reply") note(`${msg.command}: ${msg.text}`, msg.ok);
  };
}

function send(text) {
  if (ui.ws && ui.ws.readyState === WebSocket.OPEN) { ui.ws.send(text); return true; }
  return false;
}

function note(text, ok) {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  li.className = ok ? "ok" : "refused";
  $("messages").prepend(li);
  while ($("messages").children.length > 30) $("messages").lastChild.remove();
}

function setPill(id, text, cls) { const e = $(id); e.textContent = text; e.className = "pill " + (cls || ""); }

// ---- description -------------------------------------------------------------------------
function hello(h) {
  ui.hello = h;
  $("robot").textContent = h.robot;
  h.planes.forEach((p, i) => {
    const c = $(`plane-${i}`);
    if (!c) return;
    c.width = p.width; c.height = p.height;
    $(`caption-${i}`).textContent = `${p.name} — click a vessel to set a target`;
  });
  const jog = $("jog");
  jog.innerHTML = "";
  h.axes.forEach((name, i) => {
    const tr = jog.insertRow();
    tr.insertCell().textContent = name;
    for (const sign of [-1, 1]) {
      const b = document.createElement("button");
      b.id = `jog-${i}-${sign < 0 ? "minus" : "plus"}`;
      b.textContent = sign < 0 ? "−" : "+";
      holdButton(b, () => { ui.jog = h.axes.map((_, k) => (k === i ? sign : 0)); send("mode jog"); }, () => { ui.jog = null; });
      tr.insertCell().appendChild(b);
    }
  });
  const sel = $("targets");
  sel.innerHTML = "";
  h.targets.forEach((t) => { const o = document.createElement("option"); o.value = o.textContent = t.name; sel.appendChild(o); });
  const tb = $("axes").tBodies[0];
  tb.innerHTML = "";
  h.axes.forEach(() => { const tr = tb.insertRow(); for (let k = 0; k < 5; k++) tr.insertCell(); });
  if (ui.bench) benchStart();
}

// ---- state -------------------------------------------------------------------------------
function state(s) {
  ui.state = s;
  setPill("mode", s.mode, s.mode === "jog" || s.mode === "tip servo" ? "ok" : s.mode === "idle" ? "bad" : "");
  $("hold-reason").textContent = s.holdReason === "none" ? "" : `(${s.holdReason})`;
  const rows = $("axes").tBodies[0].rows;
  s.axes.forEach((a, i) => {
    if (!rows[i]) return;
    const c = rows[i].cells;
    c[0].textContent = a.name; c[1].textContent = a.position.toFixed(2); c[2].textContent = a.velocity.toFixed(2);
    c[3].textContent = a.current.toFixed(2); c[4].textContent = `${a.min.toFixed(1)} … ${a.max.toFixed(1)}`;
    rows[i].className = a.position <= a.min + 1e-6 || a.position >= a.max - 1e-6 ? "limit" : "";
  });
  $("force").textContent = s.force.toFixed(2);
  $("tip").textContent = s.estimate.map((v) => v.toFixed(1)).join(", ");
  $("tip").dataset.y = s.estimate[1];
  $("health").textContent = s.health;
  $("cycle").textContent = s.cycle;
  $("lateness").textContent = s.timing.latenessP99Us.toFixed(0);
  $("overruns").textContent = s.timing.overruns;
  const ms = (v) => (v == null ? "–" : `${v.toFixed(1)} ms`);
  $("lat-intent").textContent = `p50 ${ms(s.latency.intentP50Ms)} p99 ${ms(s.latency.intentP99Ms)}`;
  $("lat-frame").textContent = `p50 ${ms(s.latency.frameP50Ms)} p99 ${ms(s.latency.frameP99Ms)}`;
  setPill("link", `${s.link.kind} ${s.link.up ? "up" : "down"}`, s.link.up ? "ok" : "bad");
  setPill("monitor", s.safety.monitorAlive ? "alive" : "silent", s.safety.monitorAlive ? "ok" : "bad");
  setPill("power", s.safety.powerPermitted ? "permitted" : "off", s.safety.powerPermitted ? "ok" : "bad");
  const deadmanHold = s.safety.faults.length === 0 && s.safety.stopCategory === 2;
  setPill("stop-category", s.safety.stopCategory == null ? "none" : `category ${s.safety.stopCategory}${deadmanHold ? " (deadman)" : ""}`,
    s.safety.stopCategory == null ? "" : deadmanHold ? "warn" : "bad");
  images(s);
  const faults = $("faults");
  faults.innerHTML = "";
  s.safety.faults.forEach((f) => { const li = document.createElement("li"); li.textContent = f; faults.appendChild(li); });
  hazards(s.safety);
  const c = s.console;
  $("lease-status").textContent = c.holdsLease ? "you hold control" : c.leaseHolder ? `control: ${c.leaseHolder}` : "control: free";
  $("lease-status").dataset.holds = c.holdsLease;
  $("lease-take").disabled = c.holdsLease || c.role === "observer";
  $("lease-release").disabled = !c.holdsLease;
  // The server's view of the deadman wins: a late heartbeat released it there.
  $("deadman").classList.toggle("active", c.deadmanHeld);
  $("deadman").dataset.server = c.deadmanHeld;
  for (let i = 0; i < ui.frames.length; i++) if (ui.frames[i]) draw(i);
}

// How old the newest image the estimate fused is, against the age above which the monitor
// stops image-guided motion (image_stale): a pipeline too slow for it (a loaded machine, a debug
// build) is said here, before the monitor stops the robot for it.
function images(s) {
  const e = $("image-age"), limit = ui.hello ? ui.hello.imageMaxAgeMs : null;
  if (s.imageAgeMs == null) { e.textContent = "no image fused yet"; e.className = "pill"; $("image-note").textContent = ""; return; }
  e.textContent = `${s.imageAgeMs.toFixed(0)} ms` + (limit ? ` (limit ${limit.toFixed(0)} ms)` : "");
  const over = limit && s.imageAgeMs > limit, near = limit && s.imageAgeMs > limit / 2;
  e.className = "pill " + (over ? "bad" : near ? "warn" : "ok");
  const debug = ui.hello && ui.hello.build === "debug" ? " This is a debug build: its tracking is several times slower than a release build's." : "";
  $("image-note").textContent = over || near
    ? `Images arrive too late for image-guided motion: above ${limit.toFixed(0)} ms the monitor stops navigation (image_stale).${debug}`
    : "";
}

// The hazard row: what stops the robot, in words, where it cannot be missed. A category-2 stop
// with no latched fault is the deadman's: letting go is the normal way to stop, it lasts while
// the deadman is released and ends when it is held again, so it is shown as a hold, not a hazard.
function hazards(safety) {
  const row = $("hazards"), list = $("hazard-list");
  const deadmanHold = safety.faults.length === 0 && safety.stopCategory === 2;
  const latched = safety.faults.length > 0 || (safety.stopCategory != null && !deadmanHold);
  row.classList.toggle("active", latched);
  row.classList.toggle("holding", deadmanHold);
  $("hazard-summary").textContent = latched
    ? `${safety.stopCategory == null ? "fault latched" : `category-${safety.stopCategory} stop`} · ${safety.faults.length} latched fault${safety.faults.length === 1 ? "" : "s"} — acknowledge once the cause is gone`
    : deadmanHold
      ? "holding: the deadman is released (category-2 stop, power on) — hold it to move; nothing to acknowledge"
      : `no latched faults · monitor ${safety.monitorAlive ? "alive" : "silent"} · power ${safety.powerPermitted ? "permitted" : "off"}`;
  const text = safety.faults.join("\n");
  if (list.dataset.text !== text) {
    list.dataset.text = text;
    list.innerHTML = "";
    safety.faults.forEach((f) => { const li = document.createElement("li"); li.textContent = f; list.appendChild(li); });
  }
  $("hazard-ack").hidden = !latched;
}

// ---- frames and overlays -----------------------------------------------------------------
function frame(buf) {
  const dv = new DataView(buf);
  const n = dv.getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n)));
  const blob = new Blob([new Uint8Array(buf, 4 + n)], { type: "image/jpeg" });
  createImageBitmap(blob).then((bmp) => {
    if (ui.frames[header.plane]) ui.frames[header.plane].close();
    ui.frames[header.plane] = bmp;
    ui.tips[header.plane] = header.tip;
    draw(header.plane);
    send(`shown ${header.plane} ${header.index}`);
  });
}

function project(P, p) {
  const m = P.projection;
  const w = m[8] * p[0] + m[9] * p[1] + m[10] * p[2] + m[11];
  return [(m[0] * p[0] + m[1] * p[1] + m[2] * p[2] + m[3]) / w, (m[4] * p[0] + m[5] * p[1] + m[6] * p[2] + m[7]) / w];
}

function polyline(g, P, points) {
  g.beginPath();
  points.forEach((p, k) => { const q = project(P, p); k ? g.lineTo(q[0], q[1]) : g.moveTo(q[0], q[1]); });
  g.stroke();
}

// Line widths in image pixels that look the same on any canvas size.
function px(c, cssPixels) { const r = c.getBoundingClientRect(); return r.width > 0 ? (cssPixels * c.width) / r.width : cssPixels; }

function draw(i) {
  const c = $(`plane-${i}`), g = c.getContext("2d"), bmp = ui.frames[i];
  if (!bmp || !ui.hello) return;
  const P = ui.hello.planes[i];
  g.drawImage(bmp, 0, 0, c.width, c.height);
  g.lineCap = "round"; g.lineJoin = "round";
  // The roadmap: every vessel, wide and faint, behind everything else.
  g.lineWidth = px(c, 5);
  g.strokeStyle = "rgba(80,170,255,0.28)";
  for (const line of ui.hello.roadmap) polyline(g, P, line.points);
  // The planned route through it: narrow, dashed, in its own colour.
  if (ui.hello.route && ui.hello.route.length > 1) {
    g.lineWidth = px(c, 2);
    g.setLineDash([px(c, 6), px(c, 4)]);
    g.strokeStyle = "#ffab40";
    polyline(g, P, ui.hello.route);
    g.setLineDash([]);
  }
  const s = ui.state;
  if (s && s.target) {
    const q = project(P, s.target);
    g.strokeStyle = "#ffd600"; g.lineWidth = 2;
    g.beginPath(); g.arc(q[0], q[1], 7, 0, 2 * Math.PI); g.moveTo(q[0] - 10, q[1]); g.lineTo(q[0] + 10, q[1]);
    g.moveTo(q[0], q[1] - 10); g.lineTo(q[0], q[1] + 10); g.stroke();
  }
  if (s) {
    const q = project(P, s.estimate);
    g.strokeStyle = "#00e676"; g.lineWidth = 2;
    g.beginPath(); g.moveTo(q[0] - 6, q[1] - 6); g.lineTo(q[0] + 6, q[1] + 6); g.moveTo(q[0] + 6, q[1] - 6); g.lineTo(q[0] - 6, q[1] + 6); g.stroke();
  }
  const t = ui.tips[i];
  if (t) { g.strokeStyle = "#ff4081"; g.lineWidth = 1.5; g.beginPath(); g.arc(t[0], t[1], 5, 0, 2 * Math.PI); g.stroke(); }
}

function imagePoint(e) {
  const c = e.currentTarget, r = c.getBoundingClientRect();
  return [((e.clientX - r.left) * c.width) / r.width, ((e.clientY - r.top) * c.height) / r.height];
}

// A drag of (du, dv) pixels as a hand displacement in mm: the smallest 3D motion that moves the
// projection by that much (exact for the orthographic planes, first order for a C-arm's).
function handFromDrag(P, du, dv) {
  const m = P.projection, r1 = [m[0], m[1], m[2]], r2 = [m[4], m[5], m[6]];
  const n1 = r1.reduce((a, v) => a + v * v, 0) || 1, n2 = r2.reduce((a, v) => a + v * v, 0) || 1;
  return [0, 1, 2].map((k) => Math.max(-20, Math.min(20, (du * r1[k]) / n1 + (dv * r2[k]) / n2)));
}

for (const i of [0, 1]) {
  const canvas = $(`plane-${i}`);
  // Clutch engaged: a drag moves the tip by the hand's motion. Otherwise a click sets a target.
  canvas.addEventListener("pointerdown", (e) => {
    if (!ui.clutch) return;
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    ui.drag = { plane: i, start: imagePoint(e) };
    ui.hand = [0, 0, 0];
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!ui.drag || ui.drag.plane !== i || !ui.hello) return;
    const p = imagePoint(e);
    ui.hand = handFromDrag(ui.hello.planes[i], p[0] - ui.drag.start[0], p[1] - ui.drag.start[1]);
  });
  const endDrag = () => { if (ui.drag) { ui.drag = null; endStroke(); } };
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);
  canvas.addEventListener("click", (e) => {
    if (ui.clutch) return;
    const p = imagePoint(e);
    send(`tp ${i} ${p[0].toFixed(1)} ${p[1].toFixed(1)}`);
  });
}
$("clutch").addEventListener("click", () => {
  ui.clutch = !ui.clutch;
  $("clutch").classList.toggle("active", ui.clutch);
  $("clutch").setAttribute("aria-pressed", ui.clutch);
});
$("target-go").addEventListener("click", () => { if ($("targets").value) send(`tn ${$("targets").value}`); });

// ---- deadman, jog, clutch ----------------------------------------------------------------
function holdButton(b, down, up) {
  b.addEventListener("pointerdown", (e) => { e.preventDefault(); b.setPointerCapture(e.pointerId); b.classList.add("active"); down(); });
  const end = () => { if (b.classList.contains("active")) { b.classList.remove("active"); up(); } };
  b.addEventListener("pointerup", end);
  b.addEventListener("pointercancel", end);
  b.addEventListener("lostpointercapture", end);
}

function setHeld(h) {
  if (h === ui.held) return;
  ui.held = h;
  if (h) {
    beat();
    ui.timer = setInterval(beat, ui.hello ? ui.hello.heartbeatMs : 50);
  } else {
    clearInterval(ui.timer);
    ui.timer = null;
    send("release");
    endStroke();
  }
}

function updateHeld() { setHeld(ui.holds.pointer || ui.holds.key || ui.holds.pad); }

// One heartbeat: the deadman, then whatever motion is being asked for.
function beat() {
  // Without the lease there is nothing to keep alive (the server would refuse it anyway).
  if (!ui.state || !ui.state.console.holdsLease) return;
  send(`hb ${++ui.seq}`);
  // A jog button still held after the robot dropped to hold (a late heartbeat released the
  // deadman on the server) asks for jog again: the operator is still holding both.
  if (ui.jog && ui.state && ui.state.mode === "hold") send("mode jog");
  if (ui.jog) send(`jj ${ui.jog.join(" ")}`);
  if (ui.tip) {
    const step = ((ui.hello ? ui.hello.heartbeatMs : 50) / 1000) * 10; // 10 mm/s of hand motion
    ui.hand = ui.hand.map((v, k) => Math.max(-20, Math.min(20, v + ui.tip[k] * step)));
  }
  if (ui.tip || ui.drag) send(`tj ${ui.hand.map((v) => v.toFixed(2)).join(" ")} 1`);
}

function endStroke() {
  if (ui.hand.some((v) => v !== 0)) send("tj 0 0 0 0");
  ui.hand = [0, 0, 0];
}

holdButton($("deadman"), () => { ui.holds.pointer = true; updateHeld(); }, () => { ui.holds.pointer = false; updateHeld(); });
// Tip jog buttons move the tip in the first plane's image (right, down in pixels) or along its
// beam (depth): the direction in the patient frame comes from that plane's projection.
function tipDirection(spec) {
  const [du, dv, depth] = spec.split(",").map(Number);
  if (!ui.hello || !ui.hello.planes.length) return [du, -dv, depth];
  const P = ui.hello.planes[0], m = P.projection;
  let d;
  if (depth) {
    const r1 = [m[0], m[1], m[2]], r2 = [m[4], m[5], m[6]];
    d = [r1[1] * r2[2] - r1[2] * r2[1], r1[2] * r2[0] - r1[0] * r2[2], r1[0] * r2[1] - r1[1] * r2[0]].map((v) => -v * depth);
  } else {
    d = handFromDrag(P, du, dv);
  }
  const n = Math.hypot(...d) || 1;
  return d.map((v) => v / n);
}
document.querySelectorAll("[data-tip]").forEach((b) => {
  holdButton(b, () => { ui.tip = tipDirection(b.dataset.tip); ui.hand = [0, 0, 0]; },
    () => { ui.tip = null; endStroke(); });
});

$("scale").addEventListener("input", () => {
  const v = Number($("scale").value);
  $("scale-value").textContent = v.toFixed(2);
  send(`scale ${v}`);
});

$("lease-take").addEventListener("click", () => { send("lease take"); send(`scale ${$("scale").value}`); });
$("lease-release").addEventListener("click", () => send("lease release"));
$("lease-override").addEventListener("click", () => { if (confirm("Take control from the current operator? This is logged.")) send("lease override"); });
$("ack").addEventListener("click", () => send("ack"));
$("hazard-ack").addEventListener("click", () => send("ack"));

// ---- stop: always available, for every role ---------------------------------------------
function stop() {
  setHeld(false);
  ui.holds = { pointer: false, key: false, pad: false };
  // Without a socket the stop still goes, over HTTP.
  if (!send("stop")) fetch("/api/stop", { method: "POST", credentials: "same-origin" });
  note("STOP sent", true);
}
$("stop").addEventListener("pointerdown", (e) => { e.preventDefault(); stop(); });

document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" || e.key === "Pause") { e.preventDefault(); stop(); return; }
  if (e.code === "Space" && e.target.tagName !== "INPUT") { e.preventDefault(); if (!e.repeat) { ui.holds.key = true; updateHeld(); } }
});
document.addEventListener("keyup", (e) => {
  if (e.code === "Space") { ui.holds.key = false; updateHeld(); }
});
// A hidden page cannot be watched: it lets go.
document.addEventListener("visibilitychange", () => {
  if (document.hidden) { ui.holds = { pointer: false, key: false, pad: false }; setHeld(false); send("visible 0"); }
  else send("visible 1");
});
window.addEventListener("blur", () => { ui.holds.key = false; updateHeld(); });

// Gamepad: button 0 (A / cross) is the deadman, button 1 (B / circle) stops.
function pollPads() {
  const pads = navigator.getGamepads ? navigator.getGamepads() : [];
  let dead = false;
  for (const p of pads) {
    if (!p) continue;
    if (p.buttons[0] && p.buttons[0].pressed) dead = true;
    if (p.buttons[1] && p.buttons[1].pressed && !ui.padStop) stop();
    ui.padStop = !!(p.buttons[1] && p.buttons[1].pressed);
  }
  if (dead !== ui.holds.pad) { ui.holds.pad = dead; updateHeld(); }
  requestAnimationFrame(pollPads);
}
requestAnimationFrame(pollPads);

// ---- bench: the headless client of `lumen bench console` ----------------------------------
function benchStart() {
  send("lease take");
  send("scale 1");
  let dir = 1;
  ui.holds.key = true;
  updateHeld();
  // The live runtime's drives get power once the monitor's start-up latch is acknowledged: a
  // latched fault is acknowledged whenever one shows (the deadman's own stop ends by holding it
  // again), and jog asked for again whenever the robot holds, while held.
  setInterval(() => {
    if (!ui.state) return;
    const s = ui.state.safety;
    if (s.faults.length > 0 || (s.stopCategory != null && s.stopCategory !== 2) || !s.powerPermitted) send("ack");
    else if (ui.held && ui.state.mode === "hold") send("mode jog");
  }, 300);
  ui.jog = ui.hello.axes.map((_, k) => (k === 0 ? dir : 0));
  setInterval(() => { dir = -dir; ui.jog = ui.hello.axes.map((_, k) => (k === 0 ? dir : 0)); }, 2000);
  // Every 4 s the deadman is let go for half a second (release → at rest is measured), then jog resumes.
  setInterval(() => {
    ui.holds.key = false; updateHeld();
    setTimeout(() => { ui.holds.key = true; updateHeld(); }, 500);
  }, 4000);
}

start();
