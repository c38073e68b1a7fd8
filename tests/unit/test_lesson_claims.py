"""The lessons' false claims stay out (issue 23), and the corrections that replaced them stay in.

Each lesson is read with its whitespace folded, so a claim cannot come back split over lines.
"""

from __future__ import annotations

import pytest

from hoplab import exercises, grading

# lesson -> phrases that were false or overstated there, and must not return
FORBIDDEN = {
    "mac-per-hop": ["carried on unchanged"],
    "transport-only-on-end-hosts": ["never looks at it as tcp", "never look at ports"],
    "port-opens-on-listen": ["without looking at ports", "never look at ports"],
    "socket-is-address-protocol-port": ["only when another socket already holds the same three"],
    "time-wait-and-reuseaddr": ["it still never lets two sockets listen"],
    "stream-vs-datagram": ["exactly one of them, whole"],
    "unix-socket": ["a unix socket is a file", "its name is a path"],
    "unix-service": ["a socket that is a file", "has no address and no port"],
    "no-fragmenting-routers": ["path mtu discovery is mandatory"],
    "tcp-recovers-loss": ["the only traces of the loss"],
    "mtu-and-fragmentation": ["so the application still receives one datagram."],
    "udp-service": ["calls arrive as three datagrams"],
    "hop-limit": ["linux uses 64, the socket option"],
}

# lesson -> what the fix must say instead (the fact the false phrase hid)
REQUIRED = {
    "mac-per-hop": ["ttl", "checksum"],
    "transport-only-on-end-hosts": ["nat", "checksum"],
    "port-opens-on-listen": ["nat"],
    "socket-is-address-protocol-port": ["so_reuseport", "wildcard"],
    "time-wait-and-reuseaddr": ["so_reuseport"],
    "stream-vs-datagram": ["msg_trunc"],
    "unix-socket": ["its address is a path", "abstract", "socketpair()"],
    "unix-service": ["its address is a path"],
    "no-fragmenting-routers": ["rfc 8200", "1280 bytes"],
}


def _lessons() -> dict[str, str]:
    texts = {e.name: e.lesson for e in exercises.catalogue()}
    for a in grading.catalogue():
        texts[a.name] = a.lesson.read_text()
    return {name: " ".join(text.lower().split()) for name, text in texts.items()}


LESSONS = _lessons()


def test_every_lesson_is_read() -> None:
    assert len(LESSONS) == 26  # 20 exercises and 6 assignments
    assert set(FORBIDDEN) | set(REQUIRED) <= set(LESSONS)


@pytest.mark.parametrize("name", sorted(FORBIDDEN))
def test_false_claims_are_gone(name: str) -> None:
    found = [p for p in FORBIDDEN[name] if p in LESSONS[name]]
    assert not found, f"{name} says again: {found}"


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_corrections_are_there(name: str) -> None:
    missing = [p for p in REQUIRED[name] if p not in LESSONS[name]]
    assert not missing, f"{name} no longer says: {missing}"


def test_no_lesson_says_routers_never_read_ports() -> None:
    said = [n for n, t in LESSONS.items() if "never look at ports" in t or "never read ports" in t]
    assert not said
