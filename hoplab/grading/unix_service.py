"""unix-service: a tiny key-value store on srv behind a Unix socket, not a network port.

Built on unix-socket: the socket bound to a path is a file (S_ISSOCK), a stale one must be
unlinked first, and no network socket is involved.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

from hoplab.checks import Check, check
from hoplab.grading.base import Assignment, cast
from hoplab.grading.sandbox import AS_NOBODY
from hoplab.runtime.needs import Host

if TYPE_CHECKING:  # annotations only: the runtime imports docker
    from hoplab.grading.sandbox import Fence
    from hoplab.runtime.lab import Lab, Node

SOCK_DIR = "/var/run/lab"
SOCK_PATH = f"{SOCK_DIR}/kv.sock"
CHECKS = (
    f"starts and listens on {SOCK_PATH}, replacing a stale socket file",
    f"{SOCK_PATH} is a socket file (S_ISSOCK)",
    "answers SET and GET over the socket",
    "keeps what an earlier client SET, for the next client",
    "opens no network socket (no TCP or UDP port)",
)

NEEDS = (Host("server", prefer="srv"),)


def grade(lab: Lab, fence: Fence) -> Iterator[Check]:
    roles = cast(lab, NEEDS, CHECKS)
    if isinstance(roles, list):
        yield from roles
        return
    srv = roles["server"]
    # A stale socket file at the path, as a crashed server leaves it; the program (run as
    # nobody) owns the directory, so it may unlink the file.
    srv.run(["sh", "-c", f"rm -rf {SOCK_DIR} && mkdir -p {SOCK_DIR} && chown nobody {SOCK_DIR}"])
    fence.peer(srv, "grade_unix_client.py", "stale", SOCK_PATH)
    try:
        yield from _graded(lab, fence, srv)
    finally:
        fence.close()
        srv.run(["rm", "-rf", SOCK_DIR])


def _graded(lab: Lab, fence: Fence, srv: Node) -> Iterator[Check]:
    server = fence.serve(srv, SOCK_PATH, listen=f"unix {SOCK_PATH}", name=CHECKS[0])
    yield fence.started(CHECKS[0], server)
    kind = srv.run(["stat", "-c", "%F", SOCK_PATH]).out.strip() or "missing"
    yield check(
        CHECKS[1],
        kind == "socket",
        "socket",
        kind,
        evidence=f"srv: stat -c %F {SOCK_PATH}",
        hint="bind() on an AF_UNIX socket creates the file itself; do not create it first",
    )
    key, value = f"k{secrets.token_hex(3)}", secrets.token_hex(6)
    # The requests reach the client in a root-only file, not argv: the server runs beside it.
    asks = fence.secret(srv, "\n".join([f"SET {key} {value}", f"GET {key}", "GET nothing-here"]))
    first = fence.peer(srv, "grade_unix_client.py", "ask", SOCK_PATH, asks)
    exited = server.status()
    want = ["OK", value, "NONE"]
    yield check(
        CHECKS[2],
        first["replies"] == want,
        f"SET {key} {value} -> OK; GET {key} -> {value}; GET nothing-here -> NONE",
        f"connect {first['connect']}; replies {first['replies']}" + exited,
        evidence="srv: grade_unix_client.py ask (one line per request, one line per reply)",
        hint="read the connection line by line (conn.makefile('rb')); answer each line with "
        "one line ending in \\n; an empty reply means no newline came back in time",
    )
    again = fence.secret(srv, f"GET {key}")
    second = fence.peer(srv, "grade_unix_client.py", "ask", SOCK_PATH, again)
    exited = server.status()
    yield check(
        CHECKS[3],
        second["replies"] == [value],
        f"a second connection: GET {key} -> {value}",
        f"connect {second['connect']}; replies {second['replies']}" + exited,
        evidence="srv: grade_unix_client.py ask, a new connection after the first closed",
        hint="keep the store outside the per-connection code, and go back to accept() when "
        "a client leaves",
    )
    # As nobody, ss -p names the owner of exactly the sockets of nobody's processes: the
    # server and whatever it forked, never a process of hoplab's.
    inet = srv.run([*AS_NOBODY, "ss", "-tuanpH"]).out
    rows = [" ".join(line.split()[:6]) for line in inet.splitlines() if "users:((" in line]
    yield check(
        CHECKS[4],
        not rows,
        "no TCP or UDP socket owned by your server (any of its processes)",
        "; ".join(rows) or "none",
        evidence="srv: ss -tuanp as nobody, rows owned by your program's processes",
        hint="AF_UNIX needs no network socket: a Unix socket is reached through its path",
    )


ASSIGNMENT = Assignment(
    name="unix-service",
    exercise="unix-socket",
    summary="A key-value store on srv behind a Unix socket file, not a network port.",
    program="unix_service.py",
    usage=f"python3 unix_service.py PATH   (graded on srv with PATH {SOCK_PATH})",
    checks=CHECKS,
    grade=grade,
)
