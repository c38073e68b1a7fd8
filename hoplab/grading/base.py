"""What an assignment is: a participant's program, the exercise it builds on, and its checker.

A checker is a generator of Checks: it yields each one as soon as it is known, so the grader can
show progress, and an early stop (the program never started) keeps what was already graded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hoplab.checks import Check, env
from hoplab.resources import assignments_dir
from hoplab.runtime.needs import Missing, Need, match

if TYPE_CHECKING:  # annotations only: one direction, base -> sandbox -> runtime
    from hoplab.grading.sandbox import Fence
    from hoplab.runtime.lab import Lab, Node


@dataclass(frozen=True)
class Assignment:
    name: str
    exercise: str  # the exercise whose lesson and checks this builds on (`hoplab explain`)
    summary: str
    program: str  # the participant's file name, e.g. tcp_echo.py
    usage: str  # how the grader runs it, for the lesson and the hints
    checks: tuple[str, ...]  # every check, in order: the score's denominator never shrinks
    grade: Callable[[Lab, Fence], Iterator[Check]]
    # Programs in the nodes that could do the assignment's work for the submission (a server
    # in nc or socat, a traceroute): made unusable to it while it is graded. hoplab's own
    # in-node programs (/opt/hoplab) are closed to it for every assignment.
    forbids: tuple[str, ...] = ("nc", "socat")

    @property
    def folder(self) -> Path:
        return assignments_dir() / self.name

    @property
    def starter(self) -> Path:
        return self.folder / "starter.py"

    @property
    def solution(self) -> Path:
        return self.folder / "solution.py"

    @property
    def lesson(self) -> Path:
        return self.folder / "LESSON.md"


def cast(lab: Lab, needs: Sequence[Need], checks: Sequence[str]) -> dict[str, Node] | list[Check]:
    """The lab's nodes in the assignment's roles; or, on a topology that lacks a need, every
    check as ENV naming it: a lab that cannot grade a program has not failed the program."""
    found = match(needs, lab.state)
    if isinstance(found, Missing):
        return [env(name, found.need, found.observed, found.hint) for name in checks]
    return {role: lab.node(name) for role, name in found.items()}
