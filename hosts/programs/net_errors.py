"""Which layer said no: errno values and the address of whoever sent the error.

net_errors.py listen PORT              a TCP listener that never accepts (the backlog answers)
net_errors.py tcp HOST PORT TIMEOUT    connect(); errno, time taken, ICMP offender (IP_RECVERR)
net_errors.py udp HOST PORT            connected UDP send + recv; errno and ICMP offender
"""

import errno
import json
import socket
import struct
import sys
import time

IP_RECVERR = 11  # Linux value; Python 3.11's socket module lacks the name
SO_EE_ORIGIN_ICMP = 2


def error_queue(s: socket.socket, wait: float = 0.5) -> dict:
    """The first ICMP error on the socket's error queue: errno, type, code and who sent it."""
    s.settimeout(None)  # MSG_DONTWAIT does the polling; a socket timeout would turn EAGAIN
    deadline = time.monotonic() + wait  # into TimeoutError
    while True:
        try:
            _d, anc, _f, _a = s.recvmsg(512, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return {"offender": None}
            time.sleep(0.005)
            continue
        for level, typ, data in anc:
            if level == socket.IPPROTO_IP and typ == IP_RECVERR:
                # struct sock_extended_err (16 bytes), then the offender's sockaddr_in.
                err, origin, icmp_type, code = struct.unpack("IBBB", data[:7])
                return {
                    "offender": socket.inet_ntoa(data[20:24]),
                    "queued_errno": errno.errorcode.get(err, str(err)),
                    "icmp": origin == SO_EE_ORIGIN_ICMP,
                    "icmp_type": icmp_type,
                    "icmp_code": code,
                }


def name(err: OSError) -> str:
    if isinstance(err, TimeoutError) and err.errno is None:
        return "timeout"
    return errno.errorcode.get(err.errno or 0, str(err.errno))


def listen(port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)
    print(json.dumps({"listening": port}), flush=True)
    time.sleep(60)  # stopped by the orchestrator long before


def tcp(host: str, port: int, timeout: float) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    s.settimeout(timeout)
    started = time.monotonic()
    out: dict = {"call": "connect", "to": [host, port]}
    try:
        s.connect((host, port))
        out |= {"result": "connected", "errno": None}
    except OSError as err:
        out |= {"result": "error", "errno": name(err)}
    out["seconds"] = round(time.monotonic() - started, 3)
    out |= error_queue(s, wait=0.0)
    s.close()
    print(json.dumps(out))


def udp(host: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    s.settimeout(2.0)
    s.connect((host, port))
    s.send(b"anyone there?")
    out: dict = {"call": "send+recv", "to": [host, port]}
    try:
        s.recv(512)
        out |= {"result": "answered", "errno": None}
    except OSError as err:
        out |= {"result": "error", "errno": name(err)}
    out |= error_queue(s)
    s.close()
    print(json.dumps(out))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "listen":
        listen(int(sys.argv[2]))
    elif cmd == "tcp":
        tcp(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        udp(sys.argv[2], int(sys.argv[3]))
