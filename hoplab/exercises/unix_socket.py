"""unix-socket: an AF_UNIX socket bound to a path is a file-system name, for IPC on one host."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.exercises.base import Cast, Exercise
from hoplab.runtime.needs import Host

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Capture, Lab
    from hoplab.runtime.pcap import Frame

LESSON = """\
Not every socket is a network socket. A Unix domain socket (AF_UNIX) has no IP address and no
port: its address is a path in the file system, such as /var/run/lab/database.sock, and only
programs that can reach that file, on the same host, can connect to it. Databases and daemons
use them for local clients because nothing goes through the network stack: no packets, no
interfaces, no routes.

bind() creates the path as a special file of type "socket" (S_ISSOCK; `ls -l` shows an "s").
Closing the server does not remove it. A socket file left behind by a server that did not unlink
it is stale: nobody answers a connect() on it (ECONNREFUSED), yet a new bind() on the same path
fails with EADDRINUSE until someone unlinks the file. That is why servers remove a leftover
socket file before they bind.

Not every Unix socket is a file, though. Linux also has abstract names (the address starts with
a NUL byte; `ss -x` shows it as @name): they belong to the network namespace, leave nothing on
disk and vanish with the last socket. And socketpair() makes two connected sockets with no name
at all.

Evidence: a round trip between a server and a client on srv while both of srv's network
interfaces (lan2, lan3) are captured: no frame to or from srv's addresses appears. Then the stale
file left by the server is tried before and after unlinking it.
"""

SOCK_DIR = "/var/run/lab"
SOCK_PATH = f"{SOCK_DIR}/database.sock"


ARP = 0x0806
NEIGHBOUR_DISCOVERY = range(133, 138)  # ICMPv6 router/neighbour solicit and advert, redirect

NEEDS = (Host("server", prefer="srv"),)


def _upkeep(f: Frame) -> bool:
    """ARP, IPv6 neighbour discovery (unicast NUD probes included) and frames to a multicast or
    broadcast MAC (MLD reports and the like): the kernel sends them on its own, above all just
    after a lab comes up, whatever sockets exist. A Unix socket's traffic could never be any."""
    multicast = int(f.dst_mac.split(":")[0], 16) & 1
    discovery = f.proto == "icmp6" and f.icmp_type in NEIGHBOUR_DISCOVERY
    return f.ethertype == ARP or discovery or bool(multicast)


def _ours(cap: Capture, addrs: set[str], macs: set[str]) -> list[Frame]:
    """Frames from or to srv's MACs, or IP packets to or from its addresses, neighbour upkeep
    aside. The MACs catch IPv6 too, without reading srv's IPv6 addresses."""
    return [
        f
        for f in cap.frames
        if not _upkeep(f) and ({f.src_mac, f.dst_mac} & macs or {f.src_ip, f.dst_ip} & addrs)
    ]


def _others(frames: list[Frame]) -> str:
    """Neighbours' frames, kept in the .pcap but not counted: say what they were."""
    kinds: dict[str, int] = {}
    for f in frames:
        kind = f"ethertype 0x{f.ethertype:04x} {f.src_mac} -> {f.dst_mac}"
        kinds[kind] = kinds.get(kind, 0) + 1
    return ", ".join(f"{n}x {k}" for k, n in kinds.items()) or "none"


def _where(cap: Capture) -> str:
    return str(cap.path) if cap.path else f"capture on {cap.node.name} {cap.network}"


def run(lab: Lab, cast: Cast) -> list[Check]:
    # Set up: srv's addresses and MACs, to tell its own frames from neighbours' (ARP and such).
    srv = cast["server"]
    nets = list(lab.state_node(srv.name).addresses)
    addrs = {srv.address(n) for n in nets}
    macs = {srv.iface(n).mac for n in nets}

    try:
        # Run: the whole exchange happens while every network interface of srv is captured.
        with contextlib.ExitStack() as stack:
            caps = [
                stack.enter_context(lab.capture(srv.name, n, label=f"{srv.name}-{n}")) for n in nets
            ]
            server = srv.start_py("sock_unix.py", "serve", SOCK_PATH, ready="listening")
            asked = srv.py("sock_unix.py", "ask", SOCK_PATH, timeout=10).json()
            server.wait(3)  # it exits after one client, leaving the socket file behind
        served = server.json()
        stale = srv.py("sock_unix.py", "stale", SOCK_PATH, timeout=10).json()
    finally:
        srv.run(["rm", "-rf", SOCK_DIR])

    # Check.
    seen = {c.network: _ours(c, addrs, macs) for c in caps}
    path = asked["path"]
    left = stale["left_behind"]
    return [
        check(
            "the client's request makes a round trip through the socket file",
            served.get("served") == asked["request"] and asked["reply"].endswith(asked["request"]),
            f"server gets {asked['request']!r}, client gets the answer back",
            f"server got {served.get('served')!r}, client got {asked['reply']!r}",
            evidence=f"{srv.name}: sock_unix.py serve / ask",
            hint="the server or the client failed; its output is in the exercise error",
        ),
        check(
            f"{SOCK_PATH} is a socket file (S_ISSOCK)",
            path.get("is_socket") is True,
            "exists, S_ISSOCK true (mode s.........)",
            f"exists {path.get('exists')}, S_ISSOCK {path.get('is_socket')}, "
            f"mode {path.get('mode')}",
            evidence=f"{srv.name}: os.lstat() in sock_unix.py ask",
            hint="a regular file or directory at the path is not a socket; bind() makes the "
            "socket file itself",
        ),
        check(
            f"no frame from {srv.name} or to its addresses on {' or '.join(nets)} during the "
            "exchange",
            all(not frames for frames in seen.values()),
            "0 frames on each interface",
            "; ".join(
                f"{c.network}: {len(seen[c.network])} frames from {srv.name} or to/from "
                f"{sorted(addrs)}; not counted: "
                f"{_others([f for f in c.frames if f not in seen[c.network]])}"
                for c in caps
            ),
            evidence=f"{', '.join(_where(c) for c in caps)} (unfiltered captures; counted are "
            f"frames from or to {srv.name}'s MACs (IPv4 and IPv6) and packets to or from "
            f"{srv.name}'s IPv4 "
            f"addresses; neighbour upkeep, {srv.name}'s own included (ARP, IPv6 neighbour "
            "discovery, "
            "frames to a multicast or broadcast MAC), and other nodes' frames are listed but not "
            "counted)",
            hint="a Unix socket never makes packets: frames here come from something else "
            f"talking to {srv.name} at the same time (see the .pcap)",
        ),
        check(
            "a stale socket file blocks bind() until it is unlinked",
            left.get("is_socket") is True
            and (stale["bind_stale"], stale["bind_after_unlink"]) == ("EADDRINUSE", "ok"),
            "file left after the server exits; connect ECONNREFUSED; bind EADDRINUSE; "
            "after unlink: bind ok",
            f"file left {left.get('exists')} (S_ISSOCK {left.get('is_socket')}); "
            f"connect {stale['connect']}; bind {stale['bind_stale']}; "
            f"after unlink: bind {stale['bind_after_unlink']}",
            evidence=f"{srv.name}: sock_unix.py stale",
            hint="no file left means the server unlinked it on exit; bind ok on the stale "
            "file means it was not a socket file",
        ),
    ]


EXERCISE = Exercise(
    name="unix-socket",
    summary="A Unix socket bound to a path is a file (S_ISSOCK), IPC on one host: no frames.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
