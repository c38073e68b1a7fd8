"""Grader outputs: a terminal table, JUnit XML (lab/report.py's format) and a Gradescope
results.json, so a GitHub Classroom or Gradescope autograder can use the result as it is.

Every check is worth one point; ENV (the environment cannot show it) is not the participant's
fault, so it scores as passed and says why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from hoplab import report
from hoplab.checks import Check, ExerciseResult, Status

if TYPE_CHECKING:
    from hoplab.grading.grader import Grade


def detail(c: Check) -> str:
    """Expected, observed, hint and evidence: what a participant reads to mend the program."""
    lines = [f"expected: {c.expected}", f"observed: {c.observed}"]
    if c.hint:
        lines.append(f"hint: {c.hint}")
    if c.evidence:
        lines.append(f"evidence: {c.evidence}")
    return "\n".join(lines)


def table(g: Grade) -> report.Table:
    title = f"hoplab check {g.assignment}: {g.passed}/{len(g.checks)} "
    return report.checks_table(title + f"({g.solution}, {g.seconds:.1f} s)", g.checks)


def write_junit(g: Grade, path: Path) -> None:
    """The same JUnit XML `hoplab run --junit` writes: one testcase per check."""
    report.write_junit([ExerciseResult(g.assignment, g.checks, g.seconds)], path)


def gradescope(g: Grade) -> dict:
    """Gradescope's autograder results format (results.json)."""
    tests = [
        {
            "name": f"{g.assignment}: {c.name}",
            "number": str(i),
            "score": 0.0 if c.status is Status.FAIL else 1.0,
            "max_score": 1.0,
            "status": "failed" if c.status is Status.FAIL else "passed",
            "output": (f"ENV: {c.hint}\n" if c.status is Status.ENV else "") + detail(c),
            "visibility": "visible",
        }
        for i, c in enumerate(g.checks, 1)
    ]
    failed = [c.name for c in g.checks if c.status is Status.FAIL]
    return {
        "score": float(g.passed),
        "max_score": float(len(g.checks)),
        "execution_time": round(g.seconds, 3),
        "output": f"hoplab check {g.assignment}: {g.passed}/{len(g.checks)} checks passed"
        + (f"; first to mend: {failed[0]}" if failed else ""),
        "visibility": "visible",
        "stdout_visibility": "visible",
        "tests": tests,
    }


def write_results(g: Grade, path: Path) -> None:
    path.write_text(json.dumps(gradescope(g), indent=2))
