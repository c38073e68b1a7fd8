"""Evidence read from a running lab, shared by the exercises and the grading of assignments.

An assignment is graded with the same evidence as the exercise it builds on (the socket table
of tcp-echo is one-port-many-clients' socket table), so the readers live here, once, in public.
"""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from typing import TYPE_CHECKING

from hoplab.errors import HoplabError

if TYPE_CHECKING:  # only for annotations: importing the runtime would import docker
    from hoplab.runtime.lab import Lab, Node

Cell = tuple[str, str]  # (client node, target label)


def ss_tuples(out: str, port: int) -> set[tuple[str, str]]:
    """(local, peer) of every TCP connection in `ss -tnH` output whose local port is port."""
    rows = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[3].rsplit(":", 1)[-1] == str(port):
            rows.add((parts[3], parts[4]))
    return rows


def network_towards(lab: Lab, router: Node, ip: str) -> str:
    """The router's network on which it forwards to ip: the one the next hop (or ip) is on."""
    rest = lab.path(router.name, ip)
    target = rest[0][1] if rest else ip
    for net in lab.state_node(router.name).addresses:
        if ip_address(target) in ip_network(lab.subnet(net)):
            return net
    raise HoplabError(f"{router.name} has no network towards {ip}")


def reach_matrix(
    lab: Lab,
    targets: dict[str, str],
    port: int,
    clients: list[str],
    server: str = "srv",
    timeout: float = 1.0,
) -> dict[Cell, dict]:
    """Dial every target from every client and from the server itself, with real connect()
    calls (sock_scope.py); keyed by (client, target label). The target labelled "lo" is dialled
    only from the server: loopback never leaves a host."""
    by_ip = {ip: label for label, ip in targets.items()}
    seen = {}
    for client in [*clients, server]:
        ips = [ip for label, ip in targets.items() if label != "lo" or client == server]
        res = lab.node(client).py(
            "sock_scope.py", "dial", port, timeout, *ips, timeout=timeout * len(ips) + 10
        )
        for row in res.json():
            seen[(client, by_ip[row["dialled"]])] = row
    return seen


def show_matrix(cells: dict[Cell, str]) -> str:
    """One line per client: `alice: lan2 refused, lan3 answered | carol: ...`."""
    rows: dict[str, list[str]] = {}
    for (client, label), result in cells.items():
        rows.setdefault(client, []).append(f"{label} {result}")
    return " | ".join(f"{client}: {', '.join(r)}" for client, r in rows.items())
