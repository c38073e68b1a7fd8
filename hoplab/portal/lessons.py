"""The lesson panel's server side: steps shown and verified in a participant's own lab, and
their learning progress, kept by the portal.

Steps are rendered from markdown by markdown-it-py with raw HTML off (a lesson's `<script>` is
text, and `javascript:` links are refused by its link check), after the lab's names are filled
in, so whatever a name holds is escaped too. The page inserts the result as HTML; the CSP
forbids inline script besides.

Progress lives in the room's state dir (`lessons.json`, mode 0600, like grades.json), keyed by
participant: it survives a reload, a restart of `serve` and a reset of the lab (which keeps the
lab's name but not its nodes). It is learning progress, never a grade: a verify reads evidence
from the participant's own lab, where they are root, so anything in it can lie. Nothing here
feeds grades.json or a score.

A show (which starts the step's captures) and a verify go into the node; each participant has
one of them at a time, and at most PER_WINDOW of them in WINDOW seconds.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from hoplab import lessons
from hoplab.checks import Status
from hoplab.engine.interface import EngineAPI
from hoplab.errors import InputError
from hoplab.lessons import run
from hoplab.lessons.model import Lesson
from hoplab.lessons.names import Names
from hoplab.portal.limits import Rate
from hoplab.portal.tokens import write_private
from hoplab.runtime.lab import Lab

WINDOW = 60.0  # seconds
PER_WINDOW = 40  # shows and verifies a participant may start in WINDOW (a step takes 2 or 3)
_MARKDOWN = MarkdownIt("js-default")  # CommonMark with raw HTML off and no linkify


class Busy(Exception):
    """A show or verify of this participant is running, or they started too many lately."""


def html(markdown: str) -> str:
    """Markdown to HTML that carries no markup of the text's own (raw HTML is escaped)."""
    return _MARKDOWN.render(markdown)


def total_steps() -> int:
    return sum(len(lesson.steps) for lesson in lessons.catalogue())


class LessonProgress:
    """Per participant and lesson: steps passed, failures per step (the next hint), when each
    step was first shown and when it first passed (the instructor's "stuck on")."""

    def __init__(self, folder: Path | None = None) -> None:
        """folder None: kept in memory only (a portal built without a state dir)."""
        self.path = folder / "lessons.json" if folder else None
        self.data: dict[str, dict[str, dict[str, Any]]] = {}
        if self.path and self.path.exists():
            self.data = json.loads(self.path.read_text())
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self.rate = Rate(PER_WINDOW, WINDOW)

    @contextmanager
    def turn(self, participant: str) -> Iterator[None]:
        """One show or verify of the participant at a time; raises Busy otherwise."""
        with self._lock:
            if participant in self._busy:
                raise Busy("a step of yours is being shown or verified: wait for it")
            if not self.rate.allow(participant):
                raise Busy(
                    f"{PER_WINDOW} shows and verifies in {WINDOW:.0f} s: wait a minute, then "
                    "try again"
                )
            self._busy.add(participant)
        try:
            yield
        finally:
            with self._lock:
                self._busy.discard(participant)

    def _entry(self, participant: str, lesson: str) -> dict[str, Any]:
        mine = self.data.setdefault(participant, {})
        return mine.setdefault(lesson, {"passed": {}, "shown": {}, "failures": {}})

    def _save(self) -> None:
        if self.path:
            write_private(self.path, json.dumps(self.data, sort_keys=True))

    def passed(self, participant: str, lesson: str) -> set[int]:
        return {int(n) for n in self.data.get(participant, {}).get(lesson, {}).get("passed", {})}

    def failures(self, participant: str, lesson: str, number: int) -> int:
        entry = self.data.get(participant, {}).get(lesson, {})
        return int(entry.get("failures", {}).get(str(number), 0))

    def current(self, participant: str, lesson: Lesson) -> int:
        """The first step not passed yet (the last one when all have)."""
        done = self.passed(participant, lesson.name)
        steps = len(lesson.steps)
        return next((n for n in range(1, steps + 1) if n not in done), steps)

    def shown(self, participant: str, lesson: str, number: int) -> None:
        with self._lock:
            self._entry(participant, lesson)["shown"].setdefault(str(number), time.time())
            self._save()

    def record(self, participant: str, lesson: str, number: int, ok: bool) -> None:
        with self._lock:
            entry = self._entry(participant, lesson)
            key = str(number)
            if ok:
                entry["passed"].setdefault(key, time.time())
                entry["failures"].pop(key, None)
            else:
                entry["failures"][key] = entry["failures"].get(key, 0) + 1
            self._save()

    def listing(self, participant: str) -> list[dict[str, Any]]:
        """Every lesson in teaching order with the participant's progress in it."""
        return [
            {
                "name": lesson.name,
                "title": lesson.title,
                "steps": len(lesson.steps),
                "passed": sorted(self.passed(participant, lesson.name)),
                "current": self.current(participant, lesson),
            }
            for lesson in lessons.catalogue()
        ]

    def summary(self, participant: str, now: float | None = None) -> dict[str, Any]:
        """For the instructor: steps passed of all steps, and the step shown but not passed
        for the longest time (None when every shown step has passed)."""
        now = time.time() if now is None else now
        passed = 0
        stuck: dict[str, Any] | None = None
        for lesson in lessons.catalogue():
            entry = self.data.get(participant, {}).get(lesson.name, {})
            done = entry.get("passed", {})
            passed += len(done)
            for key, at in entry.get("shown", {}).items():
                if key in done or (stuck is not None and at >= stuck["since"]):
                    continue
                number = int(key)
                stuck = {
                    "lesson": lesson.name,
                    "step": number,
                    "title": lesson.steps[number - 1].title,
                    "since": at,
                    "failures": int(entry.get("failures", {}).get(key, 0)),
                }
        if stuck is not None:
            stuck["seconds"] = round(now - stuck["since"])
        return {"passed": passed, "total": total_steps(), "stuck": stuck}


def step_of(lesson_name: Any, number: Any) -> tuple[Lesson, int | None]:
    """The lesson and step a request names; InputError for an unknown one. number None: the
    participant's current step."""
    every = [lesson.name for lesson in lessons.catalogue()]
    if lesson_name not in every:  # the CLI's hint names `hoplab learn`: not the page's words
        raise InputError(
            f"unknown lesson {lesson_name!r}", key="lesson", hint="lessons: " + ", ".join(every)
        )
    lesson = lessons.select(lesson_name)
    if number is None:
        return lesson, None
    steps = len(lesson.steps)
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= steps:
        raise InputError(
            f"lesson {lesson.name} has no step {number!r}",
            key="step",
            hint=f"steps are 1 to {steps}, or none for your current one",
        )
    return lesson, number


def show(
    engine: EngineAPI, lab_name: str, lesson: Lesson, number: int, passed: set[int]
) -> dict[str, Any]:
    """Start the step's captures (as `hoplab learn` does) and return the lesson filled with the
    lab's own names, its markdown rendered. Blocking: runs in the participant's lane."""
    lab = Lab.attach(engine, lab_name)
    names = Names(lab)
    run.start(lab, names, lesson, number)
    doc = lessons.as_json(lesson, names, passed)
    doc["why_html"], doc["pitfalls_html"] = html(doc["why"]), html(doc["pitfalls"])
    for step in doc["steps"]:
        step["text_html"], step["expect_html"] = html(step["text"]), html(step["expect"])
    doc["shown"] = number
    return doc


def verify(
    engine: EngineAPI, lab_name: str, lesson: Lesson, number: int, failures: int
) -> dict[str, Any]:
    """The step's verdict from the lab's evidence, as `hoplab verify --json` prints it."""
    lab = Lab.attach(engine, lab_name)
    result = run.verify(lab, Names(lab), lesson, number, failures)
    out: dict[str, Any] = {k: str(v) for k, v in asdict(result).items()}
    out["passed"] = result.status is not Status.FAIL  # ENV too: the lab cannot show it
    return out
