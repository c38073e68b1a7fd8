"""errors-by-layer: each failure says which layer refused, and who sent the refusal."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from hoplab.checks import Check, check
from hoplab.errors import HoplabError
from hoplab.exercises.base import Cast, Exercise
from hoplab.runtime.needs import Apart, Host, client_server

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.runtime.lab import Lab, Node

LESSON = """\
When a connection fails, the error tells you which layer said no, and the packet that carried the
"no" tells you who said it.

- Closed TCP port: the destination host itself answers the SYN with a RST. connect() raises
  ECONNREFUSED. The RST arrives with TTL 64 minus the routers crossed, so it really came from the
  far host and not from a router on the way.
- Closed UDP port: UDP has no handshake, so the destination host answers the datagram with ICMP
  "port unreachable". A *connected* UDP socket turns that into ECONNREFUSED on its next call, and
  IP_RECVERR shows the ICMP's sender: the destination host.
- No route: a router that does not know where to send the packet answers with ICMP "network (or
  host) unreachable" from its own address. connect() raises ENETUNREACH or EHOSTUNREACH, and the
  offender is the router, not the destination.
- A firewall DROP rule answers nothing at all. The SYN goes unanswered, and the caller only sees
  its own timeout. Silence is the evidence.

Evidence: errno values and the ICMP offender addresses that alice's sockets read through
IP_RECVERR, the RST's TTL in the capture on alice, and the routes and rules hoplab changed (and
put back) on r1 and srv.
"""

CLOSED_PORT = 9211  # nobody listens here
DROP_PORT = 9212  # a listener sits here; the DROP rule hides it
CONNECT_TIMEOUT = 1.5
# far is two routers or more from client: the first router's route to far's LAN is one it was
# given (not a connected one), so taking it away leaves that router without a route.
NEEDS = (*client_server("alice", "srv"), Host("far", prefer="dave"), Apart("client", "far", 2))


def run(lab: Lab, cast: Cast) -> list[Check]:
    alice, srv, dave = cast["client"], cast["server"], cast["far"]
    srv_ip, dave_ip = srv.address(), dave.address()
    to_srv = lab.path(alice.name, srv_ip)
    to_dave = lab.path(alice.name, dave_ip)
    return [
        *closed_tcp_port(lab, alice, srv_ip, len(to_srv)),
        closed_udp_port(alice, srv_ip),
        *missing_route(lab, alice, dave_ip, to_dave[0]),
        *drop_rule(alice, srv, srv_ip),
    ]


def closed_tcp_port(lab: Lab, alice: Node, srv_ip: str, routers: int) -> list[Check]:
    lan = lab.network_of(alice.address())
    with lab.capture(alice.name, lan, bpf=f"tcp port {CLOSED_PORT}", label="closed-tcp") as cap:
        got = alice.py("net_errors.py", "tcp", srv_ip, CLOSED_PORT, CONNECT_TIMEOUT).json()
    rsts = [f for f in cap.frames if "R" in f.tcp_flags and f.dst_ip == alice.address()]
    seen = [(f.src_ip, f.ttl) for f in rsts]
    expected_ttl = 64 - routers
    return [
        check(
            "closed TCP port: connect() raises ECONNREFUSED",
            got["errno"] == "ECONNREFUSED",
            "ECONNREFUSED",
            f"{got['result']} {got['errno']} after {got['seconds']} s",
            evidence=f"{alice.name}: net_errors.py tcp {srv_ip} {CLOSED_PORT}",
            hint="a timeout means the SYN or the RST was lost on the way (route, firewall); "
            "'connected' means something listens on the port",
        ),
        check(
            "closed TCP port: the RST comes from the destination host",
            bool(seen) and all(ip == srv_ip and ttl == expected_ttl for ip, ttl in seen),
            f"RST from {srv_ip} with TTL 64 - {routers} routers = {expected_ttl}",
            ", ".join(f"RST from {ip} TTL {ttl}" for ip, ttl in seen) or "no RST captured",
            evidence=f"closed-tcp.pcap ({alice.name}, {lan})",
            hint="a RST with a higher TTL was made by a router on the way (e.g. an iptables "
            "REJECT --reject-with tcp-reset), not by the destination host",
        ),
    ]


def closed_udp_port(alice: Node, srv_ip: str) -> Check:
    got = alice.py("net_errors.py", "udp", srv_ip, CLOSED_PORT).json()
    ok = (
        got["errno"] == "ECONNREFUSED"
        and got.get("offender") == srv_ip
        and (got.get("icmp_type"), got.get("icmp_code")) == (3, 3)
    )
    return check(
        "closed UDP port: ICMP port-unreachable from the destination host gives ECONNREFUSED",
        ok,
        f"ECONNREFUSED; ICMP type 3 code 3 from {srv_ip}",
        f"{got['errno']}; ICMP type {got.get('icmp_type')} code {got.get('icmp_code')} "
        f"from {got.get('offender')}",
        evidence=f"{alice.name}: net_errors.py udp {srv_ip} {CLOSED_PORT} (IP_RECVERR)",
        hint="no error means nothing came back (ICMP filtered, or something listens); an "
        "offender other than the destination is a router or firewall answering in its name",
    )


def missing_route(lab: Lab, alice: Node, dave_ip: str, first_hop: tuple[Node, str]) -> list[Check]:
    router, router_ip = first_hop
    subnet = lab.subnet(lab.network_of(dave_ip))
    saved = _route(router, subnet)
    if saved is None:
        raise HoplabError(f"{router.name} has no route to {subnet} to take away")
    try:
        _ip(router, ["route", "del", subnet])
        got = alice.py("net_errors.py", "tcp", dave_ip, 9213, CONNECT_TIMEOUT).json()
    finally:
        _ip(router, ["route", "replace", *_route_args(saved)])
    restored = _route(router, subnet)
    return [
        check(
            f"no route on {router.name}: ICMP unreachable from the router, not the host",
            got["errno"] in ("ENETUNREACH", "EHOSTUNREACH")
            and got.get("offender") == router_ip
            and got.get("icmp_type") == 3,
            f"ENETUNREACH or EHOSTUNREACH; ICMP type 3 from {router.name} ({router_ip})",
            f"{got['errno']} after {got['seconds']} s; ICMP type {got.get('icmp_type')} code "
            f"{got.get('icmp_code')} from {got.get('offender')}",
            evidence=f"{alice.name}: net_errors.py tcp {dave_ip} 9213 with {subnet} removed on "
            f"{router.name}",
            hint="a timeout means the router dropped the packet silently (no ICMP, or a "
            "default route elsewhere); the offender must be the router that lacks the route",
        ),
        check(
            f"{router.name}'s route to {subnet} is back exactly as it was",
            restored == saved,
            json.dumps(saved),
            json.dumps(restored),
            evidence=f"{router.name}: ip -j route before and after",
            hint="the exercise must leave the lab as it found it",
        ),
    ]


def drop_rule(alice: Node, srv: Node, srv_ip: str) -> list[Check]:
    srv.start_py("net_errors.py", "listen", DROP_PORT, ready="listening")
    rule = ["INPUT", "-p", "tcp", "--dport", str(DROP_PORT), "-j", "DROP"]
    before = alice.py("net_errors.py", "tcp", srv_ip, DROP_PORT, CONNECT_TIMEOUT).json()
    try:
        if not srv.run(["iptables", "-I", *rule]).ok:
            raise HoplabError(f"{srv.name}: could not insert the DROP rule")
        got = alice.py("net_errors.py", "tcp", srv_ip, DROP_PORT, CONNECT_TIMEOUT).json()
    finally:
        srv.run(["iptables", "-D", *rule])
    left = srv.run(["iptables", "-C", *rule]).ok
    return [
        check(
            "DROP rule: connect() only times out",
            before["result"] == "connected"
            and got["errno"] in ("timeout", "ETIMEDOUT")
            and got["seconds"] >= CONNECT_TIMEOUT * 0.9,
            f"connects without the rule; with it, no answer: timeout after {CONNECT_TIMEOUT} s",
            f"without: {before['result']} {before['errno'] or ''}; with: {got['result']} "
            f"{got['errno']} after {got['seconds']} s",
            evidence=f"{alice.name}: net_errors.py tcp {srv_ip} {DROP_PORT}; {srv.name}: "
            "iptables -I " + " ".join(rule),
            hint="a quick ECONNREFUSED means something answered (a REJECT rule, or no "
            "listener reached); failing without the rule means the listener is not there",
        ),
        check(
            "the DROP rule is gone again",
            not left,
            "no rule",
            "rule still present" if left else "no rule",
            evidence=f"{srv.name}: iptables -C " + " ".join(rule),
            hint="the exercise must leave the lab as it found it",
        ),
    ]


def _ip(node: Node, args: list[str]) -> Any:
    res = node.run(["ip", *args])
    if not res.ok:
        raise HoplabError(f"{node.name}: ip {' '.join(args)}: {res.err.strip()}")
    return res


def _route(node: Node, dst: str) -> dict | None:
    """The route to dst as `ip -j route` shows it (the main table)."""
    res = _ip(node, ["-j", "route", "show", "exact", dst])
    routes = json.loads(res.out or "[]")
    return routes[0] if routes else None


def _route_args(r: dict) -> list[str]:
    """`ip route replace` arguments that rebuild a route read with `ip -j route`."""
    args = [r["dst"]]
    if "gateway" in r:
        args += ["via", r["gateway"]]
    args += ["dev", r["dev"]]
    for key, word in (("protocol", "proto"), ("scope", "scope"), ("prefsrc", "src")):
        if key in r:
            args += [word, str(r[key])]
    if "metric" in r:
        args += ["metric", str(r["metric"])]
    if "onlink" in r.get("flags", []):
        args.append("onlink")
    return args


EXERCISE = Exercise(
    name="errors-by-layer",
    summary="Refused, unreachable or silent: errno and ICMP sender show which layer said no.",
    lesson=LESSON,
    needs=NEEDS,
    run=run,
)
