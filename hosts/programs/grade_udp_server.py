"""hoplab's own UDP server for grading a participant's client on a lossy path.

grade_udp_server.py serve PORT SECRET   answers "REQ <n>" with "ACK <n> <tag>", where tag is
                                        derived from SECRET and n (a client cannot make it up);
                                        prints one JSON line per datagram it received
"""

import hashlib
import json
import socket
import sys


def tag(secret: str, n: int) -> str:
    return hashlib.sha256(f"{secret}:{n}".encode()).hexdigest()[:8]


def serve(port: int, secret: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    print(json.dumps({"listening": port}), flush=True)
    while True:
        data, peer = s.recvfrom(2048)
        words = data.decode(errors="replace").split()
        if len(words) == 2 and words[0] == "REQ" and words[1].isdigit():
            n = int(words[1])
            s.sendto(f"ACK {n} {tag(secret, n)}".encode(), peer)
            print(json.dumps({"req": n, "peer": list(peer)}), flush=True)
        else:
            print(json.dumps({"bad": data[:80].decode(errors="replace")}), flush=True)


if __name__ == "__main__":
    serve(int(sys.argv[2]), sys.argv[3])
