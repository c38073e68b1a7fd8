"""`hoplab workshop up|down|status`: a room of labs on the command line (logic: workshop/room.py).

The room's module (and with it docker) is imported by the handlers, not when the parser is built;
the two defaults the help text shows are mirrored here, and a test keeps them equal to the room's.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hoplab.cli.engines import engine_args, engine_lines
from hoplab.errors import HoplabError, InputError

if TYPE_CHECKING:
    from hoplab.workshop import room as workshop

Handler = Callable[[argparse.Namespace], int]
DEFAULT_NAME = "workshop"  # = hoplab.workshop.room.DEFAULT_NAME
PARALLEL = 4  # = hoplab.workshop.room.PARALLEL


def register(sub: Any) -> dict[str, Handler]:
    """Add `workshop` with its own sub-commands to hoplab's parser."""
    sp = sub.add_parser("workshop", help="a room of labs, one per participant: up, down, status")
    room = sp.add_subparsers(dest="workshop_cmd", required=True, parser_class=type(sp))

    def name_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--workshop",
            default=DEFAULT_NAME,
            metavar="NAME",
            help=f"the room's name (default: {DEFAULT_NAME})",
        )

    p = room.add_parser("up", help="bring up one lab per participant, in parallel")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--participants", type=int, metavar="N", help="N labs: <prefix>01..<prefix>N")
    who.add_argument("--roster", metavar="FILE", help="one participant name per line")
    p.add_argument("--prefix", help="name prefix for --participants (default: '<workshop>-')")
    p.add_argument(
        "-f",
        "--file",
        help="topology file (default: ./compose.yaml, else the packaged default lab)",
    )
    p.add_argument("--pool", metavar="CIDR", help="subnet pool for the room (else HOPLAB_POOL)")
    p.add_argument(
        "--parallel",
        type=int,
        default=PARALLEL,
        metavar="K",
        help=f"labs brought up at once (default {PARALLEL})",
    )
    name_arg(p)
    engine_args(p)
    p = room.add_parser("down", help="remove every lab of the room, and nothing else")
    name_arg(p)
    engine_args(p)
    p = room.add_parser("status", help="the room's labs, owners, nodes and ages")
    name_arg(p)
    engine_args(p)
    p = room.add_parser("serve", help="the portal: a browser tab per participant (docs/portal.md)")
    name_arg(p)
    _serve_args(p)
    engine_args(p)
    return {"workshop": cmd_workshop}


def cmd_workshop(args: argparse.Namespace) -> int:
    handlers = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "serve": cmd_serve}
    return handlers[args.workshop_cmd](args)


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free one)")
    p.add_argument("--url", metavar="BASE", help="base URL in the links, e.g. a TLS proxy's")
    p.add_argument("--links", metavar="FILE", help="links CSV (default: in the room's state dir)")
    for flag, what in (("--reissue", "a new link"), ("--revoke", "no link")):
        p.add_argument(
            flag, action="append", default=[], metavar="WHO", help=f"{what} for WHO (or instructor)"
        )
    p.add_argument("--issue-only", action="store_true", help="write the links and stop")
    p.add_argument("-f", "--file", help="topology for a reset whose lab's own file is gone")


def cmd_serve(args: argparse.Namespace) -> int:
    """Imports aiohttp and the portal only here: other commands never load them."""
    from pathlib import Path

    from hoplab.cli import ui
    from hoplab.portal import serve
    from hoplab.workshop.room import check_room_name

    return serve.main(
        lambda: _serve_engines(args),
        check_room_name(args.workshop),
        host=args.host,
        port=args.port,
        base=args.url,
        links_file=Path(args.links) if args.links else None,
        reissue=tuple(args.reissue),
        revoke=tuple(args.revoke),
        issue_only=args.issue_only,
        topology=Path(args.file) if args.file else None,
        say=lambda m: ui.err.print(m, markup=False, soft_wrap=True),
        show=lambda m: ui.out.print(m, markup=False, soft_wrap=True),  # a link never folds
    )


def _serve_engines(args: argparse.Namespace) -> dict[str, Any]:
    """The portal's engines by name: the environment's alone, or those given, reachable ones
    only (an engine out of reach is named, and its participants are told when they ask)."""
    from hoplab.cli import ui

    lines = engine_lines(args)
    if lines is None:
        return {"local": ui.engine()}
    from hoplab.engine.engines import reach
    from hoplab.workshop.spread import on_docker

    reached = reach([line.name for line in lines], measure=False)
    for r in reached:
        if not r.up:
            ui.err.print(f"[yellow]engine {r.name} unreachable, not served[/]: {r.error}")
    if not any(r.up for r in reached):
        raise HoplabError(
            "no engine of the room can be reached: "
            + "; ".join(f"{r.name}: {r.error}" for r in reached),
            hint="start an engine, or check the URLs, ssh keys and contexts",
        )
    return {r.name: on_docker(r) for r in reached if r.up}


def _room(args: argparse.Namespace) -> workshop.Room:
    """Every argument is checked here, before the engine is reached."""
    from hoplab.workshop import room as workshop

    name = workshop.check_room_name(args.workshop)
    if args.roster:
        if args.prefix is not None:
            raise InputError(
                "--prefix goes with --participants",
                key="--prefix",
                hint="drop it: the roster names are the lab names",
            )
        return workshop.Room(name, workshop.read_roster(args.roster), args.roster)
    prefix = f"{name}-" if args.prefix is None else args.prefix
    return workshop.Room(name, workshop.numbered_seats(args.participants, prefix))


def cmd_up(args: argparse.Namespace) -> int:
    from hoplab import api
    from hoplab.cli import ui
    from hoplab.workshop import room as workshop

    room = _room(args)
    topo = api.topology(args.file)
    if args.parallel < 1:
        raise InputError(f"--parallel {args.parallel}: give 1 or more", key="--parallel")
    raw = args.pool or os.environ.get("HOPLAB_POOL")  # read here, at the edge, and passed on
    pool = workshop.check_pool(raw, topo, len(room.seats)) if raw else None
    lines = engine_lines(args)
    if lines is not None:
        from hoplab.cli.spread import up_spread

        return up_spread(args, room, topo, lines, pool)
    engine = api.from_env()
    workshop.check_fits(engine, topo, room)  # nothing is created for a room that cannot fit
    started = time.monotonic()
    with ui.progress() as progress:
        done = ui.seat_progress(progress, len(room.seats))
        report = workshop.up(
            engine, topo, room, on_done=done, say=ui.say, parallel=args.parallel, pool=pool
        )
    elapsed = time.monotonic() - started
    ui.room_summary(room, report, elapsed)
    if report.interrupted:
        raise KeyboardInterrupt
    failed = report.error
    if failed:
        raise HoplabError(
            f"lab {failed.seat.lab} failed: {failed.error}",
            hint=f"mend the cause and run `hoplab workshop up` again (labs already up stay as "
            f"they are), or `hoplab workshop down --workshop {room.name}`",
        )
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from hoplab import api
    from hoplab.cli import ui
    from hoplab.workshop import room as workshop

    name = workshop.check_room_name(args.workshop)
    lines = engine_lines(args)
    if lines is not None:
        from hoplab.cli.spread import down_spread

        return down_spread(name, lines)
    engine = api.from_env()
    started = time.monotonic()
    with ui.progress() as progress:
        labs = workshop.down(engine, name, on_done=lambda lab, d, t: progress("labs down", d, t))
    if not labs:
        ui.err.print(f"workshop {name} has no labs (see `hoplab ls`)")
        return 0
    ui.err.print(
        f"[green]workshop {name} down[/]: removed {len(labs)} labs in "
        f"{time.monotonic() - started:.1f} s"
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from rich.table import Table

    from hoplab import api
    from hoplab.cli import ui
    from hoplab.workshop import room as workshop

    name = workshop.check_room_name(args.workshop)
    lines = engine_lines(args)
    if lines is not None:
        from hoplab.cli.spread import status_spread

        return status_spread(name, lines)
    engine = api.from_env()
    mine = set(workshop.room_labs(engine, name))
    labs = [s for s in engine.labs() if s.name in mine]
    if not labs:
        ui.err.print(f"workshop {name} has no labs (start them with `hoplab workshop up`)")
        return 1
    table = Table(title=f"workshop {name}: {len(labs)} labs", title_justify="left")
    for col in ("lab", "owner", "running", "subnets", "age"):
        table.add_column(col, no_wrap=True)
    for lab in labs:
        running = sum(n.state == "running" for n in lab.nodes)
        table.add_row(
            lab.name,
            lab.owner,
            f"{running}/{len(lab.nodes)}",
            " ".join(sorted(lab.networks.values())),
            ui.age(lab.created),
        )
    ui.out.print(table)
    return 0 if all(lab.running for lab in labs) else 1
