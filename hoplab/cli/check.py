"""`hoplab check` and `hoplab assignments`: grade a participant's program in a running lab.

Registered through hoplab.cli.commands.EXTENSIONS; terminal helpers come from hoplab.cli.ui.
Grading, the runtime and rich are imported by the handlers, never when the parser is built.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hoplab.errors import InputError

if TYPE_CHECKING:
    from hoplab.checks import Check
    from hoplab.grading.base import Assignment


def register(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    sp = sub.add_parser(
        "check",
        help="grade your program for an assignment in a fresh grader lab",
        description="Bring up a grader lab from the topology (fresh nodes that nobody has "
        "touched: what you did as root in your own lab cannot change a grade), copy your "
        "program in, run it against hoplab's own peers across the routers, grade it, and "
        "remove the grader lab. Exit 0: every check passed; 1: some failed; 2: bad input. "
        "Start with `hoplab check ASSIGNMENT --init`.",
    )
    sp.add_argument("assignment", nargs="?", metavar="ASSIGNMENT", help="see `hoplab assignments`")
    sp.add_argument(
        "--solution",
        type=Path,
        metavar="PATH",
        help="your program (default: ./<assignment>.py with _ for -, e.g. ./tcp_echo.py)",
    )
    sp.add_argument(
        "-f",
        "--file",
        help="topology file (default: ./compose.yaml, else the packaged default lab)",
    )
    sp.add_argument("--name", help="lab name (default: x-hoplab.name of the file)")
    sp.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML")
    sp.add_argument("--results", type=Path, metavar="FILE", help="write Gradescope results.json")
    sp.add_argument(
        "--init", action="store_true", help="copy the starter to the --solution path and stop"
    )
    sp.add_argument("--list", action="store_true", help="list the assignments")
    sp.add_argument(
        "--in-place",
        action="store_true",
        help="practice: grade in the running lab itself (faster; its root can change the "
        "result, so it is marked practice and writes no --results)",
    )
    sp = sub.add_parser(
        "assignments",
        help="list the workshop assignments, or show one's lesson",
        description="With ASSIGNMENT: its lesson; --starter DIR or --reference DIR writes the "
        "starter or the reference solution as DIR/<program> (never over an existing file).",
    )
    sp.add_argument("assignment", nargs="?", metavar="ASSIGNMENT")
    give = sp.add_mutually_exclusive_group()
    give.add_argument("--starter", type=Path, metavar="DIR", help="write the starter into DIR")
    give.add_argument(
        "--reference", type=Path, metavar="DIR", help="write the reference solution into DIR"
    )
    return {"check": cmd_check, "assignments": cmd_assignments}


def default_solution(a: Assignment) -> Path:
    return Path(a.program)


def cmd_assignments(args: argparse.Namespace) -> int:
    from hoplab import grading
    from hoplab.cli import ui

    wanted = getattr(args, "starter", None) or getattr(args, "reference", None)
    if wanted and not args.assignment:
        raise InputError(
            "--starter and --reference need an assignment",
            key="ASSIGNMENT",
            hint="e.g. hoplab assignments tcp-echo --reference DIR",
        )
    if args.assignment:
        a = grading.select(args.assignment)
        if wanted:
            return _give(a, wanted, a.starter if args.starter else a.solution)
        ui.out.print(a.lesson.read_text() if a.lesson.is_file() else a.summary)
        return 0
    from rich.table import Table

    table = Table(title="hoplab assignments", title_justify="left")
    for col in ("assignment", "builds on", "you write", "what it is"):
        table.add_column(col)
    for a in grading.catalogue():
        table.add_row(a.name, a.exercise, a.program, a.summary)
    ui.out.print(table)
    ui.err.print(
        "start one: hoplab check ASSIGNMENT --init; read its lesson: hoplab assignments ASSIGNMENT"
    )
    return 0


def _give(a: Assignment, folder: Path, source: Path) -> int:
    """Copy the starter or the reference into folder/<program>; never over an existing file."""
    from hoplab.cli import ui

    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is not a directory", key="DIR", hint="name a folder")
    dest = folder / a.program
    if dest.exists() or dest.is_symlink():
        raise InputError(
            f"{dest} exists already; hoplab never overwrites your work",
            key="DIR",
            hint="move it away, or name another folder",
        )
    folder.mkdir(parents=True, exist_ok=True)
    with dest.open("xb") as f:
        f.write(source.read_bytes())
    ui.err.print(
        f"[green]{dest}[/]: {source.stem} of {a.name}; grade it with "
        f"`hoplab check {a.name} --solution {dest}`"
    )
    return 0


def _init(a: Assignment, dest: Path) -> int:
    from hoplab.cli import ui

    if dest.exists():
        raise InputError(
            f"{dest} exists already; --init never overwrites your work",
            key="--solution",
            hint=f"grade it with `hoplab check {a.name}`, or --init --solution OTHER.py",
        )
    shutil.copyfile(a.starter, dest)
    ui.err.print(
        f"[green]{dest}[/] is the starter for {a.name}: fill in its TODOs, then run "
        f"`hoplab check {a.name}`{'' if dest == default_solution(a) else f' --solution {dest}'}"
        f"\n  usage: {a.usage}\n  lesson: hoplab assignments {a.name}  ({a.lesson})"
    )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from hoplab import api, grading, lifecycle
    from hoplab.checks import Status
    from hoplab.cli import ui
    from hoplab.grading import outputs
    from hoplab.grading.grader import grade, load_source

    if args.list:
        return cmd_assignments(argparse.Namespace(assignment=None, starter=None, reference=None))
    if not args.assignment:
        raise InputError(
            "which assignment?",
            key="ASSIGNMENT",
            hint=f"one of: {', '.join(a.name for a in grading.catalogue())}",
        )
    a = grading.select(args.assignment)
    path = args.solution or default_solution(a)
    if args.init:
        return _init(a, path)
    load_source(path, a.name)  # bad input exits 2 before the lab is touched
    if args.in_place and args.results:
        raise InputError(
            "--in-place grades are practice and write no Gradescope results",
            key="--results",
            hint="drop --in-place to be graded in a fresh grader lab",
        )
    name = lifecycle.lab_name(args.file, args.name)

    def show(c: Check) -> None:
        colour = {Status.PASS: "green", Status.FAIL: "red", Status.ENV: "yellow"}[c.status]
        ui.err.print(f"  [{colour}]{c.status}[/] {c.name}")

    if args.in_place:
        ui.err.print(
            f"[yellow]practice[/]: grading {path} for {a.name} in your lab {name} itself "
            f"({a.usage}); a root user in its nodes can change this result, so it is not a grade"
        )
        g = grade(api.attach(name), a, path, show)
    else:
        from hoplab.workshop.graderlab import grader_lab

        engine = api.from_env()
        topo = api.topology(args.file)
        ui.err.print(f"[dim]bringing up a fresh grader lab for {name}[/]")
        with grader_lab(engine, topo, name) as lab:
            ui.err.print(
                f"[dim]grading[/] {path} for {a.name} in grader lab {lab.name} ({a.usage})"
            )
            g = grade(lab, a, path, show)
    ui.out.print(outputs.table(g))
    if args.junit:
        outputs.write_junit(g, args.junit)
    if args.results:
        outputs.write_results(g, args.results)
    verdict = "[green]all checks passed[/]" if g.ok else "[red]mend the first FAIL, then re-run[/]"
    ui.err.print(f"{g.passed}/{len(g.checks)} checks passed in {g.seconds:.1f} s: {verdict}")
    return 0 if g.ok else 1
