"""What an exercise is: a lesson, and a function that sets up, runs, collects evidence, checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.runtime.needs import Need

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab, Node, Proc

# The nodes an exercise runs on, by role ("client", "server"), as the runner cast them.
Cast = dict[str, "Node"]


@dataclass(frozen=True)
class Exercise:
    """A lesson, the needs it has of a topology, and a run over the nodes cast into its roles."""

    name: str
    summary: str
    lesson: str
    needs: tuple[Need, ...]
    run: Callable[[Lab, Cast], list[Check]]


def send_then_trace(
    src: Node, listener: Proc, program: str, dst: str, port: int
) -> tuple[dict, dict, dict]:
    """Run a hop-count program's lesson from src: one datagram to the listener on dst:port, then
    a traceroute to dst. (what `send` said, what the listener saw, what `trace` found)."""
    sent = src.py(program, "send", dst, port).json()
    listener.wait(3)  # the datagram is already sent; a live path delivers it in microseconds
    got = listener.json()
    trace = src.py(program, "trace", dst, 8, timeout=30).json()
    return sent, got, trace


def drops_once_per_router(
    name: str,
    what: str,
    sent: int,
    arrived: int | None,
    peer: object,
    path: Sequence[tuple[Node, str]],
    *,
    evidence: str,
    hint: str,
) -> Check:
    """The TTL (or IPv6 hop limit, named by what) a datagram arrived with is the one it was
    sent with, less one per router on the planned path."""
    expected = sent - len(path)
    routers = ", ".join(n.name for n, _ in path)
    return check(
        name,
        arrived == expected,
        f"{sent} - {len(path)} routers ({routers}) = {expected}",
        f"{what} {arrived} from {peer}",
        evidence=evidence,
        hint=hint,
    )


def hop_list(
    name: str, trace: dict, wanted: Sequence[str | None], *, evidence: str, hint: str
) -> Check:
    """A traceroute's answers (the "from" of each hop in trace) are the wanted addresses, in
    order: each router's address facing the sender, then the destination."""
    seen = [h["from"] for h in trace["hops"]]
    return check(
        name,
        seen == list(wanted),
        " -> ".join(str(w) for w in wanted),
        " -> ".join(str(h) for h in seen),
        evidence=evidence,
        hint=hint,
    )
