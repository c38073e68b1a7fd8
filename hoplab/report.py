"""Exercise results out: a terminal table, JSON, and JUnit XML for CI dashboards."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from ipaddress import ip_address
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from hoplab.checks import Check, ExerciseResult, Status

COLOURS = {Status.PASS: "green", Status.FAIL: "red", Status.ENV: "yellow"}

# A socket address as Python prints it: ['10.77.1.10', 42248], ('10.77.1.10', 42248), or an
# AF_INET6 one with flow info and scope id, ('fd77:1::a', 42248, 0, 0).
_PY_ADDRESS = re.compile(r"""[\[(]\s*'([0-9A-Fa-f:.%]+)',\s*(\d+)(?:,\s*\d+){0,2}\s*[\])]""")


def _endpoint(m: re.Match[str]) -> str:
    host, port = m.group(1), m.group(2)
    try:
        ip = ip_address(host.split("%")[0])
    except ValueError:
        return m.group(0)  # not an address: leave the text as it was
    return f"[{host}]:{port}" if ip.version == 6 else f"{host}:{port}"


def shown(text: str) -> str:
    """Evidence text as the terminal table shows it: socket addresses that a program printed as
    Python lists read as ip:port ([ip6]:port), and nothing in it is taken for rich markup, which
    would eat a bracketed IPv6 address such as [fd77:2::64]."""
    return escape(_PY_ADDRESS.sub(_endpoint, text))


def _check_cell(c: Check) -> str:
    text = f"[{COLOURS[c.status]}]{c.status}[/] {shown(c.name)}"
    return text + (f"\n  hint: {shown(c.hint)}" if c.hint else "")


def table(results: list[ExerciseResult], verbose: bool = False) -> Table:
    """One row per check; without verbose, passing checks are hidden (an exercise that passed
    shows its first), and the caption says how many and how to see them."""
    t = Table(title="hoplab exercises", title_justify="left", caption_justify="left")
    for col in ("exercise", "result", "time", "check", "expected", "observed"):
        t.add_column(col, overflow="fold")
    hidden = 0
    for r in results:
        rows = [c for c in r.checks if verbose or c.status is not Status.PASS] or r.checks[:1]
        hidden += len(r.checks) - len(rows)
        for i, c in enumerate(rows):
            t.add_row(
                shown(r.name) if i == 0 else "",
                f"[{COLOURS[r.status]}]{r.status}[/]" if i == 0 else "",
                f"{r.seconds:.1f}s" if i == 0 else "",
                _check_cell(c),
                shown(c.expected),
                shown(c.observed),
            )
    if hidden:
        t.caption = (
            f"{hidden} passing check{'s' * (hidden != 1)} not shown: "
            "`hoplab run -v` shows every check"
        )
    return t


def checks_table(title: str, checks: tuple[Check, ...]) -> Table:
    """One result's checks, each with expected and observed (and the hint when it failed)."""
    t = Table(title=title, title_justify="left")
    for col in ("check", "expected", "observed"):
        t.add_column(col, overflow="fold")
    for c in checks:
        t.add_row(_check_cell(c), shown(c.expected), shown(c.observed))
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
