"""The `--engine URL` and `--engines FILE` options, shared by `workshop up|down|status|serve`
and `ls`: the engines of a room spread over machines (docs/workshop.md, "A room over several
engines").

Its own module so that both the workshop commands and `ls` (in commands.py) take the same options
without importing each other. At its top it imports argparse-level things only: the parser is
built for every command, and the engines file is parsed (placement.py) only by a handler.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hoplab.workshop.placement import EngineLine


def engine_args(p: argparse.ArgumentParser) -> None:
    """Add --engine (repeatable) and --engines FILE; with neither, the environment's engine."""
    p.add_argument(
        "--engine",
        action="append",
        default=[],
        metavar="URL",
        help="an engine of the room: ssh://, tcp://, unix:// URL, a context, or 'local' (repeat)",
    )
    p.add_argument("--engines", metavar="FILE", help="engines file: URL [labs=N] [nodes=N] a line")


def engine_lines(args: argparse.Namespace) -> tuple[EngineLine, ...] | None:
    """The engines given, file lines first, each once; None for the single engine of the
    environment (the path before engines: DOCKER_HOST, a context, the local socket)."""
    from hoplab.workshop import placement

    lines = placement.read_engines(args.engines) if args.engines else ()
    given = {line.name for line in lines}
    extra = [placement.EngineLine(e) for e in dict.fromkeys(args.engine) if e not in given]
    return (*lines, *extra) or None
