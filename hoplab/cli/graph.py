"""`hoplab graph`: the topology picture of a file (its plan) or of a running lab (its labels).

Registered through hoplab.cli.commands.EXTENSIONS. Drawing libraries load inside the handler, so
other commands do not pay for them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hoplab.errors import HoplabError, InputError

FORMATS = ("svg", "png", "mermaid", "dot")  # hoplab.draw.graph.FORMATS, without importing it


def register(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    sp = sub.add_parser(
        "graph",
        help="draw the topology: routers, hosts, networks and addresses",
        description="Draw a topology file (as planned, no Docker needed) or, with --name, a "
        "running lab (from its labels, with interface names read from the nodes).",
    )
    src = sp.add_mutually_exclusive_group()
    src.add_argument(
        "-f", "--file", help="topology file (default: ./compose.yaml, else the packaged default)"
    )
    src.add_argument("--name", help="draw this running lab instead of a file")
    sp.add_argument("--format", choices=FORMATS, default="svg", help="default: svg")
    sp.add_argument("-o", "--output", type=Path, metavar="FILE", help="default: standard output")
    return {"graph": cmd_graph}


def cmd_graph(args: argparse.Namespace) -> int:
    from hoplab.draw import graph

    if args.format == "png" and args.output is None and sys.stdout.isatty():
        raise InputError("PNG is binary: not written to a terminal", hint="add -o FILE.png")
    pic = _running(args.name) if args.name else _planned(args.file)
    data = graph.render(pic, args.format)
    if args.output:
        try:
            args.output.write_bytes(data)
        except OSError as err:
            raise InputError(f"cannot write {args.output}: {err.strerror}", key="-o") from None
        print(f"{args.output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


def _planned(path: str | None) -> Any:
    from hoplab.draw import graph
    from hoplab.model.load import load
    from hoplab.model.plan import build_plan
    from hoplab.resources import topology_file

    return graph.from_plan(build_plan(load(topology_file(path))))


def _running(name: str) -> Any:
    from hoplab.cli import ui
    from hoplab.draw import graph
    from hoplab.draw.html import interfaces
    from hoplab.runtime.lab import Lab

    engine = ui.engine()
    if not engine.state(name).exists:
        raise HoplabError(f"lab {name!r} is not up", hint="draw its file with -f, or `hoplab up`")
    lab = Lab.attach(engine, name)
    seen = interfaces(lab)
    ifaces = {node: {net: i.name for net, i in nets.items()} for node, nets in seen.items()}
    mtus = {net: i.mtu for nets in seen.values() for net, i in nets.items()}
    return graph.from_state(lab.state, ifaces, mtus)
