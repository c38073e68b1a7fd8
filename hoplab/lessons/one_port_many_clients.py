"""one-port-many-clients, by hand: one listening port, several connections, told apart by the
4-tuple. Verified from srv's socket table: the learner's own connections, open at one moment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.lessons.evidence import connections, listening
from hoplab.lessons.model import Command, Lesson, Step

if TYPE_CHECKING:
    from hoplab.checks import Check
    from hoplab.lessons.model import StepRun

# Not 80: the exercise of the same name serves port 80, and a learner's server left there would
# stand in its way.
PORT = 8000
SERVER = f"socat TCP4-LISTEN:{PORT},fork,reuseaddr EXEC:cat"
LOOK = f"ss -tn '( sport = :{PORT} )'"


def _listen(run: StepRun) -> Check:
    return listening(run, "srv", ("tcp",), PORT)


def _two_from_alice(run: StepRun) -> Check:
    return connections(run, "srv", PORT, {run.names.fill("{alice}"): 2})


def _and_carol(run: StepRun) -> Check:
    alice, carol = run.names.fill("{alice}"), run.names.fill("{carol}")
    return connections(run, "srv", PORT, {alice: 2, carol: 1})


LESSON = Lesson(
    name="one-port-many-clients",
    title="One port, many clients",
    why="""\
A web server answers thousands of people on port 80 at once. How, if a port is "one door"? The
server's kernel does not file a connection under the port alone: it files it under four numbers,
(server address, server port, client address, client port), the 4-tuple. Every client brings a
port of its own, so every connection is a different 4-tuple, and the segment's addresses and
ports pick the socket it belongs to (demultiplexing). You will watch this happen in srv's own
socket table.

The telephone picture helps here: srv's address ({srv}) is the phone number, port 8000
an extension. It breaks at once, too: a real extension is busy with one call, but a port carries
many calls at the same time, each told apart by the caller's number *and* the caller's own
extension (the client port).""",
    steps=(
        Step(
            title="a server on srv's port 8000",
            text=f"""\
Open a terminal on srv (`hoplab shell srv`) and start a small echo server: socat listens on
TCP port {PORT} on every IPv4 address of srv and, for every client, forks a `cat` that sends
back what it gets. Leave it running. In a second srv terminal, look at the listening socket.""",
            commands=(Command("srv", SERVER, keeps_running=True), Command("srv", "ss -tlnp")),
            expect=f"""\
`ss -tlnp` shows `LISTEN ... 0.0.0.0:{PORT} 0.0.0.0:* users:(("socat",pid=...))`: one socket,
one port. (The line on 127.0.0.11 is Docker's DNS; ignore it.)""",
            verify=_listen,
            hints=(
                f"start the server on srv and leave it running: {SERVER}",
                "check it is still running in its terminal, and that the port is " + str(PORT),
            ),
        ),
        Step(
            title="two connections from alice",
            text=f"""\
From alice, connect twice, each in a terminal of its own, and leave both open. Then look at
srv's table of connections on port {PORT}. Both come from the same address: what tells them
apart?""",
            commands=(
                Command("alice", f"nc -4 {{srv}} {PORT}", keeps_running=True),
                Command("alice", f"nc -4 {{srv}} {PORT}", keeps_running=True),
                Command("srv", LOOK),
            ),
            expect=f"""\
Two ESTAB lines, `{{srv}}:{PORT}  {{alice}}:<port>`, with two different client ports (alice's
kernel picked each from its ephemeral range). Type a line in one nc: only that one gets it
back.""",
            verify=_two_from_alice,
            hints=(
                f"open two connections from alice and keep them open: nc -4 {{srv}} {PORT}, twice",
                "is the server of step 1 still running? (ss -tlnp on srv)",
                "use -4: the name srv resolves to IPv6 first, and the server listens on IPv4",
            ),
        ),
        Step(
            title="a third client from carol",
            text=f"""\
Keep alice's two connections open and connect from carol, on srv's own LAN. Now three
connections share srv's address and port {PORT}.""",
            commands=(
                Command("carol", f"nc -4 {{srv}} {PORT}", keeps_running=True),
                Command("srv", LOOK),
            ),
            expect=f"""\
Three ESTAB lines on `{{srv}}:{PORT}`: two from {{alice}} (different ports) and one from
{{carol}}. Three 4-tuples, one listening socket, one port.""",
            verify=_and_carol,
            hints=(
                f"connect from carol and keep alice's two open: nc -4 {{srv}} {PORT}",
                "all three must be open at the same moment; restart any nc that ended",
            ),
        ),
    ),
    pitfalls="""\
- The image's nc sets SO_REUSEPORT: two `nc -l 8000` on srv both listen, and the kernel shares
  connections between them. That is an option the program asked for, not two sockets owning one
  port by accident; socat without `reuseport` refuses the second bind.
- `nc srv 8000` without -4 dials IPv6 first (names resolve IPv6 first) and is refused by a
  server that listens on IPv4 only.
- `ss` always shows Docker's DNS listener on 127.0.0.11; it is not yours.
- A server left on srv:80 stands in the way of `hoplab run`: stop yours with Ctrl-C when done.""",
)
