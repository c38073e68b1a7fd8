// hoplab portal: the wire panel. Frames crossing the segments the learner picks, live, with
// the same packet on several segments grouped (one tbody per packet), so its TTL dropping and its
// MACs changing read row by row. The server captures on the segments' bridges, outside the nodes,
// and sends at most `rate` frames a second; the rest are counted as dropped.
//
// A lesson step calls window.hoplabWire.watch(["lan1", "core"], "icmp") to show its segments.
// Uses TOKEN, $ and el from portal.js (loaded first).
"use strict";

(() => {
  const MAX_GROUPS = 150; // packets kept on screen: older ones scroll out
  let ws = null;
  let ready = null; // a promise of the open socket
  let wanted = null; // {segments, filter} to ask for once the socket is open
  let groups = new Map(); // group number -> tbody
  let watching = []; // the segments the server says it captures
  const names = new Map(); // address -> node, from /api/me: "10.77.1.10 alice"
  const state = (text) => ($("wire-state").textContent = text);

  function open() {
    if (ws && ws.readyState <= WebSocket.OPEN) return ready;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(proto + "//" + location.host + "/ws/wire", ["hoplab", "tok." + TOKEN]);
    ready = new Promise((resolve) => (ws.onopen = resolve));
    ws.onmessage = (ev) => show(JSON.parse(ev.data));
    ws.onclose = () => {
      state("not watching (the wire closed)");
      ws = null;
    };
    return ready;
  }

  function show(m) {
    if (m.watching) {
      state(m.watching.length ? "watching " + m.watching.join(", ") + " (filter: " + m.filter + ")" : "not watching");
      watching = m.watching;
      tick();
      $("wire-filter").value = m.filter;
    }
    if (m.error) state(m.error + (m.hint ? " (" + m.hint + ")" : ""));
    if (m.ended) state(m.ended + (m.why && m.why.length ? ": " + m.why.join(" ") : ""));
    if (m.f) for (const f of m.f) add(f);
    if (m.dropped !== undefined) $("wire-dropped").textContent = m.dropped;
  }

  const clock = (t) => new Date(t * 1000).toISOString().slice(11, 23);

  const who = (ip) => (ip ? ip + (names.has(ip) ? " " + names.get(ip) : "") : "");

  function what(f) {
    if (f.icmp) return f.proto + " " + f.icmp;
    if (f.sport !== undefined) return f.proto + " " + f.sport + " → " + f.dport;
    return f.what || f.proto || "";
  }

  function add(f) {
    let body = groups.get(f.g);
    if (!body) {
      body = el("tbody", { className: "packet" });
      groups.set(f.g, body);
      $("wire-frames").append(body);
      while (groups.size > MAX_GROUPS) {
        const [oldest, old] = groups.entries().next().value;
        old.remove();
        groups.delete(oldest);
      }
    }
    const ttl = f.ttl !== undefined ? f.ttl : f.hlim;
    const row = el(
      "tr",
      {},
      el("td", { className: "time", textContent: clock(f.t) }),
      el("td", { className: "seg", textContent: f.seg }),
      el("td", { className: "mac", textContent: (f.smac || "") + " → " + (f.dmac || "") }),
      el("td", { className: "ip", textContent: who(f.src) + " → " + who(f.dst) }),
      el("td", { className: "what", textContent: what(f), title: f.what || "" }),
      el("td", { className: "ttl", textContent: ttl === undefined ? "" : ttl }),
      el("td", { className: "len", textContent: f.len }),
    );
    row.dataset.t = f.t;
    // rows of one packet in the order they crossed the wire (taps report independently)
    const later = [...body.children].find((r) => Number(r.dataset.t) > f.t);
    body.insertBefore(row, later || null);
    body.classList.toggle("hops", body.children.length > 1);
    $("wire-shown").textContent = Number($("wire-shown").textContent) + 1;
  }

  // Steps shown in quick succession ask once, for the last: the server paces watch requests.
  let pending = null;
  function watch(segments, filter) {
    clearTimeout(pending);
    state("starting the capture on " + segments.join(", ") + " ...");
    return new Promise((resolve) => (pending = setTimeout(() => resolve(send(segments, filter)), 300)));
  }

  async function send(segments, filter) {
    wanted = { watch: segments, filter: filter || null };
    await open();
    groups = new Map();
    $("wire-frames").querySelectorAll("tbody").forEach((b) => b.remove());
    $("wire-shown").textContent = "0";
    state("starting the capture on " + segments.join(", ") + " ...");
    ws.send(JSON.stringify(wanted));
  }

  function stop() {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ stop: true }));
  }

  function tick() {
    for (const box of document.querySelectorAll("#wire-segments input")) box.checked = watching.includes(box.value);
  }

  function picked() {
    return [...document.querySelectorAll("#wire-segments input:checked")].map((b) => b.value);
  }

  async function setup() {
    if (!$("wire-section") || !TOKEN) return;
    const me = await api("GET", "/api/me");
    for (const n of me.nodes) for (const ip of Object.values(n.addresses)) names.set(ip, n.name);
    $("wire-segments").replaceChildren(
      ...Object.entries(me.networks).map(([name, subnet]) =>
        el("label", { title: subnet }, el("input", { type: "checkbox", value: name }), " " + name),
      ),
    );
    tick();
    $("wire-watch").onclick = () => {
      const segs = picked();
      if (!segs.length) return state("pick at least one segment");
      watch(segs, $("wire-filter").value.trim());
    };
    $("wire-stop").onclick = stop;
    // The page going away ends the capture; the server also ends it when the socket drops.
    window.addEventListener("pagehide", () => ws && ws.close());
  }

  window.hoplabWire = { watch, stop };
  setup().catch((e) => state(e.message));
})();
