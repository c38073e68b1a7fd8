"""The `hoplab` command: argument parsing, progress and tables. No Docker calls of its own."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from lab import cli_check, cli_workshop, exercises, lifecycle, report, runner
from lab.checks import Status
from lab.engine.client import connect
from lab.engine.image import ensure_image
from lab.engine.labs import Engine, LabState, json_state
from lab.engine.shell import interactive_shell
from lab.errors import HoplabError, InputError
from lab.exercises.base import Exercise
from lab.net import Lab
from lab.runner import ExerciseResult
from lab.topology import load

# Off a terminal (CI logs, pipes) rich would wrap at 80 columns; tables read better wider.
_WIDTH = None if sys.stdout.isatty() else 160
out = Console(highlight=False, width=_WIDTH)
err = Console(stderr=True, highlight=False, width=_WIDTH)


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 2 with a hint, never a traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        err.print(f"[red]error:[/] {message}\n  hint: run `{self.prog} --help`")
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hoplab", description="A containerized multi-host network lab.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    def lab_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-f", "--file", default=lifecycle.DEFAULT_FILE, help="topology file")
        sp.add_argument("--name", help="lab name (default: x-hoplab.name of the file)")

    sp = sub.add_parser("up", help="bring a lab up (or leave a matching one as it is)")
    lab_args(sp)
    sp.add_argument("--profile", action="store_true", help="show where the time went")
    lab_args(sub.add_parser("down", help="remove a lab's containers and networks"))
    sp = sub.add_parser("status", help="nodes, roles, addresses and routes of a lab")
    lab_args(sp)
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp = sub.add_parser("exec", help="run a command in a node: hoplab exec NODE -- CMD...")
    lab_args(sp)
    sp.add_argument("node")
    sp.add_argument("command", nargs=argparse.REMAINDER)
    sp = sub.add_parser("shell", help="open an interactive shell in a node")
    lab_args(sp)
    sp.add_argument("node")
    sp = sub.add_parser("run", help="run exercises in the running lab and check the evidence")
    lab_args(sp)
    sp.add_argument("exercises", nargs="*", metavar="EXERCISE", help="default: all")
    sp.add_argument("--json", type=Path, metavar="FILE", help="write results as JSON")
    sp.add_argument("--junit", type=Path, metavar="FILE", help="write results as JUnit XML")
    sp.add_argument(
        "--artifacts",
        type=Path,
        default=Path("artifacts"),
        metavar="DIR",
        help="where captures (.pcap) go (default: ./artifacts)",
    )
    sp.add_argument("-v", "--verbose", action="store_true", help="show passing checks too")
    sub.add_parser("list", help="list the exercises")
    sp = sub.add_parser("explain", help="print an exercise's lesson")
    sp.add_argument("exercise")
    sub.add_parser("build", help="build the node image hoplab/node if hosts/ changed")
    sub.add_parser("ls", help="list running labs with owners and ages")
    sub.add_parser("clean", help="remove every hoplab-labelled container and network")
    for register in EXTENSIONS:
        COMMANDS.update(register(sub))
    return p


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    """Engine events in, rich progress bars out; the engine never sees rich."""
    bars = Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=False,
    )
    tasks: dict[str, int] = {}

    def update(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bars.add_task(phase, total=total)
        bars.update(tasks[phase], completed=done, total=total)

    with bars:
        yield update


def _say(msg: str) -> None:
    err.print(f"[dim]{msg}[/]")


def _engine() -> Engine:
    return Engine(connect())


def _status_table(state: LabState) -> Table:
    nets = ", ".join(f"{n} {s}" for n, s in state.networks.items())
    table = Table(title=f"lab {state.name}: {nets}", title_justify="left")
    for col in ("node", "role", "state", "addresses", "routes"):
        table.add_column(col, no_wrap=True)
    for node in state.nodes:
        table.add_row(
            node.name,
            node.role,
            node.state,
            "\n".join(f"{n} {a}" for n, a in node.addresses.items()),
            "\n".join(r.replace(" via ", " -> ") for r in node.routes),
        )
    return table


def cmd_up(args: argparse.Namespace) -> int:
    topo = load(args.file)  # validation first: bad input must create nothing
    engine = _engine()
    started = time.monotonic()
    with _progress() as progress:
        result = lifecycle.up(engine, topo, args.name, progress, _say)
    elapsed = time.monotonic() - started
    plan = result.plan
    for old, new in plan.remapped:
        err.print(f"[yellow]subnet {old} is taken: lab {plan.lab} uses {new}[/]")
    verb = {"created": "up", "unchanged": "already up", "restarted": "restarted"}
    err.print(f"[green]lab {plan.lab} {verb[result.report.action]}[/] in {elapsed:.2f} s")
    if args.profile:
        for phase, secs in result.report.timings.items():
            err.print(f"  {phase:<10} {secs:.3f} s")
    out.print(_status_table(engine.state(plan.lab)))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    name = lifecycle.lab_name(args.file, args.name)
    engine = _engine()
    started = time.monotonic()
    with _progress() as progress:
        containers, networks = engine.down(name, progress)
    err.print(
        f"[green]lab {name} down[/]: removed {containers} containers and {networks} networks "
        f"in {time.monotonic() - started:.2f} s"
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    name = lifecycle.lab_name(args.file, args.name)
    state = _engine().state(name)
    if args.json:
        out.print_json(json_state(state))
    elif not state.exists:
        err.print(f"lab {name} is not up (start it with `hoplab up`)")
    else:
        out.print(_status_table(state))
        stopped = [n.name for n in state.nodes if n.state != "running"]
        if stopped:
            err.print(f"[red]not running:[/] {', '.join(stopped)} (`hoplab up` restarts them)")
    return 0 if state.running else 1


def cmd_exec(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise InputError("no command given", hint="hoplab exec NODE -- CMD [ARGS...]")
    name = lifecycle.lab_name(args.file, args.name)
    engine = _engine()
    container = engine.container(name, args.node)
    if container["State"] != "running":
        raise HoplabError(f"node {args.node} is {container['State']}", hint="run `hoplab up`")

    def write(fd: int, data: bytes) -> None:
        stream = sys.stdout if fd == 1 else sys.stderr
        stream.buffer.write(data)
        stream.flush()

    return engine.exec_stream(container["Id"], command, write)


def cmd_shell(args: argparse.Namespace) -> int:
    name = lifecycle.lab_name(args.file, args.name)
    engine = _engine()
    container = engine.container(name, args.node)
    return interactive_shell(engine.api, container["Id"], ["/bin/bash", "-l"])


def cmd_run(args: argparse.Namespace) -> int:
    chosen = exercises.select(args.exercises)
    name = lifecycle.lab_name(args.file, args.name)
    lab = Lab.attach(_engine(), name)

    def started(ex: Exercise) -> None:
        err.print(f"[dim]running[/] {ex.name} ...")

    def done(r: ExerciseResult) -> None:
        colour = report.COLOURS[r.status]
        err.print(f"  [{colour}]{r.status}[/] {r.name} ({r.seconds:.1f} s)")

    results = runner.run_all(lab, chosen, args.artifacts, started, done)
    out.print(report.table(results, args.verbose))
    if args.json:
        report.write_json(results, args.json)
    if args.junit:
        report.write_junit(results, args.junit)
    counts = {s: sum(r.status is s for r in results) for s in Status}
    err.print(
        f"{counts[Status.PASS]} passed, {counts[Status.FAIL]} failed, {counts[Status.ENV]} env; "
        f"captures in {args.artifacts}/"
    )
    return 1 if counts[Status.FAIL] else 0


def cmd_list(args: argparse.Namespace) -> int:
    table = Table(title="hoplab exercises", title_justify="left")
    table.add_column("exercise", no_wrap=True)
    table.add_column("what it shows")
    for ex in exercises.catalogue():
        table.add_row(ex.name, ex.summary)
    out.print(table)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    (ex,) = exercises.select([args.exercise])
    out.print(f"[bold]{ex.name}[/]: {ex.summary}\n")
    out.print(ex.lesson)
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    labs = _engine().labs()
    table = Table(title="hoplab labs", title_justify="left")
    for col in ("lab", "owner", "nodes", "running", "networks", "age"):
        table.add_column(col)
    for lab in labs:
        running = sum(n.state == "running" for n in lab.nodes)
        table.add_row(
            lab.name,
            lab.owner,
            str(len(lab.nodes)),
            str(running),
            str(len(lab.networks)),
            _age(lab.created),
        )
    out.print(table)
    return 0


def _age(created: str) -> str:
    from datetime import UTC, datetime

    try:
        secs = int((datetime.now(UTC) - datetime.fromisoformat(created)).total_seconds())
    except ValueError:
        return "?"
    return (
        f"{secs // 3600}h{secs % 3600 // 60:02d}m"
        if secs >= 3600
        else f"{secs // 60}m{secs % 60:02d}s"
    )


def cmd_build(args: argparse.Namespace) -> int:
    image = ensure_image(_engine().client, lifecycle.hosts_dir(), _say)
    err.print(f"[green]hoplab/node ready[/]: {image[:19]}")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    engine = _engine()
    with _progress() as progress:
        containers, networks = engine.down(None, progress)
    err.print(f"[green]clean[/]: removed {containers} containers and {networks} networks")
    return 0


# Feature modules add their own subcommands: register(subparsers) -> {name: handler}.
EXTENSIONS: tuple[Callable[[Any], dict[str, Callable[[argparse.Namespace], int]]], ...] = (
    cli_workshop.register,
    cli_check.register,
)

COMMANDS = {
    "up": cmd_up,
    "down": cmd_down,
    "status": cmd_status,
    "exec": cmd_exec,
    "shell": cmd_shell,
    "run": cmd_run,
    "list": cmd_list,
    "explain": cmd_explain,
    "build": cmd_build,
    "ls": cmd_ls,
    "clean": cmd_clean,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.cmd](args)
    except HoplabError as e:
        err.print(f"[red]error:[/] {e.message}", soft_wrap=True)
        if e.hint:
            err.print(f"  hint: {e.hint}", soft_wrap=True)
        return e.exit_code
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: nothing half-made was left behind")
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
