// hoplab portal, participant page (and shared helpers for the instructor page).
// The token lives in the link's fragment: it is never sent as a cookie or in a URL, only in the
// Authorization header (API) and as a websocket subprotocol, so other sites cannot use it.
"use strict";

const TOKEN = decodeURIComponent(location.hash.slice(1));
const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props);
  for (const c of children) e.append(c);
  return e;
}

function say(text) {
  $("status").textContent = text;
}

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: "Bearer " + TOKEN } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const data = (r.headers.get("Content-Type") || "").includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error((data && data.error) || r.statusText);
  return data;
}

// One terminal pane: xterm.js on a websocket; `path` is /ws/terminal/ID or /ws/watch/P/ID.
function terminalPane(container, title, path, readonly, onClose) {
  const screen = el("div", { className: "screen" });
  const close = el("button", { type: "button", textContent: readonly ? "stop watching" : "close" });
  const pane = el("div", { className: "term" }, el("div", { className: "title" }, el("span", { textContent: title }), close), screen);
  container.append(pane);
  const term = new Terminal({ rendererType: "dom", disableStdin: readonly, fontSize: 13, scrollback: 5000 });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(screen);
  fit.fit();
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(proto + "//" + location.host + path, ["hoplab", "tok." + TOKEN]);
  const send = (m) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(m));
  ws.onopen = () => send({ r: [term.rows, term.cols] });
  let printed;
  const prompt = new Promise((resolve) => (printed = resolve));
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.replay) term.reset();
    if (m.o) {
      term.write(m.o);
      printed();
    }
    if (m.bye) term.write("\r\n\x1b[33m[" + m.bye + "]\x1b[0m\r\n");
  };
  ws.onclose = () => {
    term.ended = true;
    term.write("\r\n\x1b[2m[disconnected]\x1b[0m\r\n");
  };
  // Types text into the shell once it has printed something (its prompt), never an Enter of
  // its own, and gives the terminal the keyboard: the learner's Enter runs it.
  term.typeIn = async (text) => {
    await prompt;
    send({ i: text.replace(/[\r\n]+$/, "") });
    term.focus();
  };
  if (!readonly) {
    term.onData((d) => send({ i: d }));
    term.onResize((s) => send({ r: [s.rows, s.cols] }));
  }
  const refit = () => fit.fit();
  window.addEventListener("resize", refit);
  close.onclick = async () => {
    term.ended = true;
    window.removeEventListener("resize", refit);
    ws.close();
    pane.remove();
    if (onClose) await onClose();
  };
  window.hoplabTerminals = (window.hoplabTerminals || []).concat([term]);
  return term;
}

// --- the participant's page ----------------------------------------------------------------

let me = null;
let assignments = [];

function showLab() {
  $("who").textContent = me.participant + " · lab " + me.lab;
  const nodes = $("nodes").tBodies[0];
  nodes.replaceChildren();
  for (const n of me.nodes) {
    const addrs = Object.entries(n.addresses).map(([net, ip]) => net + " " + ip).join(", ");
    nodes.append(el("tr", {}, el("td", { textContent: n.name }), el("td", { textContent: n.role }), el("td", { textContent: n.state }), el("td", { textContent: addrs })));
  }
  const nets = $("networks").tBodies[0];
  nets.replaceChildren();
  for (const [name, subnet] of Object.entries(me.networks)) {
    nets.append(el("tr", {}, el("td", { textContent: name }), el("td", { textContent: subnet })));
  }
  const select = $("node");
  const chosen = select.value;
  select.replaceChildren(...me.nodes.map((n) => el("option", { value: n.name, textContent: n.name })));
  if (chosen) select.value = chosen;
}

// The drawing arrives through fetch (it needs the token) and shows as an <img>: an SVG in an
// <img> runs no script, whatever its labels say.
async function drawLab() {
  try {
    const r = await fetch("/api/topology.svg", { headers: { Authorization: "Bearer " + TOKEN } });
    if (!r.ok) return;
    const img = el("img", { src: URL.createObjectURL(await r.blob()), alt: "the lab's topology" });
    $("drawing").replaceChildren(img);
  } catch (e) {
    /* the tables below say the same */
  }
}

// This page's terminals: {node, id, term, busy}; busy: a command that keeps running (a server)
// was typed there, so the next command for that node gets a terminal of its own.
let panes = [];

function attach(t) {
  const term = terminalPane($("terminals"), t.node + " (" + t.id + ")", "/ws/terminal/" + encodeURIComponent(t.id), false,
    () => api("DELETE", "/api/terminals/" + encodeURIComponent(t.id)).catch((e) => say(e.message)));
  const pane = { node: t.node, id: t.id, term, busy: sessionStorage.getItem("busy:" + t.id) === "1" };
  panes.push(pane);
  return pane;
}

// A terminal on `node` for one command: an open one that runs nothing kept, else a new one.
// keeps: the command keeps running (a server), so this terminal is busy from now on.
async function terminalFor(node, keeps) {
  panes = panes.filter((p) => !p.term.ended);
  let pane = panes.find((p) => p.node === node && !p.busy);
  if (!pane) pane = attach(await api("POST", "/api/terminals", { node }));
  if (keeps) {
    pane.busy = true;
    sessionStorage.setItem("busy:" + pane.id, "1");
  }
  return pane.term;
}
window.hoplabTerminal = terminalFor;

function showAssignment() {
  const a = assignments.find((x) => x.name === $("assignment").value);
  if (!a) return;
  $("lesson").textContent = a.lesson;
  $("usage").textContent = "you write " + a.program + ": " + a.usage;
  const saved = sessionStorage.getItem("source:" + a.name);
  $("source").value = saved !== null ? saved : "";
}

function showResult(run) {
  const box = $("result");
  box.replaceChildren();
  if (!run) return;
  if (run.error) {
    box.append(el("p", { className: "FAIL", textContent: "the check could not run: " + run.error }));
    return;
  }
  if (!run.result) {
    box.append(el("p", { textContent: run.assignment + ": " + run.state + " ... " + run.checks.map((c) => c.status + " " + c.name).join(", ") }));
    return;
  }
  const g = run.result;
  box.append(el("p", { id: "verdict", className: g.ok ? "PASS" : "FAIL", textContent: g.assignment + ": " + g.passed + "/" + g.total + " checks passed" + (g.ok ? "" : ": mend the first FAIL, then check again") }));
  const table = el("table", { id: "checks" }, el("thead", {}, el("tr", {}, el("th", { textContent: "result" }), el("th", { textContent: "check" }), el("th", { textContent: "expected" }), el("th", { textContent: "observed" }), el("th", { textContent: "hint" }))));
  const body = el("tbody");
  for (const c of g.checks) {
    body.append(el("tr", { className: c.status }, el("td", { textContent: c.status }), el("td", { textContent: c.name }), el("td", { textContent: c.expected }), el("td", { textContent: c.observed }), el("td", { className: "hint", textContent: c.hint })));
  }
  table.append(body);
  box.append(table);
}

async function poll() {
  try {
    const run = await api("GET", "/api/check");
    showResult(run);
    if (run && run.state !== "done") setTimeout(poll, 1000);
    else $("check").disabled = false;
  } catch (e) {
    say(e.message);
    setTimeout(poll, 2000);
  }
}

async function participantPage() {
  if (!TOKEN) {
    say("open the link you were given: it holds your key");
    return;
  }
  me = await api("GET", "/api/me");
  showLab();
  drawLab();
  for (const t of me.terminals) attach(t);
  assignments = await api("GET", "/api/assignments");
  $("assignment").replaceChildren(...assignments.map((a) => el("option", { value: a.name, textContent: a.name + ": " + a.summary })));
  showAssignment();
  $("assignment").onchange = showAssignment;
  $("source").oninput = () => sessionStorage.setItem("source:" + $("assignment").value, $("source").value);
  $("starter").onclick = () => {
    const a = assignments.find((x) => x.name === $("assignment").value);
    if (a && ($("source").value === "" || confirm("replace your program with the starter?"))) $("source").value = a.starter;
  };
  $("upload").onchange = async () => {
    const f = $("upload").files[0];
    if (!f) return;
    if (f.size > 256 * 1024) return say(f.name + " is too large: a program is at most 256 KiB");
    $("source").value = await f.text();
    sessionStorage.setItem("source:" + $("assignment").value, $("source").value);
    say("loaded " + f.name);
  };
  $("open").onclick = async () => {
    try {
      attach(await api("POST", "/api/terminals", { node: $("node").value }));
    } catch (e) {
      say(e.message);
    }
  };
  $("check").onclick = async () => {
    $("check").disabled = true;
    showResult(null); // before any await: the last result never stands for this run
    try {
      showResult(await api("POST", "/api/check", { assignment: $("assignment").value, source: $("source").value }));
      setTimeout(poll, 1000);
    } catch (e) {
      say(e.message);
      $("check").disabled = false;
    }
  };
  $("reset").onclick = async () => {
    if (!confirm("Reset lab " + me.lab + "? Every node is rebuilt; terminals and files in the nodes are lost.")) return;
    say("resetting " + me.lab + " ...");
    try {
      const r = await api("POST", "/api/reset", { confirm: me.lab });
      say("lab " + r.reset + " reset in " + r.seconds + " s");
      me = await api("GET", "/api/me");
      showLab();
    } catch (e) {
      say(e.message);
    }
  };
  const run = await api("GET", "/api/check");
  showResult(run);
  if (run && run.state !== "done") poll();
  say("ready");
}

if ($("nodes")) participantPage().catch((e) => say(e.message));
