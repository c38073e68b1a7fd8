"""`hoplab workshop up|down|status --engine ...` and `hoplab ls --engine ...`: the room over
several engines, in the terminal.

Logic lives in hoplab.workshop.spread (placement in workshop/placement.py); this module only
reaches the engines, prints and picks exit codes: 0 all well, 1 some labs not up / an engine out
of reach / not running, 2 bad input (raised as InputError before any engine is touched).
"""

from __future__ import annotations

import argparse
import time
from ipaddress import IPv4Network
from typing import TYPE_CHECKING

from hoplab.errors import HoplabError

if TYPE_CHECKING:
    from hoplab.model.topology import Topology
    from hoplab.workshop.placement import EngineLine
    from hoplab.workshop.room import Room


def up_spread(
    args: argparse.Namespace,
    room: Room,
    topo: Topology,
    lines: tuple[EngineLine, ...],
    pool: IPv4Network | None,
) -> int:
    from hoplab.cli import ui
    from hoplab.engine.engines import reach
    from hoplab.workshop import spread

    reached = reach([line.name for line in lines])
    if not any(r.up for r in reached):
        raise HoplabError(
            "no engine of the room can be reached: "
            + "; ".join(f"{r.name}: {r.error}" for r in reached),
            hint="start an engine, or check the URLs, ssh keys and contexts; nothing was created",
        )
    started = time.monotonic()
    with ui.progress() as progress:
        done = ui.seat_progress(progress, len(room.seats))
        result = spread.up(
            reached,
            topo,
            room,
            lines=lines,
            on_done=done,
            say=ui.say,
            parallel=args.parallel,
            pool=pool,
        )
    for r in result.unreachable:
        ui.err.print(f"[yellow]engine {r.name} unreachable, skipped[/]: {r.error}")
    ui.room_summary(room, result.report, time.monotonic() - started)
    for r in reached:
        if r.up:
            ui.err.print(f"  on {r.name}: {', '.join(result.placement.on(r.name)) or '-'}")
    if result.report.interrupted:
        raise KeyboardInterrupt
    failed = result.report.error
    if failed:
        raise HoplabError(
            f"lab {failed.seat.lab} failed: {failed.error}",
            hint="mend the cause and run `hoplab workshop up` again with the same engines "
            "(labs already up stay as they are and where they are)",
        )
    if result.placement.unplaced:
        ui.err.print(
            f"[red]{len(result.placement.unplaced)} labs could not be placed[/]: "
            f"{result.placement.why}"
        )
        return 1
    return 1 if result.unreachable else 0


def status_spread(name: str, lines: tuple[EngineLine, ...]) -> int:
    from rich.table import Table

    from hoplab.cli import ui
    from hoplab.engine.engines import reach
    from hoplab.workshop import spread

    parts = spread.status(reach([line.name for line in lines], measure=False), name)
    count = sum(len(p.labs) for p in parts)
    table = Table(title=f"workshop {name}: {count} labs", title_justify="left")
    for col in ("engine", "lab", "owner", "running", "subnets", "age"):
        table.add_column(col, no_wrap=True)
    for part in parts:
        if part.error:  # the reason goes below the table: a long one would squeeze the rows
            table.add_row(part.engine, "[red]unreachable[/]", "", "", "", "")
        for lab in part.labs:
            running = sum(n.state == "running" for n in lab.nodes)
            table.add_row(
                part.engine,
                lab.name,
                lab.owner,
                f"{running}/{len(lab.nodes)}",
                " ".join(sorted(lab.networks.values())),
                ui.age(lab.created),
            )
    ui.out.print(table)
    for part in parts:
        if part.error:
            ui.err.print(f"[red]engine {part.engine}[/]: {part.error}")
    if not count and not any(p.error for p in parts):
        ui.err.print(f"workshop {name} has no labs on these engines")
        return 1
    ok = all(not p.error and all(lab.running for lab in p.labs) for p in parts)
    return 0 if ok and count else 1


def ls_spread(lines: tuple[EngineLine, ...]) -> int:
    """`hoplab ls --engine ...`: every lab of every engine, read from labels (no state file).

    An engine out of reach is a row of its own and a reason on stderr, and the exit code is 1;
    the other engines' labs are listed all the same.
    """
    from rich.markup import escape
    from rich.table import Table

    from hoplab.cli import ui
    from hoplab.engine.engines import reach
    from hoplab.workshop import spread

    parts = spread.status(reach([line.name for line in lines], measure=False), None)
    count = sum(len(p.labs) for p in parts)
    table = Table(title=f"hoplab labs: {count} on {len(parts)} engines", title_justify="left")
    for col in ("engine", "lab", "owner", "nodes", "running", "networks", "age"):
        table.add_column(col, no_wrap=True)
    for part in parts:
        if part.error:
            table.add_row(escape(part.engine), "[red]unreachable[/]", "", "", "", "", "")
        for lab in part.labs:
            table.add_row(
                escape(part.engine),
                lab.name,
                lab.owner,
                str(len(lab.nodes)),
                str(sum(n.state == "running" for n in lab.nodes)),
                str(len(lab.networks)),
                ui.age(lab.created),
            )
    ui.out.print(table)
    for part in parts:
        if part.error:
            ui.err.print(f"[red]engine {escape(part.engine)}[/]: {escape(part.error)}")
    return 1 if any(p.error for p in parts) else 0


def down_spread(name: str, lines: tuple[EngineLine, ...]) -> int:
    from hoplab.cli import ui
    from hoplab.engine.engines import reach
    from hoplab.workshop import spread

    started = time.monotonic()
    reached = reach([line.name for line in lines], measure=False)
    with ui.progress() as progress:
        parts = spread.down(reached, name, on_done=lambda lab, d, t: progress("labs down", d, d))
    removed = sum(len(p.removed) for p in parts)
    ui.err.print(
        f"workshop {name}: removed {removed} labs in {time.monotonic() - started:.1f} s "
        f"({', '.join(f'{p.engine}: {len(p.removed)}' for p in parts)})"
    )
    missed = [p for p in parts if p.error]
    for p in missed:
        ui.err.print(f"[red]engine {p.engine} not emptied[/]: {p.error}")
    if missed:
        ui.err.print(
            "  its labs are still there: run the same `hoplab workshop down` once it is back"
        )
        return 1
    return 0
