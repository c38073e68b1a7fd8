"""artifacts/report.html: one self-contained page per run, readable offline.

It holds the topology picture, then each exercise with its lesson, its checks (PASS/FAIL/ENV,
expected, observed, hint), a ladder diagram built from its .pcap files, and links to those files
(relative, so the artifacts folder can be zipped and moved). Every picture is inline SVG; the page
has no script and fetches nothing.

The only lab access is reading each node's interfaces (one exec per node, in parallel): the MAC
addresses tie captured frames to nodes, and names and MTUs label the topology.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hoplab.checks import Status
from hoplab.draw import graph, ladder
from hoplab.errors import HoplabError

REPORT = "report.html"
STATUS_COLOURS = {Status.PASS: "#1a7f37", Status.FAIL: "#cf222e", Status.ENV: "#9a6700"}


@dataclass(frozen=True)
class Seen:
    """A node's interface on one lab network, as the node's kernel reports it."""

    name: str
    mac: str
    mtu: int
    network: str


def interfaces(lab: Any) -> dict[str, dict[str, Seen]]:
    """node -> network -> Seen, from `ip -j addr` in every node of a hoplab.runtime Lab."""

    def read(node: Any) -> tuple[str, dict[str, Seen]]:
        try:
            res = node.run(["ip", "-j", "addr", "show"])
        except HoplabError:  # a stopped node: its frames stay unplaced, the page still comes
            return node.name, {}
        by_addr = {a: net for net, a in lab.state_node(node.name).addresses.items()}
        found = {}
        for link in json.loads(res.out or "[]") if res.ok else []:
            for info in link.get("addr_info", []):
                net = by_addr.get(info.get("local", ""))
                if net:
                    found[net] = Seen(link["ifname"], link.get("address", ""), link["mtu"], net)
        return node.name, found

    with ThreadPoolExecutor(max_workers=8) as workers:
        return dict(workers.map(read, lab.nodes))


@dataclass(frozen=True)
class Section:
    """One exercise as the page shows it."""

    name: str
    summary: str
    lesson: str
    status: str
    seconds: float
    checks: tuple[Any, ...]
    ladder_svg: str = ""
    pcaps: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


def section(exercise: Any, result: Any, artifacts: Path, where: ladder.Directory) -> Section:
    """One result as report.html and the portal show it: its exercise's lesson (exercise may be
    None), its checks, and a ladder drawn from its captures (artifacts/<name>/*.pcap)."""
    files = sorted((artifacts / result.name).glob("*.pcap"))
    notes: list[str] = []
    svg = ""
    if files:
        lad = ladder.build(((f.name, f.read_bytes()) for f in files), where)
        if lad.hops:
            svg = ladder.svg(lad, f"{result.name}: {', '.join(f.name for f in files)}")
        elif lad.ignored:
            notes.append(
                f"no ladder: none of the {lad.ignored} captured frames is IPv4 between two "
                "lab nodes whose MAC addresses could be read"
            )
        else:
            notes.append("no ladder: the captures are empty")
    return Section(
        name=result.name,
        summary=getattr(exercise, "summary", ""),
        lesson=getattr(exercise, "lesson", ""),
        status=str(result.status),
        seconds=result.seconds,
        checks=tuple(result.checks),
        ladder_svg=svg,
        pcaps=tuple(f"{result.name}/{f.name}" for f in files),
        notes=tuple(notes),
    )


def sections(
    exercises: Iterable[Any],
    results: Iterable[Any],
    artifacts: Path,
    where: ladder.Directory,
) -> list[Section]:
    """Pair each result with its exercise and draw a ladder from its captures."""
    lessons = {e.name: e for e in exercises}
    return [section(lessons.get(r.name), r, artifacts, where) for r in results]


def directory(lab: Any, seen: dict[str, dict[str, Seen]] | None = None) -> ladder.Directory:
    """Who is who in a running Lab, for its ladders: the MACs its nodes' kernels report (read
    here unless `seen` already holds them) tied to the lab's labelled state."""
    seen = interfaces(lab) if seen is None else seen
    macs = {s.mac.lower(): (node, net) for node, nets in seen.items() for net, s in nets.items()}
    return ladder.directory_from_state(lab.state, macs)


def write_report(lab: Any, exercises: Iterable[Any], results: list[Any], artifacts: Path) -> Path:
    """Draw everything for a finished run in a running Lab and write artifacts/report.html."""
    seen = interfaces(lab)
    mtus = {net: s.mtu for nets in seen.values() for net, s in nets.items()}
    ifnames = {node: {net: s.name for net, s in nets.items()} for node, nets in seen.items()}
    try:
        topo = graph.render(graph.from_state(lab.state, ifnames, mtus), "svg").decode()
    except HoplabError as err:  # no dot: the page says so instead of failing the run
        topo = f'<p class="note">{html.escape(err.message)}. {html.escape(err.hint)}</p>'
    page = render_page(
        lab.name, topo, sections(exercises, results, artifacts, directory(lab, seen))
    )
    artifacts.mkdir(parents=True, exist_ok=True)
    path = artifacts / REPORT
    part = path.with_suffix(".html.part")  # Ctrl-C mid-write leaves the old page, never half
    part.write_text(page, encoding="utf-8")
    part.replace(path)
    return path


# The page around the results (report.html only).
PAGE_CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:1.5em auto;max-width:1200px;color:#1f2328;
padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin:1.6em 0 .3em;
border-bottom:1px solid #d0d7de;padding-bottom:.2em}
.pic{overflow-x:auto;margin:.5em 0}.pic svg{max-width:100%;height:auto}
.topo svg{max-height:760px;width:auto}
.note{color:#57606a;font-style:italic}code{font-size:.9em}
"""
# One result's parts (fragment()), scoped to its element: report.html and the portal's page
# (served as /static/result.css) style them alike, whatever else the page holds.
PARTS_CSS = """
.result .badge{display:inline-block;padding:.1em .5em;border-radius:.4em;color:#fff;
font-weight:bold;font-size:.85em}
.result table{border-collapse:collapse;width:100%;font-size:.85em;margin:.5em 0;display:table}
.result td,.result th{border:1px solid #d0d7de;padding:.25em .5em;text-align:left;
vertical-align:top}
.result th{background:#f6f8fa}.result .lesson{white-space:pre-wrap;background:#f6f8fa;
padding:.6em;font-size:.85em;border-radius:.4em}
.result .pic{overflow-x:auto;margin:.5em 0}.result .pic svg{max-width:100%;height:auto}
.result .note{color:#57606a;font-style:italic}
.result summary{cursor:pointer;color:#0969da}
"""
CSS = PAGE_CSS + PARTS_CSS


def _badge(status: str) -> str:
    colour = STATUS_COLOURS.get(Status(status), "#57606a")
    return f'<span class="badge" style="background:{colour}">{html.escape(status)}</span>'


def fragment(s: Section) -> str:
    """One result's HTML: heading with its badge, summary, lesson, checks (expected, observed,
    hint), its ladder as inline SVG, notes, capture links. report.html and the portal's exercise
    runs both show a result through this one function."""
    esc = html.escape
    rows = "".join(
        f"<tr><td>{_badge(str(c.status))}</td><td>{esc(c.name)}</td><td>{esc(c.expected)}</td>"
        f"<td>{esc(c.observed)}</td><td>{esc(c.hint)}</td></tr>"
        for c in s.checks
    )
    links = ", ".join(f'<a href="{esc(p)}">{esc(p.split("/")[-1])}</a>' for p in s.pcaps)
    parts = [
        f'<h2 id="{esc(s.name)}">{_badge(s.status)} {esc(s.name)} '
        f'<small class="note">{s.seconds:.1f} s</small></h2>',
        f"<p>{esc(s.summary)}</p>",
        f'<details><summary>lesson</summary><div class="lesson">{esc(s.lesson)}</div></details>',
        "<table><tr><th>result</th><th>check</th><th>expected</th><th>observed</th>"
        f"<th>hint</th></tr>{rows}</table>",
    ]
    if s.ladder_svg:
        parts.append(f'<div class="pic">{s.ladder_svg}</div>')
    parts += [f'<p class="note">{esc(n)}</p>' for n in s.notes]
    if links:
        parts.append(f"<p>captures (open in Wireshark): {links}</p>")
    return '<div class="result">\n' + "\n".join(parts) + "\n</div>"


def render_page(lab: str, topology: str, secs: list[Section], now: datetime | None = None) -> str:
    """The page as text: pure, so a test can read it without a lab."""
    esc = html.escape
    counts: Mapping[str, int] = {s: sum(x.status == s for x in secs) for s in Status}
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    index = " · ".join(f'<a href="#{esc(s.name)}">{esc(s.name)}</a>' for s in secs)
    summary = " ".join(f"{_badge(s)} {n}" for s, n in counts.items())
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>hoplab report: {esc(lab)}</title>",
            f"<style>{CSS}</style></head><body>",
            f"<h1>hoplab report: lab {esc(lab)}</h1>",
            f'<p class="note">{stamp}</p><p class="result">{summary}</p><p>{index}</p>',
            "<h2>topology</h2>",
            f'<div class="pic topo">{topology}</div>',
            *(fragment(s) for s in secs),
            "</body></html>",
        ]
    )
