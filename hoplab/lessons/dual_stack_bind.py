"""dual-stack-bind, by hand: one [::] socket with IPV6_V6ONLY off takes IPv6 and IPv4 clients;
the IPv4 ones show up as IPv4-mapped addresses. Verified from srv's socket table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.checks import Check, check, env, fail
from hoplab.lessons.evidence import listening
from hoplab.lessons.model import Command, Lesson, Step
from hoplab.lessons.sockets import learner_sockets, listeners, seen

if TYPE_CHECKING:
    from hoplab.lessons.model import StepRun

PORT = 7400  # no exercise uses it
SERVER = f"socat TCP6-LISTEN:{PORT},ipv6only=0,fork,reuseaddr EXEC:cat"
LOOK = f"ss -tn '( sport = :{PORT} )'"


def _server(run: StepRun) -> Check:
    """The learner's TCP server on PORT, bound to the IPv6 wildcard (ss: * or [::])."""
    first = listening(run, "srv", ("tcp",), PORT)
    if not first.passed:
        return first
    mine = listeners(learner_sockets(run.lab.node("srv")), "tcp")
    here = [s for s in mine if s.port == PORT]
    expected = f"your server on srv bound to [::]:{PORT}"
    if any(s.address in ("*", "[::]") for s in here):
        return check("", True, expected, seen(here))
    return fail(
        "", expected, seen(here), hint="bind the IPv6 wildcard: TCP6-LISTEN, not TCP4-LISTEN"
    )


def _peer(family: str):  # noqa: ANN202 - a verify
    """srv holds a connection of the learner's on PORT whose peer is alice, seen as the given
    family: her IPv6 address, or her IPv4 address mapped into IPv6 (::ffff:a.b.c.d)."""

    def verify(run: StepRun) -> Check:
        alice4, alice6 = run.names.fill("{alice}"), run.names.fill("{alice@lan1.v6}")
        if not alice6:
            return env("", "a lab with IPv6", "no IPv6 address on alice", "dual-stack needs IPv6")
        want = f"[{alice6}]" if family == "IPv6" else f"[::ffff:{alice4}]"
        socks = [s for s in learner_sockets(run.lab.node("srv")) if s.proto == "tcp"]
        here = [s for s in socks if s.state == "ESTAB" and s.port == PORT]
        expected = f"a connection on srv:{PORT} from {want}:<port> ({family})"
        if any(s.peer.rsplit(":", 1)[0] == want for s in here):
            return check("", True, expected, seen(here))
        plain = [s for s in here if s.peer.startswith(alice4 + ":")]
        if plain:
            return fail(
                "",
                expected,
                seen(here),
                hint="that connection went to an IPv4 socket (0.0.0.0): the server of step 1 "
                "must be the only one on the port",
            )
        return fail("", expected, seen(here or socks))

    return verify


LESSON = Lesson(
    name="dual-stack-bind",
    title="One socket, two families",
    why="""\
Every node here has an IPv4 and an IPv6 address. A server could open two sockets, one per
family, but Linux lets one do both: a socket bound to [::] (every IPv6 address) with the option
IPV6_V6ONLY off also receives IPv4 connections. They arrive looking like IPv6, as IPv4-mapped
addresses: ::ffff:{alice} is alice's IPv4 address written as IPv6. The port is then taken in
both families by that one socket.""",
    steps=(
        Step(
            title="a server on [::] with V6ONLY off",
            text=f"Start a server on srv that binds [::] port {PORT}, with ipv6only=0.",
            commands=(Command("srv", SERVER, keeps_running=True), Command("srv", "ss -tlnp")),
            expect=f"`LISTEN ... *:{PORT} *:*`: ss writes `*` for a socket of both families.",
            verify=_server,
            hints=(f"start it on srv and leave it running: {SERVER}",),
        ),
        Step(
            title="an IPv6 client",
            text="""\
From alice, connect by name over IPv6 (-6) and leave the connection open. The name srv has an
IPv6 address ({srv@lan2.v6}), and it is the one a plain `nc srv` would pick first.""",
            commands=(
                Command("alice", f"nc -6 srv {PORT}", keeps_running=True),
                Command("srv", LOOK),
            ),
            expect=f"`ESTAB ... [{{srv@lan2.v6}}]:{PORT} [{{alice@lan1.v6}}]:<port>`",
            verify=_peer("IPv6"),
            hints=(f"connect from alice and keep it open: nc -6 srv {PORT}",),
        ),
        Step(
            title="an IPv4 client on the same socket",
            text="""\
Keep it open and connect from alice again, now over IPv4 (-4). The same listening socket
accepts it.""",
            commands=(
                Command("alice", f"nc -4 srv {PORT}", keeps_running=True),
                Command("srv", LOOK),
            ),
            expect=f"A second line: `[::ffff:{{srv}}]:{PORT} [::ffff:{{alice}}]:<port>`.",
            verify=_peer("IPv4"),
            hints=(
                f"connect over IPv4 from alice and keep it open: nc -4 srv {PORT}",
                "keep the server of step 1 running: it is the only socket on the port",
            ),
        ),
    ),
    pitfalls="""\
- With the mapped socket in place, a second server on 0.0.0.0 and the same port fails with
  "address already in use": the [::] socket holds the IPv4 port too.
- Some systems (BSDs, Windows by default) set IPV6_V6ONLY on: there a [::] socket takes IPv6
  only. Say what you want with the option instead of relying on the default.
- Programs that log peers must expect ::ffff:a.b.c.d, or strip the prefix.""",
)
