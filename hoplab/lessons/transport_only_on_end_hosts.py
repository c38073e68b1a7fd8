"""transport-only-on-end-hosts, by hand: a TCP connection from alice to srv has sockets at both
ends and none on the routers between, which forward its segments with ports untouched. Verified
from the socket tables of alice and the routers, and from captures on lan1 and lan2."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, fail
from hoplab.lessons.evidence import captured, listening
from hoplab.lessons.model import Command, Lesson, Step, Watch
from hoplab.lessons.sockets import all_sockets, learner_sockets, seen

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun

PORT = 7900  # no exercise uses it
SERVER = f"socat TCP4-LISTEN:{PORT},fork,reuseaddr EXEC:cat"
CLIENT = f"nc -4 {{srv}} {PORT}"
SEND = f"echo hello | nc -4 -N {{srv}} {PORT}"
LOOK = f"ss -tan '( sport = :{PORT} or dport = :{PORT} )'"
AT_R1 = Watch("r1", "core", f"tcp port {PORT}")
ON_LAN1, ON_LAN2 = Watch("r1", "lan1", f"tcp port {PORT}"), Watch("srv", "lan2", f"tcp port {PORT}")


def _server(run: StepRun) -> Check:
    return listening(run, "srv", ("tcp",), PORT)


def _no_socket_on_routers(run: StepRun) -> Check:
    alice = run.names.fill("{alice}")
    ends = [
        s
        for s in learner_sockets(run.lab.node("alice"))
        if s.state == "ESTAB" and s.peer.endswith(f":{PORT}")
    ]
    crossed = [f for f in captured(run, AT_R1) if f.src_ip == alice and f.dport == PORT]
    on_routers = [
        f"{r}: {s.describe()}"
        for r in ("r1", "r2")
        for s in all_sockets(run.lab.node(r))
        if s.port == PORT or s.peer.endswith(f":{PORT}")
    ]
    expected = (
        f"an open connection from alice to srv:{PORT}, its segments forwarded by r1 (seen on "
        "the core), and no socket for it on r1 or r2"
    )
    observed = f"alice: {seen(ends)}; segments on the core: {len(crossed)}; routers: " + (
        "; ".join(on_routers) or "no socket on the port"
    )
    if ends and crossed and not on_routers:
        return check("", True, expected, observed)
    if on_routers:
        return fail("", expected, observed, hint="a router holds a socket on the port: close it")
    return fail("", expected, observed)


def _same_ports(run: StepRun) -> Check:
    alice = run.names.fill("{alice}")

    def data(watch: Watch) -> dict[tuple[int, int], int]:
        return {
            (f.sport, f.seq): f.ttl
            for f in captured(run, watch)
            if f.src_ip == alice and f.dport == PORT and f.payload_len
        }

    lan1, lan2 = data(ON_LAN1), data(ON_LAN2)
    both = sorted(set(lan1) & set(lan2))
    expected = (
        "the same data segment (ports, sequence number) from alice on lan1 and on lan2, "
        "ttl 64 then 62"
    )
    observed = ", ".join(f"port {p} seq {s}: ttl {lan1[p, s]} -> {lan2[p, s]}" for p, s in both)
    if any((lan1[k], lan2[k]) == (64, 62) for k in both):
        return check("", True, expected, observed)
    return fail("", expected, observed or f"lan1 {len(lan1)}, lan2 {len(lan2)} data segments")


LESSON = Lesson(
    name="transport-only-on-end-hosts",
    title="Transport lives on the end hosts",
    why="""\
TCP and UDP run where the sockets are: on alice and on srv. r1 and r2 forward IP packets by
their destination address; a plain router opens no socket for them and keeps no connection
state (a router that also does NAT, connection tracking or filtering does look at ports, as
the nat lesson shows). On the way, a router changes the TTL (and so the IP checksum); the
ports, sequence numbers and data inside stay as alice sent them.""",
    steps=(
        Step(
            title="a server on srv",
            text=f"Start an echo server on srv port {PORT} and leave it running.",
            commands=(Command("srv", SERVER, keeps_running=True),),
            expect=f"`ss -tlnp` on srv shows socat on `0.0.0.0:{PORT}`.",
            verify=_server,
            hints=(f"start it on srv and leave it running: {SERVER}",),
        ),
        Step(
            title="no socket on the routers",
            text="""\
Connect from alice and keep the connection open. Then look for it on alice and on r1: alice
has a socket, r1 has none, although every segment of the connection passes through r1.""",
            commands=(
                Command("alice", CLIENT, keeps_running=True),
                Command("alice", LOOK),
                Command("r1", LOOK),
            ),
            expect=f"alice: an ESTAB line to `{{srv}}:{PORT}`; r1: only the header line.",
            verify=_no_socket_on_routers,
            watch=(AT_R1,),
            hints=(
                f"connect from alice and keep it open: {CLIENT}",
                "keep the server of step 1 running",
            ),
        ),
        Step(
            title="the ports arrive as sent",
            text="""\
Send one line from alice. The same segment is captured on lan1 (leaving alice) and on lan2
(arriving at srv): same ports, same sequence number, same data; only the TTL went down.""",
            commands=(Command("alice", SEND),),
            expect="srv's socat echoes `hello` back to alice's nc.",
            verify=_same_ports,
            watch=(ON_LAN1, ON_LAN2),
            hints=(f"send it from alice: {SEND}",),
        ),
    ),
    pitfalls="""\
- `ss` in a router shows Docker's DNS listener (127.0.0.11) and whatever you started there: a
  router can run programs too, it just needs none to forward.
- A router with NAT or a stateful firewall keeps per-connection state (conntrack) and rewrites
  or checks ports: "routers never look at ports" is true only of plain forwarding.
- tcpdump on a node prints "cksum incorrect" for what that node sent (offload).""",
)
