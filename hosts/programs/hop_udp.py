"""One identifiable UDP datagram, to follow a packet hop by hop.

hop_udp.py listen PORT TIMEOUT     waits for one datagram; prints its peer and payload
hop_udp.py send HOST PORT TOKEN    sends TOKEN as one datagram; prints the local address used
"""

import json
import socket
import sys


def listen(port: int, timeout: float) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    s.settimeout(timeout)
    print(json.dumps({"listening": port}), flush=True)
    try:
        data, peer = s.recvfrom(2048)
    except TimeoutError:
        print(json.dumps({"received": False, "error": f"no datagram within {timeout}s"}))
        return
    print(
        json.dumps({"received": True, "peer": list(peer), "payload": data.decode(errors="replace")})
    )


def send(host: str, port: int, token: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    sent = s.send(token.encode())
    print(json.dumps({"local": list(s.getsockname()), "sent": sent}))


if __name__ == "__main__":
    if sys.argv[1] == "listen":
        listen(int(sys.argv[2]), float(sys.argv[3]))
    else:
        send(sys.argv[2], int(sys.argv[3]), sys.argv[4])
