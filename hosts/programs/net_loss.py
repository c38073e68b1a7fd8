"""Loss on the path: TCP repairs it, UDP does not.

net_loss.py tcp-recv PORT                 accept one connection, read to EOF, reply the sha256
net_loss.py tcp-send HOST PORT BYTES      send BYTES, read the reply; retransmissions before/after
net_loss.py udp-recv PORT                 numbered datagrams until the "end" marker
net_loss.py udp-send HOST PORT COUNT SIZE COUNT datagrams of SIZE bytes, then an "end" marker
"""

import hashlib
import json
import random
import socket
import struct
import sys

TCP_INFO = 11  # Linux value
TOTAL_RETRANS_OFFSET = 100  # struct tcp_info: u32 tcpi_total_retrans


def retrans_segs() -> int:
    """The host's TcpRetransSegs counter from /proc/net/snmp."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("RetransSegs")])


def tcp_recv(port: int) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(1)
    srv.settimeout(15)
    print(json.dumps({"listening": port}), flush=True)
    conn, peer = srv.accept()
    conn.settimeout(15)
    digest, total = hashlib.sha256(), 0
    while chunk := conn.recv(65536):
        digest.update(chunk)
        total += len(chunk)
    conn.sendall(digest.hexdigest().encode())
    conn.close()
    print(json.dumps({"bytes": total, "sha256": digest.hexdigest(), "peer": list(peer)}))


def tcp_send(host: str, port: int, size: int) -> None:
    data = random.Random(size).randbytes(size)
    before = retrans_segs()
    s = socket.create_connection((host, port), timeout=15)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)  # EOF tells the receiver it has everything
    reply = b""
    while chunk := s.recv(128):
        reply += chunk
    info = s.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 256)
    (total_retrans,) = struct.unpack_from("I", info, TOTAL_RETRANS_OFFSET)
    s.close()
    print(
        json.dumps(
            {
                "bytes": size,
                "sha256": hashlib.sha256(data).hexdigest(),
                "reply_sha256": reply.decode(),
                "tcpi_total_retrans": total_retrans,
                "retrans_segs_before": before,
                "retrans_segs_after": retrans_segs(),
            }
        )
    )


def udp_recv(port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    s.settimeout(10)
    print(json.dumps({"listening": port}), flush=True)
    seqs, sizes = [], set()
    while True:
        data, peer = s.recvfrom(65536)
        if data.startswith(b"end"):
            break
        seqs.append(int(data.split(b" ")[0]))
        sizes.add(len(data))
    print(json.dumps({"received": seqs, "sizes": sorted(sizes), "peer": list(peer)}))


def udp_send(host: str, port: int, count: int, size: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    for seq in range(count):
        s.send(f"{seq} ".encode().ljust(size, b"."))
    s.send(b"end")  # shorter than the data, so the drop rule (which matches the length) spares it
    print(json.dumps({"sent": count, "size": size, "local": list(s.getsockname())}))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "tcp-recv":
        tcp_recv(int(args[0]))
    elif cmd == "tcp-send":
        tcp_send(args[0], int(args[1]), int(args[2]))
    elif cmd == "udp-recv":
        udp_recv(int(args[0]))
    else:
        udp_send(args[0], int(args[1]), int(args[2]), int(args[3]))
