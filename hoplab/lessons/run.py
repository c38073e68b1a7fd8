"""Show a step (arming its captures) and verify it: what `hoplab learn` and `verify` call."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from hoplab.checks import Check, Status, fail
from hoplab.errors import HoplabError
from hoplab.lessons import wire
from hoplab.lessons.model import StepRun

if TYPE_CHECKING:
    from hoplab.lessons.model import Lesson
    from hoplab.lessons.names import Names
    from hoplab.runtime.lab import Lab


def start(lab: Lab, names: Names, lesson: Lesson, number: int) -> None:
    """The step begins: its captures start now, so everything the learner does counts."""
    step = lesson.steps[number - 1]
    if step.watch:
        wire.arm(lab, names, lesson.name, number, step.watch)


def _filled(names: Names, text: str) -> str:
    """The text with the lab's names, or as written when they cannot be read now."""
    try:
        return names.fill(text)
    except HoplabError:
        return text


def verify(lab: Lab, names: Names, lesson: Lesson, number: int, failures_before: int) -> Check:
    """The step's verdict. Not done: FAIL with the next hint in turn (the first, the first
    time). Done wrong: FAIL with the verify's own hint, which names what it saw."""
    step = lesson.steps[number - 1]
    name = f"{lesson.name} step {number}: {step.title}"
    hints: tuple[str, ...] = tuple(step.hints)  # unfilled, if even the names cannot be read
    try:
        # names can need an exec (a MAC, an interface): inside, so a failure is a verdict
        hints = tuple(names.fill(h) for h in step.hints)
        result = step.verify(StepRun(lab, names, lesson.name, number, hints))
    except wire.NotArmed as e:
        return fail(name, _filled(names, step.expect), e.message, hint=e.hint)
    except HoplabError as e:
        why = f"could not read the evidence: {e.message}"
        return fail(name, _filled(names, step.expect), why, hint=e.hint or hints[0])
    result = replace(result, name=name)
    if result.status is Status.FAIL and not result.hint:
        result = replace(result, hint=hints[min(failures_before, len(hints) - 1)])
    return result
