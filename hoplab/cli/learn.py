"""`hoplab learn` and `hoplab verify`: guided lessons the learner types, verified from evidence.

Registered through hoplab.cli.commands.EXTENSIONS. `learn` lists the lessons with progress, or
shows one step (which starts that step's captures); `learn --serve` serves the lab's page in a
browser (hoplab.portal.solo); `verify` checks a step and exits 0 on PASS, 1 on FAIL (ENV counts
as not failed: the environment cannot show it), 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hoplab.lessons.model import Lesson
    from hoplab.lessons.names import Names


def register(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    sp = sub.add_parser(
        "learn",
        help="guided lessons: list them, or show a lesson's current step",
        description="Without LESSON: every lesson, in order, with your progress in this lab. "
        "With LESSON: its current step (or --step N), with the commands to type, each in its "
        "node (`hoplab shell NODE`). Showing a step starts its captures: type its commands "
        "after that, then `hoplab verify LESSON`.",
    )
    _lab_args(sp)
    sp.add_argument("lesson", nargs="?", metavar="LESSON")
    sp.add_argument("--step", type=int, metavar="N", help="show step N (default: the current)")
    sp.add_argument(
        "--json",
        action="store_true",
        help="print the lesson's steps as JSON (format 1, documented in hoplab.lessons.as_json)",
    )
    sp.add_argument(
        "--serve",
        action="store_true",
        help="bring the lab up (or reuse it) and serve its page on 127.0.0.1: terminals, "
        "exercises and checks in a browser; prints one link; Ctrl-C stops (the lab stays)",
    )
    sp.add_argument(
        "--port",
        type=int,
        default=0,
        metavar="N",
        help="with --serve: the port on 127.0.0.1 (default 0: a free one)",
    )
    sp = sub.add_parser(
        "verify",
        help="check a lesson's step from what you did (exit 0 PASS, 1 FAIL)",
        description="Reads the evidence your own programs left (socket tables, the step's "
        "captures); what hoplab's exercises did never counts. A FAIL gives the next hint.",
    )
    _lab_args(sp)
    sp.add_argument("lesson", metavar="LESSON")
    sp.add_argument("--step", type=int, metavar="N", help="verify step N (default: the current)")
    sp.add_argument("--json", action="store_true", help="print the result as JSON")
    return {"learn": cmd_learn, "verify": cmd_verify}


def _lab_args(sp: argparse.ArgumentParser) -> None:
    """-f and --name as every lab command has them (hoplab.cli.commands imports this module, so
    its lab_args cannot be imported back)."""
    sp.add_argument("-f", "--file", help="topology file (default: ./compose.yaml, else default)")
    sp.add_argument("--name", help="lab name (default: x-hoplab.name of the file)")


def _open(args: argparse.Namespace) -> tuple[Any, Names, Any]:
    from hoplab import api, lifecycle
    from hoplab.lessons.names import Names
    from hoplab.lessons.progress import Progress

    name = lifecycle.lab_name(args.file, args.name)
    lab = api.attach(name)
    return lab, Names(lab), Progress(name)


def cmd_learn(args: argparse.Namespace) -> int:
    from hoplab import lessons, lifecycle
    from hoplab.cli import ui
    from hoplab.lessons.progress import Progress

    if args.serve:
        return _serve(args)
    if args.port:
        from hoplab.errors import InputError

        raise InputError("--port goes with --serve", key="--port", hint="hoplab learn --serve")
    if not args.lesson:
        if args.step is not None:
            from hoplab.errors import InputError

            raise InputError("--step needs a LESSON", key="--step", hint="hoplab learn LESSON")
        return _list(ui, Progress(lifecycle.lab_name(args.file, args.name)), lessons.catalogue())
    lesson = lessons.select(args.lesson)
    if args.step is not None:
        lessons.step_number(lesson, args.step)
    lab, names, progress = _open(args)
    number = args.step or progress.current(lesson.name, len(lesson.steps))
    from hoplab.lessons import run

    run.start(lab, names, lesson, number)
    if args.json:
        doc = lessons.as_json(lesson, names, progress.passed(lesson.name))
        doc["shown"] = number
        print(json.dumps(doc, indent=1))
        return 0
    _show(ui, lesson, names, number, progress.passed(lesson.name))
    return 0


def _serve(args: argparse.Namespace) -> int:
    """The learner's lab up (or reused, as `hoplab up` would) and its page served on 127.0.0.1
    (hoplab.portal.solo). Input is checked before the engine is reached: bad input makes
    nothing. Ctrl-C ends the serving with exit 0; the lab stays up, as `learn` leaves it."""
    from hoplab import api
    from hoplab.cli import ui
    from hoplab.errors import InputError
    from hoplab.model.load import check_lab_name

    if args.lesson or args.step is not None or args.json:
        raise InputError(
            "--serve takes no LESSON, --step or --json",
            key="--serve",
            hint="hoplab learn --serve [-f FILE] [--name LAB] [--port N]; lessons: hoplab learn",
        )
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: give 0 (a free port) to 65535", key="--port")
    topo = api.topology(args.file)
    name = check_lab_name(args.name, key="--name") if args.name else None
    try:
        from hoplab.portal import solo
    except ImportError as err:
        raise InputError(
            f"the portal's packages are not installed ({err.name})",
            key="--serve",
            hint="pip install 'hoplab[portal]'",
        ) from None
    with ui.progress() as progress:
        lab = api.up(topo, name, progress=progress, say=ui.say)
    return solo.main(
        lab.engine,
        lab.name,
        args.port,
        say=lambda m: ui.err.print(m, soft_wrap=True, markup=False),
        show=print,
    )


def _list(ui: Any, progress: Any, catalogue: list[Lesson]) -> int:
    from rich.table import Table

    table = Table(title="hoplab lessons (in order)", title_justify="left")
    for col in ("#", "lesson", "title", "progress"):
        table.add_column(col, no_wrap=col != "title")
    for i, lesson in enumerate(catalogue, 1):
        done = len(progress.passed(lesson.name) & set(range(1, len(lesson.steps) + 1)))
        mark = "done" if done == len(lesson.steps) else f"{done}/{len(lesson.steps)} steps"
        table.add_row(str(i), lesson.name, lesson.title, mark)
    ui.out.print(table)
    from hoplab import exercises

    have = {lesson.name for lesson in catalogue}
    missing = [e.name for e in exercises.catalogue() if e.name not in have]
    if missing:
        ui.err.print(
            f"[dim]no guided lesson yet for {len(missing)} exercises ({', '.join(missing)}): "
            "`hoplab explain EXERCISE` has their text[/]",
            soft_wrap=True,
        )
    ui.err.print("start one: hoplab learn LESSON; then type its commands and hoplab verify LESSON")
    return 0


def _show(ui: Any, lesson: Lesson, names: Names, number: int, passed: set[int]) -> None:
    from rich.markdown import Markdown
    from rich.markup import escape

    step = lesson.steps[number - 1]
    total = len(lesson.steps)
    ui.out.print(f"[bold]{lesson.name}[/]: {escape(lesson.title)}")
    if number == 1:
        ui.out.print(Markdown(names.fill(lesson.why)))
    done = " (passed)" if number in passed else ""
    ui.out.print(f"\n[bold]step {number}/{total}: {escape(step.title)}[/]{done}")
    ui.out.print(Markdown(names.fill(step.text)))
    ui.out.print("\n[bold]type[/] (each in its node: hoplab shell NODE)")
    for c in step.commands:
        keep = "  [dim](keeps running: leave it in its own terminal)[/]" if c.keeps_running else ""
        ui.out.print(f"  {c.node}$ {escape(names.fill(c.command))}{keep}", soft_wrap=True)
    ui.out.print("\n[bold]you should see[/]")
    ui.out.print(Markdown(names.fill(step.expect)))
    if step.watch:
        where = ", ".join(f"{w.node} {w.network}" for w in step.watch)
        ui.out.print(f"\n[dim]capturing from now on ({where}); showing it again restarts that[/]")
    ui.out.print(f"\nthen: hoplab verify {lesson.name} --step {number}")
    if number == total:
        ui.out.print("\n[bold]pitfalls[/]")
        ui.out.print(Markdown(names.fill(lesson.pitfalls)))


def cmd_verify(args: argparse.Namespace) -> int:
    from hoplab import lessons, report
    from hoplab.checks import Status
    from hoplab.cli import ui
    from hoplab.lessons import run

    lesson = lessons.select(args.lesson)
    if args.step is not None:
        lessons.step_number(lesson, args.step)
    lab, names, progress = _open(args)
    number = args.step or progress.current(lesson.name, len(lesson.steps))
    failures = progress.data.get(lesson.name, {}).get("hints", {}).get(str(number), 0)
    result = run.verify(lab, names, lesson, number, failures)
    progress.record(lesson.name, number, result.status is not Status.FAIL)
    if args.json:
        print(json.dumps({k: str(v) for k, v in vars(result).items()}, indent=1))
    else:
        colour = report.COLOURS[result.status]
        from rich.markup import escape

        ui.out.print(f"[{colour}]{result.status}[/] {escape(result.name)}", soft_wrap=True)
        ui.out.print(f"  expected: {escape(result.expected)}", soft_wrap=True)
        ui.out.print(f"  observed: {escape(result.observed)}", soft_wrap=True)
        if result.hint:
            ui.out.print(f"  hint: {escape(result.hint)}", soft_wrap=True)
        if result.status is not Status.FAIL and number < len(lesson.steps):
            ui.err.print(f"next: hoplab learn {lesson.name} --step {number + 1}")
    return 1 if result.status is Status.FAIL else 0
