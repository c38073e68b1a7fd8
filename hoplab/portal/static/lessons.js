// hoplab portal, the lesson panel beside the terminals (needs portal.js: api, el, say, $).
// The server fills each step with this participant's own lab's names and renders its markdown
// with raw HTML off; a command's button types it into a terminal on its node, without Enter.
"use strict";

let lessonList = [];
let lessonDoc = null;

function progressText(l) {
  return l.passed.length === l.steps ? "done" : l.passed.length + "/" + l.steps + " steps";
}

function renderLessonList() {
  const body = $("lessons-list").tBodies[0];
  body.replaceChildren();
  lessonList.forEach((l, i) => {
    const open = el("button", { type: "button", className: "open-lesson", textContent: "open" });
    open.dataset.lesson = l.name;
    open.onclick = () => openStep(l.name, null);
    const row = el("tr", {}, el("td", { textContent: String(i + 1) }), el("td", { textContent: l.title }),
      el("td", { className: "progress" + (l.passed.length === l.steps ? " PASS" : ""), textContent: progressText(l) }), el("td", {}, open));
    row.dataset.lesson = l.name;
    body.append(row);
  });
}

async function loadLessons() {
  try {
    lessonList = await api("GET", "/api/lessons");
    renderLessonList();
  } catch (e) {
    say("lessons: " + e.message);
  }
}

// Server-rendered markdown (markdown-it-py, raw HTML escaped, links checked).
function markdown(html, className) {
  const box = el("div", { className: "md " + (className || "") });
  box.innerHTML = html;
  return box;
}

function commandItem(c) {
  const type = el("button", { type: "button", className: "type-command", textContent: "type in " + c.node });
  type.dataset.node = c.node;
  type.onclick = async () => {
    try {
      const term = await window.hoplabTerminal(c.node, c.keeps_running);
      await term.typeIn(c.command);
      say("typed into " + c.node + ": press Enter in its terminal to run it");
    } catch (e) {
      say(e.message);
    }
  };
  const li = el("li", {}, el("span", { className: "node", textContent: c.node + "$ " }), el("code", { textContent: c.command }), " ", type);
  if (c.keeps_running) li.append(el("span", { className: "note", textContent: " keeps running: it gets a terminal of its own; leave it there" }));
  return li;
}

function renderStep(doc) {
  const step = doc.steps[doc.shown - 1];
  const nav = el("div", { className: "bar steps" });
  for (const s of doc.steps) {
    const b = el("button", { type: "button", textContent: s.number + (s.passed ? " \u2713" : ""), title: s.title });
    if (s.number === doc.shown) b.className = "current";
    b.onclick = () => openStep(doc.lesson, s.number);
    nav.append(b);
  }
  const parts = [el("h3", { textContent: doc.title }), nav];
  if (doc.shown === 1) parts.push(markdown(doc.why_html, "why"));
  parts.push(el("h4", { id: "step-title", textContent: "step " + step.number + "/" + doc.steps.length + ": " + step.title + (step.passed ? " (passed)" : "") }));
  parts.push(markdown(step.text_html));
  parts.push(el("p", { className: "note", textContent: "Press a button to type its command into a terminal on its node; you press Enter." }));
  parts.push(el("ul", { className: "commands" }, ...step.commands.map(commandItem)));
  parts.push(el("p", {}, el("strong", { textContent: "you should see" })), markdown(step.expect_html));
  if (step.watches.length) {
    parts.push(el("p", { className: "note", textContent: "capturing on " + step.watches.map((w) => w.node + " " + w.network).join(", ") + " from now on; showing the step again restarts that" }));
  }
  const verify = el("button", { type: "button", id: "verify", textContent: "verify" });
  verify.onclick = () => verifyStep(doc, step.number);
  parts.push(el("div", { className: "bar" }, verify), el("div", { id: "lesson-result" }));
  if (doc.shown === doc.steps.length) parts.push(el("h4", { textContent: "pitfalls" }), markdown(doc.pitfalls_html));
  $("lesson-step").replaceChildren(...parts);
}

async function openStep(name, number) {
  $("lesson-step").replaceChildren(el("p", { className: "note", textContent: "showing the step (its captures start now) ..." }));
  try {
    lessonDoc = await api("POST", "/api/lessons/show", number ? { lesson: name, step: number } : { lesson: name });
  } catch (e) {
    $("lesson-step").replaceChildren(el("p", { className: "FAIL", textContent: e.message }));
    return;
  }
  renderStep(lessonDoc);
  $("lessons-section").querySelector("details").open = false; // the step, not the list, now
  const step = lessonDoc.steps[lessonDoc.shown - 1];
  // The wire panel (wire.js, when the page has it) follows the segments this step captures; a
  // step that captures nothing leaves it as the learner set it.
  const segments = [...new Set(step.watches.map((w) => w.network))];
  if (window.hoplabWire && segments.length) window.hoplabWire.watch(segments);
}

async function verifyStep(doc, number) {
  const box = $("lesson-result");
  $("verify").disabled = true;
  box.replaceChildren(el("p", { className: "note", textContent: "verifying ..." }));
  try {
    const r = await api("POST", "/api/lessons/verify", { lesson: doc.lesson, step: number });
    const verdict = el("p", { id: "lesson-verdict", className: r.status, textContent: r.status + " " + r.name });
    const rows = [["expected", r.expected], ["observed", r.observed]];
    if (r.hint) rows.push(["hint", r.hint]);
    const table = el("table", { className: "verdict" }, ...rows.map(([k, v]) => el("tr", {}, el("th", { textContent: k }), el("td", { textContent: v }))));
    box.replaceChildren(verdict, table);
    const entry = lessonList.find((l) => l.name === doc.lesson);
    if (entry) entry.passed = r.progress;
    renderLessonList();
    if (r.passed) {
      doc.steps[number - 1].passed = true;
      if (number < doc.steps.length) {
        const next = el("button", { type: "button", id: "next-step", textContent: "next step" });
        next.onclick = () => openStep(doc.lesson, number + 1);
        box.append(el("div", { className: "bar" }, next));
      } else {
        box.append(el("p", { className: "PASS", textContent: "lesson done" }));
      }
    }
  } catch (e) {
    box.replaceChildren(el("p", { className: "FAIL", textContent: e.message }));
  } finally {
    $("verify").disabled = false;
  }
}

if ($("lessons-list") && TOKEN) loadLessons();
