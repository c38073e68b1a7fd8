"""nat, by hand: with masquerade on r1, srv sees r1's address where bob's was, while bob's own
socket still names bob. Verified from the socket tables of srv and bob, and r1's rules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, fail
from hoplab.lessons.evidence import connections
from hoplab.lessons.model import Command, Lesson, Step
from hoplab.lessons.sockets import learner_sockets, seen

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun

PORT = 8100  # no exercise uses it; the rule below touches only this port
SERVER = f"socat TCP4-LISTEN:{PORT},fork,reuseaddr EXEC:cat"
RULE = f"POSTROUTING -o {{r1@core.iface}} -p tcp --dport {PORT} -j MASQUERADE"
LOOK = f"ss -tn '( sport = :{PORT} )'"


def _direct(run: StepRun) -> Check:
    return connections(run, "srv", PORT, {run.names.fill("{alice}"): 1})


def _masqueraded(run: StepRun) -> Check:
    n = run.names
    bob, r1 = n.fill("{bob}"), n.fill("{r1@core}")
    at_srv = [
        s for s in learner_sockets(run.lab.node("srv")) if s.state == "ESTAB" and s.port == PORT
    ]
    at_bob = [
        s
        for s in learner_sockets(run.lab.node("bob"))
        if s.state == "ESTAB" and s.peer.endswith(f":{PORT}")
    ]
    expected = f"srv sees a connection from r1 ({r1}) while bob's socket says {bob}"
    observed = f"srv: {seen(at_srv)} | bob: {seen(at_bob)}"
    from_r1 = any(s.peer.startswith(r1 + ":") for s in at_srv)
    bob_own = any(s.local.startswith(bob + ":") for s in at_bob)
    if from_r1 and bob_own:
        return check("", True, expected, observed)
    if bob_own and any(s.peer.startswith(bob + ":") for s in at_srv):
        return fail(
            "", expected, observed, hint="srv sees bob himself: the MASQUERADE rule is not on r1"
        )
    return fail("", expected, observed)


def _undone(run: StepRun) -> Check:
    rules = run.lab.node("r1").run(["iptables", "-t", "nat", "-S", "POSTROUTING"]).out
    left = [line for line in rules.splitlines() if f"--dport {PORT}" in line]
    direct = connections(run, "srv", PORT, {run.names.fill("{bob}"): 1})
    expected = f"no NAT rule for port {PORT} on r1, and a new connection from bob as bob"
    observed = f"r1: {'; '.join(left) or 'no rule'} | srv: {direct.observed}"
    if left:
        return fail("", expected, observed, hint="remove the rule: iptables -t nat -D " + RULE)
    return check("", direct.passed, expected, observed)


LESSON = Lesson(
    name="nat",
    title="NAT: the router rewrites the source",
    why="""\
Without NAT, srv knows every client by the client's own address: routers forward and leave
addresses alone. Masquerade (source NAT) on a router rewrites the source address of what leaves
through its outside interface to its own address there, and the source port where needed,
writes the mapping into its connection tracking table (conntrack) and undoes it on the replies.
The client never notices; the server sees the router. In the telephone picture: a switchboard
that calls out for you from its own number. Here a router does look at ports, which plain
forwarding never needs.""",
    steps=(
        Step(
            title="without NAT, srv sees alice",
            text=f"Start a server on srv port {PORT}; connect from alice and keep it open.",
            commands=(
                Command("srv", SERVER, keeps_running=True),
                Command("alice", f"nc -4 {{srv}} {PORT}", keeps_running=True),
                Command("srv", LOOK),
            ),
            expect=f"`ESTAB ... {{srv}}:{PORT} {{alice}}:<port>`: alice's own address.",
            verify=_direct,
            hints=(f"start {SERVER} on srv, then connect from alice: nc -4 {{srv}} {PORT}",),
        ),
        Step(
            title="masquerade on r1",
            text=f"""\
On r1, masquerade what leaves towards the core for port {PORT} (only that port: nothing else
in the lab changes). Then connect from bob and keep it open. Compare what srv and bob say.""",
            commands=(
                Command("r1", f"iptables -t nat -A {RULE}"),
                Command("bob", f"nc -4 {{srv}} {PORT}", keeps_running=True),
                Command("srv", LOOK),
                Command("bob", f"ss -tn '( dport = :{PORT} )'"),
                Command("r1", f"conntrack -L -p tcp --dport {PORT}"),
            ),
            expect="""\
srv: a line from `{r1@core}:<port>`, r1's core address, not bob's. bob: his own
`{bob}:<port>`. conntrack on r1: the entry with both, `src={bob} ... dst={r1@core}`.""",
            verify=_masqueraded,
            hints=(
                f"add the rule on r1 (iptables -t nat -A {RULE}), then from bob: "
                f"nc -4 {{srv}} {PORT}",
            ),
        ),
        Step(
            title="undo it",
            text="""\
Remove the rule, then connect from bob again (a new connection: the open one keeps its
mapping until it ends). srv sees bob himself this time.""",
            commands=(
                Command("r1", f"iptables -t nat -D {RULE}"),
                Command("bob", f"nc -4 {{srv}} {PORT}", keeps_running=True),
                Command("srv", LOOK),
            ),
            expect="A new line on srv from `{bob}:<port>`.",
            verify=_undone,
            hints=(f"remove the rule on r1: iptables -t nat -D {RULE}",),
        ),
    ),
    pitfalls="""\
- Remove your NAT rule when done: it stays on r1 until the node restarts.
- A connection that is already open keeps its translation (conntrack) after the rule goes.
- Masquerade may also change the source port, when two clients' ports would clash on r1's
  one address.""",
)
