"""Ephemeral ports from one client, with the local port range narrowed to a few ports.

  tcp_ephemeral.py HOST PORT OTHER_PORT LO HI
      connects to HOST:PORT once per port in LO..HI, then once more, then once to
      HOST:OTHER_PORT, every socket limited to local ports LO..HI; holds them all open
      (until SIGUSR1, at most 5 s), then closes them (the client closes first)

The node-wide range is the sysctl net.ipv4.ip_local_port_range, but /proc/sys is read-only in an
unprivileged container, so each socket narrows its own range with IP_LOCAL_PORT_RANGE (Linux 6.3+),
which the kernel intersects with the node's range.
"""

import errno
import json
import signal
import socket
import struct
import sys

IP_LOCAL_PORT_RANGE = 51  # Linux value; Python 3.11's socket module lacks the name
HOLD_WAIT = 5.0


def errname(err: OSError) -> str:
    if isinstance(err, TimeoutError) or err.errno is None:
        return "TIMEOUT"
    return errno.errorcode.get(err.errno, str(err.errno))


def attempt(host: str, port: int, lo: int, hi: int, keep: list) -> dict:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IP, IP_LOCAL_PORT_RANGE, struct.pack("I", lo | hi << 16))
    s.settimeout(3)
    try:
        s.connect((host, port))
    except OSError as err:
        s.close()
        return {"to": port, "result": errname(err)}
    keep.append(s)
    return {"to": port, "result": "ok", "local_port": s.getsockname()[1]}


def main(host: str, port: int, other: int, lo: int, hi: int) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        node_range = [int(x) for x in f.read().split()]
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.IPPROTO_IP, IP_LOCAL_PORT_RANGE, struct.pack("I", lo | hi << 16))
    except OSError as err:
        print(json.dumps({"range": errname(err), "node_range": node_range}), flush=True)
        print(json.dumps({"holding": 0}), flush=True)
        return
    probe.close()
    keep: list[socket.socket] = []
    first = [attempt(host, port, lo, hi, keep) for _ in range(lo, hi + 1)]
    extra = attempt(host, port, lo, hi, keep)
    other_conn = attempt(host, other, lo, hi, keep)
    result = {
        "range": [lo, hi],
        "node_range": node_range,
        "first": first,
        "extra": extra,
        "other": other_conn,
    }
    print(json.dumps(result), flush=True)
    print(json.dumps({"holding": len(keep)}), flush=True)
    signal.sigtimedwait({signal.SIGUSR1}, HOLD_WAIT)
    for s in keep:
        s.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:6]))
