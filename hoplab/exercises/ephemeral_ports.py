"""ephemeral-ports: each client connection gets its own local port; the 4-tuple must be unique."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, env
from hoplab.errors import HoplabError
from hoplab.exercises.base import Cast, Exercise
from hoplab.runtime.needs import client_server

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab, Node

LESSON = """\
When a client calls connect() without bind(), its kernel picks the local port for it: an
ephemeral port, taken from a range (on Linux the sysctl net.ipv4.ip_local_port_range). So one
client can open several connections to the same server port, and each one gets a different
local port. That is what keeps their 4-tuples (client ip, client port, server ip, server port)
apart.

The range is finite. hoplab narrows it to four ports for alice's sockets. Four connections to
srv:80 use up all four ports, and a fifth connect() to srv:80 fails with EADDRNOTAVAIL ("cannot
assign requested address"). But a connection to srv:81 still works, and it may reuse a local
port that is already busy with srv:80, because its 4-tuple is different. What must be unique
is the whole 4-tuple, not the local port alone.

(The sysctl is node-wide, and /proc/sys is read-only inside an unprivileged container. So each
socket narrows its own range with the IP_LOCAL_PORT_RANGE option, which Linux 6.3 and later
have. The kernel applies it inside the node's range.)

Evidence: the local port of every connect(), the errno of the fifth, and alice's `ss -tn`
table, which shows one local port talking to srv:80 and to srv:81 at the same time.
"""

PORT, OTHER = 80, 81
SIZE = 4  # the narrowed range
BLOCKS = range(41000, 45000, SIZE)  # where to look for a block of ports no socket uses

NEEDS = client_server("alice", "srv")


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1]) if ":" in endpoint else -1


def _free_block(node: Node) -> int:
    """The first block of SIZE ports inside the node's range that no socket uses (TIME_WAIT
    left by an earlier run included), so every run starts from the same clean state."""
    out = node.run("cat /proc/sys/net/ipv4/ip_local_port_range; ss -tanH").out.splitlines()
    low, high = (int(x) for x in out[0].split())
    used = {_port(p[3]) for p in (line.split() for line in out[1:]) if len(p) >= 5}
    for lo in BLOCKS:
        if low <= lo and lo + SIZE - 1 <= high and not used & set(range(lo, lo + SIZE)):
            return lo
    raise HoplabError(f"no free block of {SIZE} ports in {BLOCKS} on {node.name}")


def run(lab: Lab, cast: Cast) -> list[Check]:
    # Set up: srv listens on 80 and 81 and keeps every connection open; alice uses 4 ports.
    srv, cli = cast["server"], cast["client"]
    srv_ip, cli_ip = srv.address(), cli.address()
    lo = _free_block(cli)
    hi = lo + SIZE - 1
    srv.start_py("tcp_server.py", "hold", srv_ip, PORT, OTHER, ready="listening")

    # Run: four connections, a fifth, one to :81; read alice's socket table while all are open.
    client = cli.start_py("tcp_ephemeral.py", srv_ip, PORT, OTHER, lo, hi, ready="holding")
    table = client.handshake("ss -tnH", wait_for="holding", signal_after=True).out
    client.wait(5)
    ev = client.json()
    if not isinstance(ev.get("range"), list):
        return [
            env(
                "a narrowed port range runs out",
                f"{cli.name}'s sockets limited to ports {lo}-{hi}",
                f"IP_LOCAL_PORT_RANGE: {ev.get('range')}",
                reason="this kernel lacks IP_LOCAL_PORT_RANGE (Linux 6.3+), and the node-wide "
                "sysctl is read-only in an unprivileged container",
            )
        ]

    # Collect evidence.
    first, extra, other = ev["first"], ev["extra"], ev["other"]
    ports = [a.get("local_port") for a in first]
    rows = {(p[3], p[4]) for p in (line.split() for line in table.splitlines()) if len(p) >= 5}
    shared = other.get("local_port")
    both = {(f"{cli_ip}:{shared}", f"{srv_ip}:{PORT}"), (f"{cli_ip}:{shared}", f"{srv_ip}:{OTHER}")}
    shown = sorted(f"{loc} <-> {peer}" for loc, peer in rows if _port(loc) == shared)

    # Check.
    return [
        check(
            f"four connections to {srv.name}:80 get four distinct local ports",
            all(a["result"] == "ok" for a in first) and len(set(ports)) == SIZE,
            f"{SIZE} distinct ports in {lo}-{hi}",
            ", ".join(str(a.get("local_port", a["result"])) for a in first),
            evidence=f"{cli.name}: tcp_ephemeral.py (getsockname() after each connect())",
            hint=f"a connect that failed shows its errno; check the routes from {cli.name} to "
            f"{srv.name}",
        ),
        check(
            "a fifth connection with the range used up raises EADDRNOTAVAIL",
            extra["result"] == "EADDRNOTAVAIL",
            "EADDRNOTAVAIL",
            extra.get("local_port", extra["result"]),
            evidence=f"{cli.name}: tcp_ephemeral.py (fifth connect() to {srv.name}:80)",
            hint="if it got a port, the range was not narrowed (or not all four connections "
            f"were open); if it timed out, the path to {srv.name} is broken",
        ),
        check(
            f"a connection to {srv.name}:81 reuses a local port busy with {srv.name}:80",
            other["result"] == "ok" and shared in ports and both <= rows,
            f"a port of {lo}-{hi} used to {srv_ip}:{PORT} and {srv_ip}:{OTHER} at once",
            f"{other['result']}, local port {shared}; ss: {'; '.join(shown) or 'nothing'}",
            evidence=f"{cli.name}: tcp_ephemeral.py (connect() to {srv.name}:81) and `ss -tnH` "
            "while held",
            hint="only the 4-tuple must be unique; a refused or timed-out connect to :81 means "
            f"nothing listened on {srv.name}:81 or a filter dropped it",
        ),
    ]


EXERCISE = Exercise(
    name="ephemeral-ports",
    summary="Each connection gets its own ephemeral port; only the 4-tuple must be unique.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
