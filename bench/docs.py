"""The figures and counts in README.md and docs/*.md, generated rather than typed: `make docs`.

Typed figures drift (the README once said "all 16 exercises" where there were 20). So a page
holds marked blocks, and this script rewrites what lies between the marks and nothing else:

    <!-- generated: NAME -->                 a table or list, from bench-results/*.json
    ...
    <!-- end: NAME -->

    <!-- count: NAME -->20<!-- end count -->  a number counted in the tree, inline

A block whose JSON is missing (`make bench` and `make bench-room` write them; there are none on a
fresh clone) is left as it stands and named on stderr: figures measured earlier keep the note of
where and when they were measured until a run replaces them. A file that holds only part of its
figures (a `bench.py --commands-only` run, say) fills the blocks it can.

    .venv/bin/python bench/docs.py                  # rewrite the pages in place
    .venv/bin/python bench/docs.py --check          # exit 1 if a page is not what it would write
    .venv/bin/python bench/docs.py --results DIR    # JSON from elsewhere (default bench-results/)
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- generated: ([\w-]+) -->\n)(.*?)(<!-- end: \2 -->)", re.S)
COUNT = re.compile(r"(<!-- count: ([\w-]+) -->)(.*?)(<!-- end count -->)")


# --- counts from the tree -----------------------------------------------------------------------


def bad_command_lines(root: Path) -> int:
    """Entries of BAD_ARGS in tests/test_corpus.py, read without importing the test module."""
    tree = ast.parse((root / "tests" / "test_corpus.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign | ast.Assign) and isinstance(node.value, ast.List):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(getattr(t, "id", None) == "BAD_ARGS" for t in targets):
                return len(node.value.elts)
    raise LookupError("BAD_ARGS not found in tests/test_corpus.py")


def counts(root: Path = ROOT) -> dict[str, int]:
    """Everything a page counts. The catalogues are imported (cheap: `hoplab list` does it)."""
    from hoplab import exercises, grading

    corpus = root / "tests" / "corpus"
    return {
        "exercises": len(exercises.catalogue()),
        "assignments": len(grading.catalogue()),
        "corpus-load": len(list(corpus.glob("*.yaml"))),
        "corpus-up": len(list(corpus.glob("up/*.yaml"))),
        "bad-command-lines": bad_command_lines(root),
        "hostile-programs": len(list((root / "tests" / "hostile").glob("*.py"))),
    }


def cell(text: str) -> str:
    """Text that stays inside one Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def exercise_table() -> str:
    """The catalogue in teaching order, with each exercise's own one-line summary."""
    from hoplab import exercises

    rows = [f"| `{e.name}` | {cell(e.summary)} |" for e in exercises.catalogue()]
    return "\n".join(["| exercise | what it shows |", "| --- | --- |", *rows]) + "\n"


# --- figures from the bench's JSON --------------------------------------------------------------


def secs(x: float) -> str:
    """Seconds as a person reads them: 12 ms, 0.37 s, 11.8 s."""
    if x < 0.1:
        return f"{x * 1000:.2g} ms" if x < 0.01 else f"{x * 1000:.0f} ms"
    return f"{x:.2f} s" if x < 10 else f"{x:.1f} s"


def median(entry: dict) -> float:
    """A summary ({"median", "min", "max", "runs"}) or draw.py's ({"median", "runs"})."""
    return entry["median"]


def spread(entry: dict) -> str:
    lo = entry.get("min", min(entry.get("runs", [entry["median"]])))
    hi = entry.get("max", max(entry.get("runs", [entry["median"]])))
    return f"{secs(lo)} to {secs(hi)}"


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def provenance(path: Path, data: dict) -> str:
    """Where and when the figures were measured, and under what load: a busy machine measures
    the others' load, so the load average travels with the figures."""
    when = datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")
    rounds = sorted({len(v["runs"]) for v in _summaries(data) if isinstance(v.get("runs"), list)})
    loads = sorted(_loads(data))
    parts = ["", ""]
    if rounds:
        parts[0] = f"{rounds[0]}" + (f" to {rounds[-1]}" if len(rounds) > 1 else "") + " rounds"
    if loads:
        parts[1] = f"load average {loads[0]:g}" + (f" to {loads[-1]:g}" if len(loads) > 1 else "")
    said = "; ".join(p for p in parts if p)
    return f"*`bench-results/{path.name}`, written {when}{f' ({said})' if said else ''}.*\n\n"


def _summaries(data: object) -> list[dict]:
    if isinstance(data, dict):
        own = [data] if "median" in data else []
        return own + [s for v in data.values() for s in _summaries(v)]
    return []


def _loads(data: object) -> list[float]:
    """Every load average a bench script kept (keys that start with "loadavg")."""
    found: list[float] = []
    if isinstance(data, dict):
        for k, v in data.items():
            if k.startswith("loadavg"):
                found += v if isinstance(v, list) else [v]
            else:
                found += _loads(v)
    return found


# bench.json holds three blocks' figures: the commands, the own-image rounds, and the rest.
OWN_KEYS = (
    "all hoplab/node up",
    "two own-image nodes up",
    "own-image node cost / hoplab/node node cost",
)


def commands_part(data: dict) -> dict:
    return data.get("commands", {})


def own_part(data: dict) -> dict:
    return {k: data[k] for k in OWN_KEYS if k in data}


def default_lab_part(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "commands" and k not in OWN_KEYS}


def commands(cmds: dict) -> str | None:
    if not cmds:
        return None
    rows = [
        [f"`{k}`", secs(median(v)), spread(v), secs(median(cmds[f"{k} (cpu s)"]))]
        for k, v in cmds.items()
        if isinstance(v, dict) and not k.endswith("(cpu s)")
    ]
    return table(["command", "wall clock, median", "range", "CPU time, median"], rows)


def default_lab(data: dict) -> str | None:
    if "hoplab up" not in data:
        return None
    mininet = "mininet up" in data

    def row(phase: str) -> list[str]:
        cells = [secs(median(data[f"{who} {phase}"])) for who in ("hoplab", "compose", "floor")]
        return [
            f"default lab {phase}",
            *cells,
            secs(median(data[f"mininet {phase}"])) if mininet else "not installed",
        ]

    out = table(
        ["measure", "hoplab", "docker-compose v1", "sequential docker-py loop", "Mininet"],
        [row("up"), row("down")],
    )
    out += (
        f"\n- hoplab `up` is {median(data['up / compose up']):.2f} times docker-compose's and "
        f"{median(data['up / floor up']):.2f} times the sequential loop's; `down` is "
        f"{median(data['down / compose down']):.2f} times docker-compose's and "
        f"{median(data['down / floor down']):.2f} times the loop's (ratios pair by pair within "
        "a round, then the median).\n"
    )
    profile = data.get("hoplab up profile (median over rounds)", {})
    if profile:
        out += "- Where `up` goes (median over rounds): " + ", ".join(
            f"{k} {secs(v)}" for k, v in profile.items()
        )
        out += ".\n"
    if "100 nodes up" in data:
        out += (
            f"- A generated {data['100 nodes count']}-node lab (a chain of routers, each with a "
            f"LAN of hosts): up {secs(median(data['100 nodes up']))}, down "
            f"{secs(median(data['100 nodes down']))}, idle memory "
            f"{median(data['idle MiB per node']):.1f} MiB per node (medians).\n"
        )
    if "warm make lab" in data:
        out += f"- The warm `make lab` takes {secs(median(data['warm make lab']))} (median).\n"
    return out


def own_images(data: dict) -> str | None:
    key = "own-image node cost / hoplab/node node cost"
    if key not in data:
        return None
    cost = data[key]
    return (
        f"- The default lab: {secs(median(data['all hoplab/node up']))} up with hoplab/node "
        f"everywhere, {secs(median(data['two own-image nodes up']))} with alice and srv as "
        f"own-image nodes (medians); an own-image node costs {median(cost):.2f} times a "
        f"hoplab/node node (rounds from {cost['min']:.2f} to {cost['max']:.2f}).\n"
    )


def sizes(data: dict) -> str | None:
    if not data:
        return None
    rows, notes = [], []
    for size, r in sorted(data.items(), key=lambda kv: kv[1]["nodes"]):
        if "compose up" in r:
            compose = f"{secs(median(r['compose up']))} / {secs(median(r['compose down']))}"
        elif "compose (left out)" in r:
            compose = "left out (below)"
            notes.append(f"- docker-compose at {size}: {r['compose (left out)']}")
        else:
            compose = "not run"
        rows.append(
            [
                "default lab" if size == "default" else "generated",
                str(r["nodes"]),
                secs(median(r["hoplab up"])),
                secs(median(r["floor up"])),
                f"{median(r['up / floor up']):.2f}",
                secs(median(r["hoplab down"])),
                secs(median(r["floor down"])),
                f"{median(r['down / floor down']):.2f}",
                compose,
            ]
        )
        if "idle MiB per node" in r:
            notes.append(
                f"- Idle memory at {r['nodes']} nodes: {median(r['idle MiB per node']):.2f} MiB "
                "per node (median)."
            )
    head = ["size", "nodes", "hoplab up", "floor up", "up ratio", "hoplab down", "floor down"]
    out = table([*head, "down ratio", "compose up / down"], rows)
    return out + ("\n" + "\n".join(notes) + "\n" if notes else "")


def plain(labels: dict[str, str]) -> Callable[[dict], str | None]:
    """A table of summaries, one row per key present: what the key is called on the page."""

    def render(data: dict) -> str | None:
        rows = [
            [said, secs(median(data[k])), spread(data[k])]
            for k, said in labels.items()
            if k in data
        ]
        return table(["measure", "median", "range"], rows) if rows else None

    return render


def impair(data: dict) -> str | None:
    if "apply" not in data:
        return None
    labels = {
        "netem_probe": "the netem probe `up` makes first",
        "apply": f"putting {data['impaired']} impairments in place ({data['nodes']} nodes)",
        "show": "reading them back for `hoplab status`",
    }
    rows = [
        [said, secs(data[k]["median_s"]), f"{secs(data[k]['min_s'])} to {secs(data[k]['max_s'])}"]
        for k, said in labels.items()
    ]
    return table(["measure", "median", "range"], rows)


def room(data: dict) -> str | None:
    if "bring-up s" not in data:
        return None
    labs = data["labs"]
    rows = [
        ["room up", f"{labs} labs, {secs(data['bring-up s'])}"],
        ["one lab up (median)", secs(data["lab bring-up s (median)"])],
        ["labs passing their checks", f"{data.get('labs passing checks', 0)} of {labs}"],
        ["checks in every lab", secs(data["checks s"])] if "checks s" in data else None,
        ["memory per lab (median)", f"{data['memory per lab MiB (median)']} MiB"]
        if "memory per lab MiB (median)" in data
        else None,
        ["room down", secs(data["teardown s"])],
        ["objects left behind", str(data["leftover objects"])],
    ]
    out = table(["measure", "figure"], [r for r in rows if r])
    load = data.get("load", {})
    if load:
        out += (
            f"\nAt the start: load average {load['loadavg at start']:.1f} on {load['cpus']} "
            f"CPUs, {load['other labs on the engine']} other labs on the engine.\n"
        )
    return out


def portal(data: dict) -> str | None:
    page = data.get("page_load_ms")
    if not page:
        return None
    checks = data["checks"]
    rows = [
        [
            "labs, open terminals (each printing 5 lines a second)",
            f"{data['labs']}, {data['terminals']}",
        ],
        ["check runs queued at once", str(checks["queued"])],
        ["page load p50 / p95 / max", f"{page['p50']} / {page['p95']} / {page['max']} ms"],
        ["page loads measured", f"{page['samples']} over {page['measured_over_s']} s"],
        [
            "checks passed",
            f"{checks['passed']} of {checks['queued']}, all done after {checks['all_done_s']} s",
        ],
        ["objects left behind", str(data["leftovers"])],
        ["other labs on the engine", str(data["other_labs_on_engine"])],
    ]
    return table(["measure", "figure"], rows)


def wire(data: dict) -> str | None:
    alone, busy = data.get("alone"), data.get("room")
    if not alone or not busy:
        return None
    w, me = busy["wire_ms"], busy["me_ms"]
    rows = [
        [
            "one wire at 100 frames/s: wire to websocket p50 / p95 / max",
            f"{alone['p50']} / {alone['p95']} / {alone['max']} ms",
        ],
        [
            "  frames sent / shown / dropped",
            f"{alone['sent']} / {alone['shown']} / {alone['dropped']}",
        ],
        [
            f"the same with {busy['watching']} participants watching ({busy['taps']} taps)",
            f"{w['p50']} / {w['p95']} / {w['max']} ms",
        ],
        ["  frames sent / shown / dropped", f"{w['sent']} / {w['shown']} / {w['dropped']}"],
        ["/api/me meanwhile p50 / p95 / max", f"{me['p50']} / {me['p95']} / {me['max']} ms"],
        [
            "/api/me before the wires opened (the pings alone) p50 / p95 / max",
            "{p50} / {p95} / {max} ms".format(**data["baseline_me_ms"]),
        ],
        ["/api/me requests measured", str(me["samples"])],
        ["objects left behind", str(data["leftovers"])],
        ["other labs on the engine", str(data["other_labs_on_engine"])],
    ]
    return table(["measure", "figure"], rows)


def check_cost(data: dict) -> str | None:
    """bench/portal.py's check cost: before grader labs (in place), after (warm), and cold."""
    cost = data.get("check_cost")
    if not cost:
        return None
    rows = []
    for mode, c in cost.items():
        ratio = (
            f"{c['median ratio to before']} / {c['p95 ratio to before']}"
            if "median ratio to before" in c
            else "1 / 1"
        )
        rows.append(
            [
                mode,
                f"{c['median_s']} / {c['p95_s']} s",
                ratio,
                f"{c['grading_alone_median_s']} s",
                f"{c['passed']} of {c['checks']}",
                f"{c['loadavg at start']} to {c['loadavg at end']}",
            ]
        )
    head = [
        "where a check grades",
        "button to result, median / p95",
        "ratio to before",
        "grading alone, median",
        "passed",
        "load average",
    ]
    return f"{data['labs']} labs, every participant pressing check at once:\n\n" + table(head, rows)


def engines(data: dict) -> str | None:
    rooms = data.get("rooms")
    if not rooms:
        return None
    rows = [
        [
            str(r["engines"]),
            str(r["labs"]),
            secs(r["up_s"]),
            secs(r["down_s"]),
            " / ".join(map(str, r["shares"].values())),
            str(r["leftovers"]),
        ]
        for r in rooms
    ]
    return table(["engines", "labs", "up", "down", "labs per engine", "left behind"], rows)


# NAME: (the JSON file under the results folder, how its block is written). The block's
# provenance (rounds, load) is read from the part of the file it shows: PARTS, else all of it.
FIGURES: dict[str, tuple[str, Callable[[dict], str | None]]] = {
    "commands": ("bench.json", commands),
    "default-lab": ("bench.json", default_lab),
    "own-images": ("bench.json", own_images),
    "sizes": ("sizes.json", sizes),
    "reuse": (
        "reuse.json",
        plain(
            {
                "reused set-up": "reused lab, fixture set-up",
                "reused set-up, without paramiko": "reused lab, install without paramiko",
                "cold set-up": "a lab of its own (cold), fixture set-up",
            }
        ),
    ),
    "draw": (
        "draw.json",
        plain(
            {
                "100-node topology: SVG": "100-node topology as SVG",
                "100-node topology: PNG": "100-node topology as PNG",
                "100-node topology: Mermaid + DOT": "100-node topology as Mermaid and DOT text",
                "ladder: join 3 x 1,000 frames": "a ladder joined from 3 captures of 1,000 frames",
                "ladder: draw SVG (first 60 rows)": "that ladder drawn as SVG (first 60 rows)",
            }
        ),
    ),
    "impair": ("impair.json", impair),
    "room": ("room.json", room),
    "portal": ("portal.json", portal),
    "wire": ("wire.json", wire),
    "check-cost": ("portal.json", check_cost),
    "engines": ("engines.json", engines),
}


PARTS: dict[str, Callable[[dict], dict]] = {
    "check-cost": lambda d: {"labs": d.get("labs"), "check_cost": d.get("check_cost")},
    "commands": commands_part,
    "default-lab": default_lab_part,
    "own-images": own_part,
}


# --- rewriting the pages ------------------------------------------------------------------------


def blocks(results: Path) -> dict[str, str]:
    """Every block that can be written now: figures whose JSON is there, and the exercise table."""
    out = {"exercise-table": exercise_table()}
    for name, (file, render) in FIGURES.items():
        path = results / file
        if not path.is_file():
            continue
        data = PARTS.get(name, lambda d: d)(json.loads(path.read_text()))
        text = render(data)
        if text is not None:
            out[name] = provenance(path, data) + text
    return out


def rewrite(text: str, new: dict[str, str], numbers: dict[str, int]) -> tuple[str, set[str]]:
    """The page with every block and count it names replaced; and the block names left alone.
    A count name that nothing counts is an error, so a typo cannot leave a stale number."""
    left: set[str] = set()

    def block(m: re.Match) -> str:
        if m[2] not in new:
            left.add(m[2])
            return m[0]
        return m[1] + new[m[2]] + m[4]

    def count(m: re.Match) -> str:
        if m[2] not in numbers:
            raise KeyError(f"nothing counts {m[2]!r}; known: {', '.join(numbers)}")
        return f"{m[1]}{numbers[m[2]]}{m[4]}"

    return COUNT.sub(count, BLOCK.sub(block, text)), left


def pages(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=ROOT / "bench-results")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if out of date")
    args = ap.parse_args()
    new, numbers = blocks(args.results), counts()
    stale, left = [], set()
    for page in pages():
        before = page.read_text()
        after, kept = rewrite(before, new, numbers)
        left |= kept
        if after != before:
            stale.append(page.relative_to(ROOT))
            if not args.check:
                page.write_text(after)
    if left:
        print(
            f"kept as written (no JSON for them in {args.results}): {', '.join(sorted(left))}",
            file=sys.stderr,
        )
    verb = "out of date" if args.check else "rewritten"
    print(f"{verb}: {', '.join(map(str, stale)) or 'none'}", file=sys.stderr)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
