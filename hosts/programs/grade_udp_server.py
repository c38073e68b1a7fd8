"""hoplab's own UDP server for grading a participant's client on a lossy path.

grade_udp_server.py serve PORT SECRET_FILE CLIENT   answers "REQ <n>" from CLIENT (an address)
                                                    with "ACK <n> <tag>", where tag is derived
                                                    from the secret and n (a client cannot make
                                                    it up); prints one JSON line per datagram

The secret comes in a file only root can read, which is removed once read: never in argv or the
environment, which a participant's program could read in /proc. Datagrams from anywhere but
CLIENT get no answer (they are logged as "stranger"), so the server is no oracle for the tags
to a program elsewhere in the lab.
"""

import hashlib
import json
import os
import socket
import sys


def tag(secret: str, n: int) -> str:
    return hashlib.sha256(f"{secret}:{n}".encode()).hexdigest()[:8]


def serve(port: int, secret_file: str, client: str) -> None:
    with open(secret_file) as f:
        secret = f.read().strip()
    os.unlink(secret_file)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    print(json.dumps({"listening": port}), flush=True)
    while True:
        data, peer = s.recvfrom(2048)
        words = data.decode(errors="replace").split()
        if peer[0] != client:
            print(json.dumps({"stranger": list(peer)}), flush=True)
        elif len(words) == 2 and words[0] == "REQ" and words[1].isdigit():
            n = int(words[1])
            s.sendto(f"ACK {n} {tag(secret, n)}".encode(), peer)
            print(json.dumps({"req": n, "peer": list(peer)}), flush=True)
        else:
            print(json.dumps({"bad": data[:80].decode(errors="replace")}), flush=True)


if __name__ == "__main__":
    serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
