// hoplab portal, instructor page: the grid, each lab's health, resets, exports, watching.
"use strict";

const watching = new Set();

function ago(t) {
  if (!t) return "never";
  const s = Math.round(Date.now() / 1000 - t);
  return s < 60 ? s + " s ago" : Math.round(s / 60) + " min ago";
}

async function download(path, name) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + TOKEN } });
  if (!r.ok) return say("export failed: " + r.statusText);
  const url = URL.createObjectURL(await r.blob());
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  URL.revokeObjectURL(url);
}

function render(room) {
  $("room").textContent = room.room;
  const head = el("tr", {}, ...["participant", "lab", "nodes up", "last activity", "check"].concat(room.assignments, ["lesson steps", "stuck on (longest)", "terminals", ""]).map((h) => el("th", { textContent: h })));
  $("grid").tHead.replaceChildren(head);
  const body = $("grid").tBodies[0];
  body.replaceChildren();
  for (const p of room.participants) {
    // A room over several engines: each lab says where it runs, and whether that engine answers.
    let lab = p.lab;
    if ((room.engines || []).length > 1) lab += " on " + p.engine + (p.engine in (room.unreachable || {}) ? " (unreachable)" : "");
    const cells = [p.participant, lab, p.running + "/" + p.nodes + (p.resetting ? " (resetting)" : ""), ago(p.last_activity), p.check ? p.check.assignment + " " + p.check.state : ""].map((t) => el("td", { textContent: t }));
    for (const a of room.assignments) {
      const g = p.grades[a];
      cells.push(el("td", { className: g ? (g.ok ? "PASS" : "FAIL") : "", textContent: g ? g.passed + "/" + g.total : "" }));
    }
    // Learning progress from the participant's own lab: never a grade (docs/portal.md).
    const l = p.lessons;
    cells.push(el("td", { className: "lessons", textContent: l.passed + "/" + l.total }));
    cells.push(el("td", { className: "stuck", textContent: l.stuck ? l.stuck.lesson + " step " + l.stuck.step + " (" + l.stuck.title + "), " + ago(l.stuck.since).replace(" ago", "") + (l.stuck.failures ? ", " + l.stuck.failures + " failed verifies" : "") : "" }));
    const terms = el("td");
    for (const t of p.terminals) {
      const b = el("button", { type: "button", textContent: "watch " + t.node });
      b.onclick = () => {
        const key = p.participant + "/" + t.id;
        if (watching.has(key)) return;
        watching.add(key);
        terminalPane($("terminals"), p.participant + ": " + t.node + " (read-only)", "/ws/watch/" + encodeURIComponent(p.participant) + "/" + encodeURIComponent(t.id), true, () => watching.delete(key));
      };
      terms.append(b);
    }
    cells.push(terms);
    const reset = el("button", { type: "button", className: "danger", textContent: "reset" });
    reset.onclick = async () => {
      if (!confirm("Reset " + p.participant + "'s lab " + p.lab + "?")) return;
      say("resetting " + p.lab + " ...");
      try {
        const r = await api("POST", "/api/room/" + encodeURIComponent(p.participant) + "/reset", {});
        say("lab " + r.reset + " reset in " + r.seconds + " s");
      } catch (e) {
        say(e.message);
      }
    };
    cells.push(el("td", {}, reset));
    body.append(el("tr", {}, ...cells));
  }
}

async function refresh() {
  try {
    render(await api("GET", "/api/room"));
    say("live: updated " + new Date().toLocaleTimeString());
  } catch (e) {
    say(e.message);
  }
  setTimeout(refresh, 2000);
}

if (!TOKEN) {
  say("open the instructor link: it holds your key");
} else {
  $("csv").onclick = () => download("/api/room/grades.csv", "grades.csv");
  $("results").onclick = () => download("/api/room/results.json", "results.json");
  refresh();
}
