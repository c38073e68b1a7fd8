"""Grade one submission: compile it, fence it, run the assignment's checker, always clean up.

Every assignment reports the same checks in the same order whatever happens, so a score is always
out of the same total: checks that an early failure left unreached are FAILs that say so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hoplab.checks import Check, Status, fail
from hoplab.errors import HoplabError, InputError
from hoplab.grading.sandbox import Fence, Stopped
from hoplab.interrupts import Interrupted

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.grading.base import Assignment
    from hoplab.runtime.lab import Lab

MAX_BYTES = 256 * 1024  # a socket program of this course fits in far less


@dataclass(frozen=True)
class Grade:
    assignment: str
    solution: str
    checks: tuple[Check, ...]
    seconds: float

    @property
    def passed(self) -> int:
        return sum(c.status is not Status.FAIL for c in self.checks)

    @property
    def ok(self) -> bool:
        return all(c.status is not Status.FAIL for c in self.checks)


def load_source(path: Path, assignment: str = "ASSIGNMENT") -> bytes:
    """The participant's file, or an InputError that says how to mend the call."""
    if not path.is_file():
        raise InputError(
            f"no solution file {path}",
            key="--solution",
            hint=f"start one from the starter with `hoplab check {assignment} --init`, or pass "
            "--solution PATH",
        )
    data = path.read_bytes()
    if len(data) > MAX_BYTES:
        raise InputError(
            f"{path} is {len(data)} bytes; a solution is at most {MAX_BYTES}",
            key="--solution",
            hint="submit the one Python file of the assignment",
        )
    return data


def _compiles(source: bytes, path: Path, name: str) -> Check | None:
    """A syntax error is the participant's to mend: a FAIL (under the first check) naming the
    line, without a lab run."""
    try:
        compile(source, str(path), "exec")
    except (SyntaxError, ValueError) as err:
        where = f"line {err.lineno}: " if isinstance(err, SyntaxError) and err.lineno else ""
        return fail(
            name,
            "a program python3 can compile",
            f"{type(err).__name__}: {where}{getattr(err, 'msg', err)}",
            hint=f"run `python3 -m py_compile {path}` and fix the line it names",
        )
    return None


def _complete(assignment: Assignment, found: list[Check], reason: str) -> tuple[Check, ...]:
    """Every declared check once, in order; the unreached ones FAIL with the reason."""
    by_name = {c.name: c for c in found}
    done = [
        by_name.get(name)
        or fail(name, "checked", f"not reached: {reason}", hint="mend the first FAIL first")
        for name in assignment.checks
    ]
    extra = [c for c in found if c.name not in assignment.checks]  # a checker bug, shown anyway
    return tuple(done + extra)


def grade(
    lab: Lab,
    assignment: Assignment,
    path: Path,
    on_check: Callable[[Check], None] = lambda c: None,
) -> Grade:
    source = load_source(path)
    started = time.monotonic()
    found: list[Check] = []
    reason = ""
    bad = _compiles(source, path, assignment.checks[0])
    if bad:
        on_check(bad)
        checks = _complete(assignment, [bad], "the program does not compile")
        return Grade(assignment.name, str(path), checks, 0.0)
    lab.reap(files=True)  # whatever an earlier run or participant left: no stray decides a grade
    fence = Fence(lab, source, assignment.program, assignment.forbids)
    try:
        with lab.evidence():  # hoplab's tools, in every node's own container
            for c in assignment.grade(lab, fence):
                found.append(c)
                on_check(c)
    except Stopped as stop:
        found.append(stop.check)
        on_check(stop.check)
        reason = f"{stop.check.name} failed"
    except HoplabError as err:
        # Reported under the next check, so the total never changes with what went wrong.
        done = {c.name for c in found}
        name = next((n for n in assignment.checks if n not in done), "grading ran to the end")
        c = fail(
            name,
            "grading runs to the end",
            "grading stopped: " + " ".join(str(err).split())[-400:],
            hint="your program may have left the lab's peers nothing to talk to (it exited?); "
            "if the lab itself is broken, `hoplab status` shows it and `hoplab up` mends it",
        )
        found.append(c)
        on_check(c)
        reason = "grading stopped early"
    except KeyboardInterrupt:
        raise Interrupted(lab.stop_all(), f"grading of {assignment.name}") from None
    finally:
        fence.close()
        # Whatever escaped the fence (a daemon, a respawner, a node whose pids are full) goes
        # now, not only when the next grading starts.
        lab.reap(files=True)
    return Grade(
        assignment.name,
        str(path),
        _complete(assignment, found, reason),
        time.monotonic() - started,
    )
