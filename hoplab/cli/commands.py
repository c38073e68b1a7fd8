"""The `hoplab` command: argument parsing, progress and tables. No Docker calls of its own.

Speed rule: building the parser imports only argparse. Each handler imports what it uses (the
API, rich, the exercises, grading), so `hoplab --help` loads none of them and `hoplab ls` loads
only the engine and a table. Extension modules follow the same rule.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hoplab.cli import capture as cli_capture
from hoplab.cli import check as cli_check
from hoplab.cli import graph as cli_graph
from hoplab.cli import impair as cli_impair
from hoplab.cli import init as cli_init
from hoplab.cli import learn as cli_learn
from hoplab.cli import workshop as cli_workshop
from hoplab.cli.engines import engine_args, engine_lines
from hoplab.errors import HoplabError, InputError

if TYPE_CHECKING:
    from rich.table import Table

    from hoplab.engine.interface import EngineAPI
    from hoplab.engine.state import LabState

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 2 with a hint, never a traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        from hoplab.cli import ui

        self.print_usage(sys.stderr)
        ui.err.print(f"[red]error:[/] {message}\n  hint: run `{self.prog} --help`")
        raise SystemExit(2)


def lab_args(sp: argparse.ArgumentParser) -> None:
    """-f and --name, the same for every command that acts on one lab."""
    sp.add_argument(
        "-f",
        "--file",
        help="topology file (default: ./compose.yaml, else the packaged default lab)",
    )
    sp.add_argument("--name", help="lab name (default: x-hoplab.name of the file)")


def _parser(commands: dict[str, Handler]) -> argparse.ArgumentParser:
    """The whole command line; extensions add their subcommands and handlers to `commands`."""
    p = _Parser(prog="hoplab", description="A containerized multi-host network lab.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    sp = sub.add_parser("up", help="bring a lab up (or leave a matching one as it is)")
    lab_args(sp)
    sp.add_argument("--profile", action="store_true", help="show where the time went")
    sp.add_argument(
        "--allow-unsupported",
        action="store_true",
        help="warn instead of refusing impairments this kernel cannot do (delay without netem)",
    )
    lab_args(sub.add_parser("down", help="remove a lab's containers and networks"))
    sp = sub.add_parser("status", help="nodes, roles, addresses and routes of a lab")
    lab_args(sp)
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp = sub.add_parser(
        "exec",
        help="run a command in a node (its program's container if it has one): exec NODE -- CMD",
    )
    lab_args(sp)
    sp.add_argument("node")
    sp.add_argument("command", nargs=argparse.REMAINDER)
    sp = sub.add_parser(
        "shell", help="open a shell in a node (its program's container if it has one)"
    )
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
    sp = sub.add_parser("ls", help="list running labs with owners and ages (--engine: of several)")
    engine_args(sp)
    sub.add_parser("clean", help="remove every hoplab-labelled container and network")
    for register in EXTENSIONS:
        commands.update(register(sub))
    return p


def _status_table(state: LabState) -> Table:
    from rich.table import Table

    nets = ", ".join(
        f"{n} {s}" + (f" {state.networks6[n]}" if n in state.networks6 else "")
        for n, s in state.networks.items()
    )
    table = Table(title=f"lab {state.name}: {nets}", title_justify="left")
    for col in ("node", "role", "state", "addresses", "routes"):
        table.add_column(col, no_wrap=True)
    for node in state.nodes:
        table.add_row(
            node.name,
            node.role,
            node.state + (f"\nown image {node.app}" if node.app else ""),
            "\n".join(
                f"{n} {a}" + (f" {node.addresses6[n]}" if n in node.addresses6 else "")
                for n, a in node.addresses.items()
            ),
            "\n".join(r.replace(" via ", " -> ") for r in node.routes + node.routes6),
        )
    return table


def cmd_up(args: argparse.Namespace) -> int:
    from hoplab import api
    from hoplab.cli import ui
    from hoplab.engine.state import UpAction
    from hoplab.model.load import check_lab_name

    # Validation first (the file, then the name): bad input must create nothing.
    topo = api.topology(args.file)
    name = check_lab_name(args.name, key="--name") if args.name else None
    engine = api.from_env()
    started = time.monotonic()
    with ui.progress() as progress:
        lab = api.up(
            topo,
            name,
            progress=progress,
            say=ui.say,
            engine=engine,
            allow_unsupported=args.allow_unsupported,
        )
    elapsed = time.monotonic() - started
    plan, report = lab.plan, lab.report
    assert plan is not None and report is not None, "api.up() sets both"
    for old, new in plan.remapped:
        ui.err.print(f"[yellow]subnet {old} is taken: lab {plan.lab} uses {new}[/]")
    verb = {
        UpAction.CREATED: "up",
        UpAction.UNCHANGED: "already up",
        UpAction.RESTARTED: "restarted",
        UpAction.REPAIRED: "repaired",
    }
    ui.err.print(f"[green]lab {plan.lab} {verb[report.action]}[/] in {elapsed:.2f} s")
    for node, why in report.repaired.items():
        ui.err.print(f"  restarted {node}: {why}")
    if args.profile:
        for phase, secs in report.timings.items():
            ui.err.print(f"  {phase:<10} {secs:.3f} s")
    ui.out.print(_status_table(lab.state))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from hoplab import api, lifecycle
    from hoplab.cli import ui

    name = lifecycle.lab_name(args.file, args.name)
    engine = api.from_env()
    started = time.monotonic()
    with ui.progress() as progress:
        containers, networks = api.down(name, progress=progress, engine=engine)
    ui.err.print(
        f"[green]lab {name} down[/]: removed {containers} containers and {networks} networks "
        f"in {time.monotonic() - started:.2f} s"
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from hoplab import api, lifecycle
    from hoplab.cli import ui
    from hoplab.engine.state import json_state

    name = lifecycle.lab_name(args.file, args.name)
    engine = api.from_env()
    state = engine.state(name)
    if args.json:
        ui.out.print_json(_status_json(engine, state, json_state(state)))
    elif not state.exists:
        ui.err.print(f"lab {name} is not up (start it with `hoplab up`)")
    else:
        ui.out.print(_status_table(state))
        stopped = [n.name for n in state.nodes if {n.state, n.app or n.state} != {"running"}]
        if stopped:
            ui.err.print(f"[red]not running:[/] {', '.join(stopped)} (`hoplab up` restarts them)")
        from rich.markup import escape

        from hoplab.runtime.lab import left_running  # only for a lab that is up: ~60 ms
        from hoplab.runtime.listeners import foreign_listeners

        for left in left_running(engine, state):
            owner = "its run is still going" if left.owner_alive else "left behind"
            ui.err.print(f"[yellow]running:[/] {escape(left.describe())}: {owner}", soft_wrap=True)
        for f in foreign_listeners(engine, state):  # a learner's server: exercises need its port
            ui.err.print(
                f"[yellow]not started by hoplab:[/] {escape(f.describe())}; "
                f"stop it with `{f.fix(name)}`",
                soft_wrap=True,
            )
        for line in cli_impair.status_lines(engine, state):
            ui.out.print(line, soft_wrap=True)
    return 0 if state.running else 1


def _status_json(engine: EngineAPI, state: LabState, text: str) -> str:
    """json_state plus what the table's footer says: programs still running and listeners that
    hoplab did not start (each with the command that stops it), for a lab that is running."""
    import json
    from dataclasses import asdict

    from hoplab.runtime.lab import left_running
    from hoplab.runtime.listeners import foreign_listeners

    data = json.loads(text)
    running = state.running
    data["left_running"] = [
        asdict(left) | {"owner_alive": left.owner_alive}
        for left in (left_running(engine, state) if running else [])
    ]
    data["foreign_listeners"] = [
        asdict(f) | {"fix": f.fix(state.name)}
        for f in (foreign_listeners(engine, state) if running else [])
    ]
    return json.dumps(data, indent=2)


def _node_container(args: argparse.Namespace) -> tuple[EngineAPI, str]:
    """The engine and the running node's own container (by name) that exec and shell ask for."""
    from hoplab import api, lifecycle

    name = lifecycle.lab_name(args.file, args.name)
    engine = api.from_env()
    container = engine.container(name, args.node)
    if container["State"] != "running":
        raise HoplabError(f"node {args.node} is {container['State']}", hint="run `hoplab up`")
    return engine, container["Names"][0].lstrip("/")


def _note(note: str) -> None:
    """Why a command did not run in the node's program container; stdout stays the command's."""
    if note:
        from hoplab.cli import ui

        ui.err.print(f"[yellow]note:[/] {note}", soft_wrap=True)


def cmd_exec(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise InputError("no command given", hint="hoplab exec NODE -- CMD [ARGS...]")
    engine, container = _node_container(args)
    target, note = engine.exec_target(container, command[:1])
    _note(note)

    def write(fd: int, data: bytes) -> None:
        stream = sys.stdout if fd == 1 else sys.stderr
        stream.buffer.write(data)
        stream.flush()

    return engine.exec_stream(target, command, write)


def cmd_shell(args: argparse.Namespace) -> int:
    engine, container = _node_container(args)
    # bash where the image has it, else its sh; the node's own container has both.
    target, note = engine.exec_target(container, ["/bin/bash"])
    shell = ["/bin/bash", "-l"]
    if note:
        sh, sh_note = engine.exec_target(container, ["/bin/sh"])
        if not sh_note:
            target, note, shell = sh, "", ["/bin/sh", "-l"]
    _note(note)
    return engine.shell(target, shell)


def cmd_run(args: argparse.Namespace) -> int:
    from hoplab import api, exercises, lifecycle, report
    from hoplab.checks import Status
    from hoplab.cli import ui
    from hoplab.exercises import runner

    chosen = exercises.select(args.exercises)
    name = lifecycle.lab_name(args.file, args.name)
    lab = api.attach(name)

    def started(ex: Any) -> None:
        ui.err.print(f"[dim]running[/] {ex.name} ...")

    def done(r: Any) -> None:
        colour = report.COLOURS[r.status]
        ui.err.print(f"  [{colour}]{r.status}[/] {r.name} ({r.seconds:.1f} s)")

    results = runner.run_all(lab, chosen, args.artifacts, started, done)
    ui.out.print(report.table(results, args.verbose))
    if args.json:
        report.write_json(results, args.json)
    if args.junit:
        report.write_junit(results, args.junit)
    from hoplab.draw.html import write_report  # matplotlib and graphviz load only here

    page = write_report(lab, chosen, results, args.artifacts)
    counts = {s: sum(r.status is s for r in results) for s in Status}
    ui.err.print(
        f"{counts[Status.PASS]} passed, {counts[Status.FAIL]} failed, {counts[Status.ENV]} env; "
        f"captures in {args.artifacts}/"
    )
    ui.err.print(f"report: {page}")
    return 1 if counts[Status.FAIL] else 0


def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from hoplab import exercises
    from hoplab.cli import ui
    from hoplab.runtime.needs import describe

    table = Table(title="hoplab exercises", title_justify="left")
    table.add_column("exercise", no_wrap=True)
    table.add_column("what it shows")
    table.add_column("what it needs of the topology (else ENV)")
    for ex in exercises.catalogue():
        table.add_row(ex.name, ex.summary, describe(ex.needs))
    ui.out.print(table)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from hoplab import exercises
    from hoplab.cli import ui

    (ex,) = exercises.select([args.exercise])
    ui.out.print(f"[bold]{ex.name}[/]: {ex.summary}\n")
    ui.out.print(ex.lesson)
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    lines = engine_lines(args)
    if lines is not None:  # several engines: an ENGINE column, and unreachable ones say so
        from hoplab.cli.spread import ls_spread

        return ls_spread(lines)
    from rich.table import Table

    from hoplab import api
    from hoplab.cli import ui

    labs = api.from_env().labs()
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
            ui.age(lab.created),
        )
    ui.out.print(table)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from hoplab import api
    from hoplab.cli import ui
    from hoplab.resources import hosts_dir

    image = api.from_env().ensure_image(hosts_dir(), ui.say)
    ui.err.print(f"[green]hoplab/node ready[/]: {image[:19]}")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from hoplab import api
    from hoplab.cli import ui

    engine = api.from_env()
    with ui.progress() as progress:
        containers, networks = engine.down(None, progress)
    ui.err.print(f"[green]clean[/]: removed {containers} containers and {networks} networks")
    # The host rules go with the last lab; `up` puts them back.
    if os.environ.get("HOPLAB_KEEP_HOST_RULES") == "1":
        return 0  # a scoped view of a shared engine: labs outside it still need the rules
    try:
        engine.remove_host_rules("hoplab/node:latest")
        ui.err.print("[green]clean[/]: removed hoplab's host rules (DOCKER-USER, INPUT, ip6tables)")
    except HoplabError as err:  # the labs are gone either way; say what stayed
        ui.err.print(f"[yellow]clean[/]: host rules left in place: {err.message}", soft_wrap=True)
    return 0


# Feature modules add their own subcommands: register(subparsers) -> {name: handler}. A module
# listed here is imported for every command, `--help` too: at its top it imports argparse-level
# things only, and its handlers import what they use.
EXTENSIONS: tuple[Callable[[Any], dict[str, Handler]], ...] = (
    cli_workshop.register,
    cli_check.register,
    cli_capture.register,
    cli_graph.register,
    cli_init.register,
    cli_impair.register,
    cli_learn.register,
)

COMMANDS: dict[str, Handler] = {
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


def dispatch(argv: list[str] | None = None) -> int:
    """Parse, run the handler, and turn hoplab's errors into messages and exit codes."""
    commands = dict(COMMANDS)
    args = _parser(commands).parse_args(argv)
    try:
        return commands[args.cmd](args)
    except HoplabError as e:
        from rich.markup import escape

        from hoplab.cli import ui

        # Messages quote users' files, keys and paths: never read them as rich markup.
        ui.err.print(f"[red]error:[/] {escape(e.message)}", soft_wrap=True)
        if e.hint:
            ui.err.print(f"  hint: {escape(e.hint)}", soft_wrap=True)
        return e.exit_code
    except KeyboardInterrupt as interrupt:
        from rich.markup import escape

        from hoplab.cli import ui
        from hoplab.interrupts import describe

        ui.err.print(f"[yellow]interrupted[/]: {escape(describe(interrupt))}", soft_wrap=True)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def main(argv: list[str] | None = None) -> int:
    """The entry point with Ctrl-C handled from the first import on (see hoplab.cli)."""
    from hoplab.cli import main as safe_main

    return safe_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
