// hoplab portal, participant page: the exercises panel. Loaded after portal.js (TOKEN, $, el,
// api). The server renders a finished run's result as report.html does (one fragment: badge,
// checks, ladder SVG); this script only places it. It is parsed with DOMParser, whose scripts
// never run, and the page's CSP allows no inline script either.
"use strict";

function exerciseSay(text) {
  $("exercise-state").textContent = text;
}

function showExerciseRun(run) {
  const box = $("exercise-result");
  if (!run) return;
  if (run.state !== "done") {
    exerciseSay(run.exercise + ": " + run.state + " ...");
    return;
  }
  $("run-exercise").disabled = false;
  if (run.error) {
    exerciseSay(run.exercise + ": could not run");
    box.replaceChildren(el("p", { className: "FAIL", textContent: run.exercise + " could not run: " + run.error }));
    return;
  }
  exerciseSay(run.exercise + ": " + run.result.status + " in " + run.result.seconds + " s (not a grade)");
  const doc = new DOMParser().parseFromString(run.html, "text/html");
  box.replaceChildren(...doc.body.childNodes);
  box.dataset.run = run.id;
}

async function pollExercise() {
  try {
    const run = await api("GET", "/api/exercises/run");
    showExerciseRun(run);
    if (run && run.state !== "done") setTimeout(pollExercise, 1000);
  } catch (e) {
    exerciseSay(e.message);
    setTimeout(pollExercise, 2000);
  }
}

async function exercisesPanel() {
  if (!TOKEN || !$("exercise")) return;
  const list = await api("GET", "/api/exercises");
  $("exercise").replaceChildren(...list.map((e) => el("option", { value: e.name, textContent: e.name + ": " + e.summary })));
  $("run-exercise").onclick = async () => {
    $("run-exercise").disabled = true;
    $("exercise-result").replaceChildren(); // before any await: the last result never stands for this run
    try {
      showExerciseRun(await api("POST", "/api/exercises", { exercise: $("exercise").value }));
      setTimeout(pollExercise, 1000);
    } catch (e) {
      exerciseSay(e.message);
      $("run-exercise").disabled = false;
    }
  };
  const run = await api("GET", "/api/exercises/run");
  if (run) {
    $("exercise").value = run.exercise;
    showExerciseRun(run);
    if (run.state !== "done") {
      $("run-exercise").disabled = true;
      pollExercise();
    }
  }
}

exercisesPanel().catch((e) => exerciseSay(e.message));
