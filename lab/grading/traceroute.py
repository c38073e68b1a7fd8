"""traceroute: the participant's traceroute, made from IP_TTL and IP_RECVERR, run on two paths.

Built on ttl-and-traceroute: the expected hops are the routes hoplab planned (Lab.path).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.grading.base import Assignment
from hoplab.grading.sandbox import runtime_check

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.grading.sandbox import Fence
    from hoplab.runtime.net import Lab

LIMIT = 15.0
MAX_HOPS = 8
HOP = re.compile(r"^\s*(\d+)\s+(\S+)")
CHECKS = (
    f"runs to the end within {LIMIT:g} s, twice",
    "alice -> srv: the routers in order, then srv",
    "carol -> dave: the router, then dave",
)


def _expected(lab: Lab, src: str, dst_ip: str) -> list[str]:
    return [via for _, via in lab.path(src, dst_ip)] + [dst_ip]


def _hops(out: str) -> list[str]:
    """'TTL ADDRESS' lines, in order; '*' stands for a probe nobody answered."""
    return [m.group(2) for line in out.splitlines() if (m := HOP.match(line))]


def grade(lab: Lab, fence: Fence) -> Iterator[Check]:
    routes = [
        ("alice", lab.address("srv", "lan2"), CHECKS[1]),
        ("carol", lab.address("dave"), CHECKS[2]),
    ]
    runs = [
        (src, dst, name, fence.run(lab.node(src), dst, MAX_HOPS, limit=LIMIT))
        for src, dst, name in routes
    ]
    slow = [r for *_, r in runs if not r.ok]
    yield runtime_check(CHECKS[0], slow[0]) if slow else runtime_check(CHECKS[0], runs[0][3])
    for src, dst, name, ran in runs:
        want, got = _expected(lab, src, dst), _hops(ran.out)
        yield check(
            name,
            got == want,
            "\n".join(f"{i} {h}" for i, h in enumerate(want, 1)),
            "\n".join(f"{i} {h}" for i, h in enumerate(got, 1))
            or f"no 'TTL ADDRESS' lines ({ran.describe()})",
            evidence=f"{src}: python3 traceroute.py {dst} {MAX_HOPS}; expected from the lab's "
            "planned routes",
            hint="send a UDP probe with IP_TTL = 1, 2, ..; read who answered from the error "
            "queue (IP_RECVERR, recvmsg(MSG_ERRQUEUE)): the offender's address follows the "
            "16-byte sock_extended_err; stop at the destination (its port-unreachable)",
        )


ASSIGNMENT = Assignment(
    name="traceroute",
    exercise="ttl-and-traceroute",
    summary="A traceroute made from plain sockets: IP_TTL out, IP_RECVERR back.",
    program="traceroute.py",
    usage=f"python3 traceroute.py HOST MAX_HOPS   (graded on alice and carol, MAX_HOPS {MAX_HOPS})",
    checks=CHECKS,
    grade=grade,
)
