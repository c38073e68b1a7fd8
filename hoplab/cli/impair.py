"""`hoplab impair NETWORK ...`: change or clear a running lab's link impairments.

Registered through hoplab.cli.commands.EXTENSIONS. Values are written as in the topology file
(loss 5%, delay 20ms, jitter 5ms, rate 10mbit). Without --node every node's egress on the
network is impaired (both directions); with it, only what that node sends onto it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hoplab.errors import HoplabError, InputError

if TYPE_CHECKING:
    from hoplab.engine.interface import EngineAPI
    from hoplab.engine.state import LabState

SETTINGS = ("loss", "delay", "jitter", "rate")


def register(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    sp = sub.add_parser(
        "impair",
        help="impair a network of a running lab (loss, delay, jitter, rate), or --clear it",
        description="Replace the impairment on NETWORK of a running lab; `hoplab up` puts the "
        "file's impairments back. Delay and jitter need the kernel's netem; without it they are "
        "refused (exit 2) unless --allow-unsupported.",
    )
    sp.add_argument("-f", "--file", help="topology file (default: ./compose.yaml, else default)")
    sp.add_argument("--name", help="lab name (default: x-hoplab.name of the file)")
    sp.add_argument("network")
    sp.add_argument("--loss", help="e.g. 5%%")
    sp.add_argument("--delay", help="e.g. 20ms")
    sp.add_argument("--jitter", help="e.g. 5ms (with --delay)")
    sp.add_argument("--rate", help="e.g. 10mbit")
    sp.add_argument("--node", help="only what this node sends onto the network (one direction)")
    sp.add_argument("--clear", action="store_true", help="remove the impairment")
    sp.add_argument(
        "--allow-unsupported",
        action="store_true",
        help="apply what the kernel can and warn about the rest, instead of refusing",
    )
    return {"impair": cmd_impair}


def wanted(args: argparse.Namespace) -> Any:
    """The Impair the arguments ask for, or None for --clear; bad values are input errors."""
    from hoplab.model.impair import parse, parse_value

    given = {k: getattr(args, k) for k in SETTINGS if getattr(args, k) is not None}
    if args.clear:
        if given:
            raise InputError(
                "--clear takes no settings", key="--clear", hint="clear, or give settings"
            )
        return None
    if not given:
        raise InputError(
            "nothing to impair",
            key="NETWORK",
            hint="give --loss, --delay, --jitter or --rate, or --clear",
        )
    for k, v in given.items():
        parse_value(k, v, key=f"--{k}")
    if "jitter" in given and "delay" not in given:
        raise InputError("--jitter without --delay", key="--jitter", hint="e.g. --delay 20ms")
    return parse(given)


def cmd_impair(args: argparse.Namespace) -> int:
    from hoplab import api, lifecycle
    from hoplab.cli import ui

    imp = wanted(args)  # first: bad input changes nothing
    name = lifecycle.lab_name(args.file, args.name)
    engine = api.from_env()
    state = engine.state(name)
    if not state.running:
        raise HoplabError(f"lab {name!r} is not running", hint="bring it up: hoplab up")
    for warning in engine.change_impairment(
        state, args.network, imp, args.node, args.allow_unsupported
    ):
        ui.err.print(f"[yellow]warning:[/] {warning}")
    now = {k: v for k, v in engine.impairments(state).items() if k[1] == args.network}
    if not now:
        ui.err.print(f"[green]network {args.network} of lab {name}: no impairment[/]")
    for (node, _), text in sorted(now.items()):
        ui.out.print(f"{args.network} {node}: {text}", soft_wrap=True)
    return 0


def status_lines(engine: EngineAPI, state: LabState) -> list[str]:
    """What `hoplab status` prints under its table: each impaired interface as the kernel has it."""
    found = engine.impairments(state)
    return [f"impaired: {net} {node} egress: {text}" for (node, net), text in sorted(found.items())]
