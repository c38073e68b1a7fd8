"""Who does the server think it is talking to? Clients compare that with their own address.

hop_nat.py serve PORT COUNT TIMEOUT WAIT
    accepts COUNT connections (waiting up to WAIT s for them) and holds them all open at once;
    reads each client's name, then tells each one the (ip, port) it saw; prints every peer
hop_nat.py client HOST PORT NAME TIMEOUT WAIT
    connects (prints its own local address as "connected"), sends NAME, prints the reply (which
    comes only once every client has connected: up to WAIT s)

TIMEOUT bounds each network step; WAIT bounds what hangs on the other clients' execs, which
take seconds on a loaded engine.
"""

import json
import socket
import sys


def serve(port: int, count: int, timeout: float, wait: float) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(count)
    s.settimeout(wait)
    print(json.dumps({"listening": port}), flush=True)
    conns, out = [], {"peers": []}
    try:
        while len(conns) < count:  # all at once: the server must tell them apart
            conn, peer = s.accept()
            conn.settimeout(timeout)
            conns.append((conn, peer))
        for conn, peer in conns:
            name = conn.makefile("rb").readline().decode().strip()
            out["peers"].append(
                {"name": name, "peer": list(peer), "local": list(conn.getsockname())}
            )
            conn.sendall(json.dumps({"name": name, "you_are": list(peer)}).encode() + b"\n")
    except OSError as err:
        out["error"] = f"{type(err).__name__}: {err} (after {len(conns)} of {count} clients)"
        out["peers"] = out["peers"] or [{"name": None, "peer": list(p)} for _, p in conns]
    for conn, _ in conns:
        conn.close()
    print(json.dumps(out), flush=True)


def client(host: str, port: int, name: str, timeout: float, wait: float) -> None:
    out = {"name": name}
    try:
        s = socket.create_connection((host, port), timeout=timeout)
        out["local"] = list(s.getsockname())
        print(json.dumps({"connected": True, "local": out["local"]}), flush=True)
        s.sendall(name.encode() + b"\n")
        s.settimeout(wait)
        out["reply"] = json.loads(s.makefile("rb").readline() or b"{}")
        s.close()
    except (OSError, ValueError) as err:
        out["error"] = f"{type(err).__name__}: {err}"
        print(json.dumps({"connected": False, "error": out["error"]}), flush=True)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    else:
        client(sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]), float(sys.argv[6]))
