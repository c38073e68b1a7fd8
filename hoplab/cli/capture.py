"""`hoplab capture NODE[:INTERFACE]`: a live pcap stream of one interface, for Wireshark.

    hoplab capture r1:eth1 | wireshark -k -i -
    hoplab capture r1:core -f 'icmp' -w core.pcap

Registered through hoplab.cli.commands.EXTENSIONS. tcpdump runs in the node's hoplab/node
container (for an own-image node, its sandbox: same network namespace, and it has tcpdump even
when the user's image is FROM scratch), writes pcap to its stdout unbuffered (-U), and the bytes
are passed through as they come. The exec carries the run's mark, so Ctrl-C, a closed pipe
(Wireshark quit) or a crash of ours is followed by a sweep that kills that tcpdump by its mark:
nothing keeps running in the node.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from hoplab.errors import HoplabError, InputError

SNAPLEN = 262144  # whole frames: Wireshark users want payloads, and the lab's MTUs are small


def register(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    sp = sub.add_parser(
        "capture",
        help="stream a live pcap of a node's interface to stdout (pipe it into Wireshark)",
        description="Capture on NODE's INTERFACE (an interface name such as eth1, or the name "
        "of a network the node is on; default: its first) and write pcap to stdout, or to FILE "
        "with -w. Ctrl-C stops it and leaves nothing running in the node.",
    )
    # -f is the capture filter here, as in tcpdump-minded tools; the file is --file only.
    sp.add_argument("--file", help="topology file (default: ./compose.yaml, else default)")
    sp.add_argument("--name", help="lab name (default: x-hoplab.name of the file)")
    sp.add_argument("target", metavar="NODE[:INTERFACE]")
    sp.add_argument("-f", "--filter", dest="bpf", default="", help="a tcpdump capture filter")
    sp.add_argument("-w", "--write", metavar="FILE", help="write the pcap to FILE, not stdout")
    sp.add_argument("-c", "--count", type=int, help="stop after this many frames")
    return {"capture": cmd_capture}


def split_target(target: str) -> tuple[str, str]:
    """NODE[:INTERFACE] into (node, interface or ""); both must be non-empty where given."""
    node, _, iface = target.partition(":")
    if not node or (":" in target and not iface):
        raise InputError(
            f"cannot read {target!r} as NODE[:INTERFACE]",
            key="NODE[:INTERFACE]",
            hint="e.g. hoplab capture r1:eth1, or hoplab capture r1:core (a network name)",
        )
    return node, iface


def tcpdump_argv(iface: str, bpf: str, count: int | None) -> list[str]:
    """tcpdump writing pcap to stdout as each frame comes (-U), numeric, whole frames."""
    argv = ["tcpdump", "-i", iface, "-n", "-U", "--immediate-mode", "-Z", "root"]
    argv += ["-s", str(SNAPLEN), "-w", "-"]
    if count is not None:
        argv += ["-c", str(count)]
    return argv + shlex.split(bpf)


def cmd_capture(args: argparse.Namespace) -> int:
    from hoplab import api, lifecycle
    from hoplab.runtime.lab import Lab

    node_name, wanted = split_target(args.target)
    if args.count is not None and args.count < 1:
        raise InputError("--count must be 1 or more", key="--count", hint="e.g. -c 10")
    name = lifecycle.lab_name(args.file, args.name)
    lab = Lab.attach(api.from_env(), name)
    if node_name not in {n.name for n in lab.nodes}:
        raise InputError(
            f"lab {name!r} has no node {node_name!r}",
            key="NODE",
            hint="one of: " + ", ".join(sorted(n.name for n in lab.nodes)),
        )
    node = lab.node(node_name)
    ifaces = node.interfaces()
    by_name = {i.name: i for i in ifaces.values()}
    if not wanted:
        iface = by_name[sorted(by_name)[0]]
    elif wanted in by_name:
        iface = by_name[wanted]
    elif wanted in ifaces:
        iface = ifaces[wanted]
    else:
        choices = ", ".join(
            f"{i.name} ({i.network})" for i in sorted(by_name.values(), key=lambda i: i.name)
        )
        raise InputError(
            f"node {node_name!r} has no interface or network {wanted!r}",
            key="INTERFACE",
            hint=f"one of: {choices}",
        )
    out: BinaryIO = open(args.write, "wb") if args.write else sys.stdout.buffer  # noqa: SIM115
    say = sys.stderr
    say.write(
        f"capturing on {node_name}:{iface.name} ({iface.network}, {iface.address})"
        + (f" to {Path(args.write)}" if args.write else "")
        + "; Ctrl-C to stop\n"
    )
    say.flush()
    try:

        def write(data: bytes) -> None:
            out.write(data)
            out.flush()  # live: each frame reaches Wireshark as tcpdump hands it over

        code = node.stream(tcpdump_argv(iface.name, args.bpf, args.count), write, say)
    except BrokenPipeError:
        code = 0  # the reader (Wireshark, head) went away: that is how a pipe ends
        if not args.write:  # and Python's own flush at exit must not hit the dead pipe again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        # Closing a pipe whose reader left raises BrokenPipeError again: nothing to report.
        with contextlib.suppress(BrokenPipeError):
            if args.write:
                out.close()
        # Ctrl-C, a closed pipe or an error: the tcpdump carries our mark, so it goes too.
        left = lab.stop_all()
        if left:
            say.write(f"stopped in {node_name}: {'; '.join(left)}\n")
    if code not in (0, None):
        raise HoplabError(f"tcpdump on {node_name}:{iface.name} exited {code}")
    return 0
