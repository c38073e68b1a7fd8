"""Exercise results out: a terminal table, JSON, and JUnit XML for CI dashboards."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.table import Table

from hoplab.checks import Check, ExerciseResult, Status

COLOURS = {Status.PASS: "green", Status.FAIL: "red", Status.ENV: "yellow"}


def table(results: list[ExerciseResult], verbose: bool = False) -> Table:
    t = Table(title="hoplab exercises", title_justify="left")
    for col in ("exercise", "result", "time", "check", "expected", "observed"):
        t.add_column(col, overflow="fold")
    for r in results:
        shown = [c for c in r.checks if verbose or c.status is not Status.PASS] or r.checks[:1]
        for i, c in enumerate(shown):
            colour = COLOURS[c.status]
            t.add_row(
                r.name if i == 0 else "",
                f"[{COLOURS[r.status]}]{r.status}[/]" if i == 0 else "",
                f"{r.seconds:.1f}s" if i == 0 else "",
                f"[{colour}]{c.status}[/] {c.name}" + (f"\n  hint: {c.hint}" if c.hint else ""),
                c.expected,
                c.observed,
            )
    return t


def checks_table(title: str, checks: tuple[Check, ...]) -> Table:
    """One result's checks, each with expected and observed (and the hint when it failed)."""
    t = Table(title=title, title_justify="left")
    for col in ("check", "expected", "observed"):
        t.add_column(col, overflow="fold")
    for c in checks:
        colour = COLOURS[c.status]
        t.add_row(
            f"[{colour}]{c.status}[/] {c.name}" + (f"\n  hint: {c.hint}" if c.hint else ""),
            c.expected,
            c.observed,
        )
    return t


def to_json(results: list[ExerciseResult]) -> dict:
    return {
        "summary": {s.value: sum(r.status is s for r in results) for s in Status},
        "exercises": [
            {
                "name": r.name,
                "status": r.status.value,
                "seconds": round(r.seconds, 3),
                "checks": [c.__dict__ | {"status": c.status.value} for c in r.checks],
            }
            for r in results
        ],
    }


def write_json(results: list[ExerciseResult], path: Path) -> None:
    path.write_text(json.dumps(to_json(results), indent=2))


def write_junit(results: list[ExerciseResult], path: Path) -> None:
    """One testcase per check; ENV becomes <skipped> with its reason, FAIL a <failure>."""
    checks = [(r, c) for r in results for c in r.checks]
    suite = ET.Element(
        "testsuite",
        name="hoplab",
        tests=str(len(checks)),
        failures=str(sum(c.status is Status.FAIL for _, c in checks)),
        skipped=str(sum(c.status is Status.ENV for _, c in checks)),
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for r, c in checks:
        case = ET.SubElement(suite, "testcase", classname=f"hoplab.{r.name}", name=c.name)
        detail = f"expected: {c.expected}\nobserved: {c.observed}\nhint: {c.hint}"
        if c.status is Status.FAIL:
            ET.SubElement(case, "failure", message=c.hint or c.name).text = detail
        elif c.status is Status.ENV:
            ET.SubElement(case, "skipped", message=c.hint).text = detail
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
