"""TCP clients for the socket exercises.

tcp_client.py token HOST PORT TOKEN   connect, send TOKEN, shut the write side, read the reply
                                      to the end; prints what went out and what came back
tcp_client.py connect HOST PORT       one connect attempt from a known local port; prints the
                                      errno name ("ok" when it connected), then closes first
"""

import errno
import json
import socket
import sys


def errname(err: OSError) -> str:
    if isinstance(err, TimeoutError) or err.errno is None:
        return "TIMEOUT"
    return errno.errorcode.get(err.errno, str(err.errno))


def token(host: str, port: int, tok: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((host, port))
    except OSError as err:
        print(json.dumps({"connect": errname(err), "error": str(err)}), flush=True)
        return
    local, peer = list(s.getsockname()), list(s.getpeername())
    print(json.dumps({"connect": "ok", "local": local}), flush=True)
    s.settimeout(10)  # the server holds every client before it answers
    got, error = b"", None
    try:
        s.sendall(tok.encode())
        s.shutdown(socket.SHUT_WR)
        while chunk := s.recv(4096):
            got += chunk
    except OSError as err:
        error = errname(err)
    s.close()
    print(
        json.dumps(
            {
                "connect": "ok",
                "local": local,
                "peer": peer,
                "sent": tok,
                "got": got.decode(errors="replace"),
                "error": error,
            }
        )
    )


def connect(host: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("0.0.0.0", 0))  # take the local port now, so the capture can be matched to it
    local_port = s.getsockname()[1]
    s.settimeout(3)
    try:
        s.connect((host, port))
        result = "ok"
    except OSError as err:
        result = errname(err)
    s.close()
    print(json.dumps({"result": result, "local_port": local_port}))


if __name__ == "__main__":
    if sys.argv[1] == "token":
        token(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        connect(sys.argv[2], int(sys.argv[3]))
