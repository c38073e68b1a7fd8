"""Half-close: the client ends its direction with shutdown(SHUT_WR) and still reads the reply.

hop_halfclose.py serve PORT TIMEOUT [ACCEPT_WAIT]
    waits up to ACCEPT_WAIT seconds (default TIMEOUT) for one connection, reads until recv()
    returns b'' (the client's FIN), then replies with the request in capitals and closes;
    prints what it saw
hop_halfclose.py client HOST PORT MESSAGE TIMEOUT
    sends MESSAGE, calls shutdown(SHUT_WR), then reads the reply until the server closes
"""

import json
import socket
import sys


def serve(port: int, timeout: float, accept_wait: float) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(1)
    s.settimeout(accept_wait)
    print(json.dumps({"listening": port}), flush=True)
    out = {"eof": False, "bytes": 0, "replied": 0}
    try:
        conn, peer = s.accept()
        out["peer"] = list(peer)
        conn.settimeout(timeout)
        request = b""
        while chunk := conn.recv(4096):
            request += chunk
        out |= {"eof": True, "bytes": len(request), "request": request.decode(errors="replace")}
        # The client has finished sending, yet our direction is still open: answer.
        reply = b"REPLY " + request.upper()
        conn.sendall(reply)
        out["replied"] = len(reply)
        conn.close()
    except OSError as err:
        out["error"] = f"{type(err).__name__}: {err}"
    print(json.dumps(out), flush=True)


def client(host: str, port: int, message: str, timeout: float) -> None:
    out = {"sent": 0, "shutdown": False, "reply": None}
    try:
        s = socket.create_connection((host, port), timeout=timeout)
        out["local"] = list(s.getsockname())
        s.sendall(message.encode())
        out["sent"] = len(message.encode())
        s.shutdown(socket.SHUT_WR)  # FIN: "I have nothing more to send"; reading stays open
        out["shutdown"] = True
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
        out["reply"] = reply.decode(errors="replace")
        s.close()
    except OSError as err:
        out["error"] = f"{type(err).__name__}: {err}"
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        timeout = float(sys.argv[3])
        serve(int(sys.argv[2]), timeout, float(sys.argv[4]) if len(sys.argv) > 4 else timeout)
    else:
        client(sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
