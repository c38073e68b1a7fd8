"""socket-is-address-protocol-port: a bind claims one (address, protocol, port), nothing more."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.exercises.base import Cast, Exercise
from hoplab.runtime.needs import Host

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab

LESSON = """\
A port is not a thing of its own. What a program opens is a socket, and binding gives it three
coordinates: an IP address, a protocol (TCP or UDP) and a port number. The kernel refuses a bind
when another socket of the same protocol already holds that port on an address that overlaps:
the same address, or the wildcard that covers it.

So TCP port 5000 and UDP port 5000 are two different sockets and live side by side. A second TCP
socket on the same address and port gets EADDRINUSE. A host with two addresses (srv sits on lan2
and lan3) can bind port 5000 once on each. The wildcard 0.0.0.0 means "every address of this
host", so once it holds TCP 5000, binding TCP 5000 on one particular address clashes with it:
EADDRINUSE again. (None of these sockets sets SO_REUSEADDR or SO_REUSEPORT, and both bend
these rules. SO_REUSEADDR lets a bind pass over connections left in TIME_WAIT. SO_REUSEPORT, set
by the same user on every socket involved, lets several sockets bind, and listen on, the very
same address and port; the kernel then spreads connections or datagrams among them. The node
image's `nc` sets it, so two `nc -l 5000` both listen.)

Evidence: the result of each bind() on srv (ok or the errno name) and the socket table `ss -ltun`
printed while the sockets were held.
"""

PORT = 5000

NEEDS = (Host("server", prefer="srv", homes=2),)


def _bind(b: dict) -> str:
    return f"{b['proto']} {b['addr']}:{b['port']} -> {b['result']}"


def _seen(step: dict) -> str:
    return "; ".join(_bind(b) for b in step["binds"]) + " | ss: " + " / ".join(step["ss"])


def run(lab: Lab, cast: Cast) -> list[Check]:
    # Set up: srv is multi-homed; its two addresses are read from the lab, never assumed.
    srv = cast["server"]
    lan2, lan3 = list(lab.state_node(srv.name).addresses.values())[:2]

    # Run: every bind experiment in one program on srv (it releases each socket before the next).
    steps = srv.py("sock_bind.py", lan2, lan3, PORT, timeout=10).json()
    both, twice = steps["tcp_and_udp"], steps["two_addresses"]
    wild = steps["wildcard_first"]
    tcp, udp, again = both["binds"]
    ev = f"{srv.name}: sock_bind.py (bind() results and `ss -ltun` while held)"

    # Check.
    return [
        check(
            "TCP and UDP hold the same port at the same time",
            (tcp["result"], udp["result"]) == ("ok", "ok"),
            f"tcp {lan2}:{PORT} -> ok; udp {lan2}:{PORT} -> ok",
            "; ".join(_bind(b) for b in (tcp, udp)) + " | ss: " + " / ".join(both["ss"]),
            evidence=ev,
            hint=f"another program on {srv.name} may already hold the port; look at `ss -ltunp` "
            f"on {srv.name}",
        ),
        check(
            "a second TCP socket on the same address and port is refused",
            tcp["result"] == "ok" and again["result"] == "EADDRINUSE",
            f"tcp {lan2}:{PORT} -> EADDRINUSE (the first one holds it)",
            _bind(again),
            evidence=ev,
            hint="ok here means the sockets set SO_REUSEPORT/SO_REUSEADDR, or the first bind "
            "never happened",
        ),
        check(
            f"the same port binds once on each of {srv.name}'s two addresses",
            [b["result"] for b in twice["binds"]] == ["ok", "ok"],
            f"tcp {lan2}:{PORT} -> ok; tcp {lan3}:{PORT} -> ok",
            _seen(twice),
            evidence=ev,
            hint=f"EADDRNOTAVAIL means {srv.name} lost that address (`ip -br addr` on {srv.name}); "
            "EADDRINUSE means something holds the port on 0.0.0.0",
        ),
        check(
            "0.0.0.0 holds the port on every address, so a specific address clashes",
            [b["result"] for b in wild["binds"]] == ["ok", "EADDRINUSE"],
            f"tcp 0.0.0.0:{PORT} -> ok; tcp {lan2}:{PORT} -> EADDRINUSE",
            _seen(wild),
            evidence=ev,
            hint="the wildcard covers every local address; an ok on the second bind means the "
            "wildcard bind did not happen",
        ),
    ]


EXERCISE = Exercise(
    name="socket-is-address-protocol-port",
    summary="A bind claims an (address, protocol, port): TCP and UDP share 5000, duplicates clash.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
