"""unix-socket, by hand: a server on a path in srv's file system, a client through it, and an
abstract socket that has a name but no file. Verified from srv's Unix socket table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.lessons.evidence import unix_socket
from hoplab.lessons.model import Command, Lesson, Step

if TYPE_CHECKING:
    from hoplab.checks import Check
    from hoplab.lessons.model import StepRun

PATH = "/tmp/lesson.sock"
ABSTRACT = "lesson"
SERVER = f"socat UNIX-LISTEN:{PATH},fork EXEC:cat"
CLIENT = f"nc -U {PATH}"
HIDDEN = f"socat ABSTRACT-LISTEN:{ABSTRACT},fork EXEC:cat"


def _listening(run: StepRun) -> Check:
    return unix_socket(run, "srv", "LISTEN", PATH)


def _connected(run: StepRun) -> Check:
    return unix_socket(run, "srv", "ESTAB", PATH)


def _abstract(run: StepRun) -> Check:
    return unix_socket(run, "srv", "LISTEN", "@" + ABSTRACT)


LESSON = Lesson(
    name="unix-socket",
    title="Unix sockets: a doorway inside the house",
    why="""\
Programs on one host often talk through Unix domain sockets (AF_UNIX): a database at
/var/run/postgresql/.s.PGSQL.5432, Docker at /var/run/docker.sock. The same calls as for TCP
(bind, listen, accept, connect), but the address is a path, not an IP address and a port, and
nothing crosses a network: the kernel copies the bytes from one process to the other.

House picture: if ports are the doors of the house, a Unix socket is a doorway between two rooms
inside it. Nobody outside can knock on it, and the house's own locks (file permissions) decide
who inside may pass. The picture breaks twice: a doorway is found by its path like a file, but
an abstract socket (Linux) has a name and no file at all; and socketpair() makes a connected
pair with no name whatsoever.""",
    steps=(
        Step(
            title="a server on a path",
            text=f"""\
On srv, start a server that listens on the path {PATH}, and leave it running. Then look at the
file it made (type `s`, a socket) and at the socket table.""",
            commands=(
                Command("srv", SERVER, keeps_running=True),
                Command("srv", f"ls -l {PATH}; ss -xlp | grep lesson"),
            ),
            expect=f"""\
`srwxr-xr-x ... {PATH}` and `u_str LISTEN ... {PATH} ... users:(("socat",...))`.""",
            verify=_listening,
            hints=(
                f"start the server on srv and leave it running: {SERVER}",
                f"if socat says the address is in use, an old {PATH} is left: rm it first",
            ),
        ),
        Step(
            title="a client through the doorway",
            text="""\
In another srv terminal, connect to the path with nc -U and leave it open. Type a line: it
comes back. No address, no port, no packet on any interface.""",
            commands=(Command("srv", CLIENT, keeps_running=True), Command("srv", "ss -xp")),
            expect=f"""\
An ESTAB pair: the server's end shows `{PATH}`, the client's end `*` (a client needs no name).""",
            verify=_connected,
            hints=(
                f"connect on srv and keep it open: {CLIENT}",
                "is the server of step 1 still running? (ss -xlp on srv)",
            ),
        ),
        Step(
            title="an abstract socket: a name without a file",
            text=f"""\
Linux also has abstract Unix sockets: the name starts with a zero byte, so no file is made.
Start one named {ABSTRACT} and look for it: ss shows it as @{ABSTRACT}, ls finds nothing.""",
            commands=(
                Command("srv", HIDDEN, keeps_running=True),
                Command("srv", f"ss -xlp | grep @{ABSTRACT}; ls /tmp"),
            ),
            expect=f"`u_str LISTEN ... @{ABSTRACT}`, and no `{ABSTRACT}` in /tmp.",
            verify=_abstract,
            hints=(f"start it on srv and leave it running: {HIDDEN}",),
        ),
    ),
    pitfalls="""\
- A socket file outlives its server: a new bind to the same path fails with "address already in
  use" until the file is removed (socat's `unlink-early` option does that).
- Abstract sockets are not files, so file permissions do not guard them: any process in the
  same network namespace can connect.
- `nc -U` without -u is a stream socket; a server made with SOCK_DGRAM needs `nc -U -u`.""",
)
