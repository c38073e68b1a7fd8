"""Check results: PASS, FAIL or ENV, always with what was expected and what was seen."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    ENV = "ENV"  # the environment cannot show this (e.g. no netem); never a hidden failure


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    expected: str
    observed: str
    evidence: str = ""
    hint: str = ""

    @property
    def passed(self) -> bool:
        return self.status is Status.PASS


@dataclass(frozen=True)
class ExerciseResult:
    """The checks of one exercise or one graded program, and how long they took: what a report
    shows. It lives here, below exercises, grading and report, so all three can share it."""

    name: str
    checks: tuple[Check, ...]
    seconds: float

    @property
    def status(self) -> Status:
        states = {c.status for c in self.checks}
        if Status.FAIL in states or not states:
            return Status.FAIL
        return Status.ENV if Status.ENV in states else Status.PASS


def _text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def check(
    name: str, ok: bool, expected: Any, observed: Any, evidence: str = "", hint: str = ""
) -> Check:
    """PASS when ok; the hint is kept only for failures, where it helps."""
    return Check(
        name,
        Status.PASS if ok else Status.FAIL,
        _text(expected),
        _text(observed),
        evidence,
        "" if ok else hint,
    )


def env(name: str, expected: Any, observed: Any, reason: str, evidence: str = "") -> Check:
    """The environment cannot produce this evidence; say why instead of faking a result."""
    return Check(name, Status.ENV, _text(expected), _text(observed), evidence, reason)


def fail(name: str, expected: Any, observed: Any, hint: str = "", evidence: str = "") -> Check:
    return Check(name, Status.FAIL, _text(expected), _text(observed), evidence, hint)
