"""Who can reach a TCP server, depending on the address it binds.

sock_scope.py serve ADDR PORT        bind ADDR:PORT, listen; tell each caller what getsockname()
                                     and getpeername() say on the accepted socket
sock_scope.py dial PORT TIMEOUT IP...  connect to each IP in turn; prints one JSON list
"""

import contextlib
import errno
import json
import socket
import sys


def serve(addr: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((addr, port))
    s.listen(16)
    print(json.dumps({"listening": [addr, port]}), flush=True)
    while True:
        conn, _ = s.accept()
        seen = {"local": list(conn.getsockname()), "peer": list(conn.getpeername())}
        print(json.dumps(seen), flush=True)
        conn.sendall((json.dumps(seen) + "\n").encode())
        # The client hangs up first, so TIME_WAIT stays on the client side and the next
        # server can bind this port again at once (no SO_REUSEADDR needed).
        conn.settimeout(2)
        with contextlib.suppress(OSError):
            conn.recv(1)
        conn.close()


def dial_one(ip: str, port: int, timeout: float) -> dict:
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.settimeout(timeout)
    try:
        c.connect((ip, port))
        line = c.makefile("rb").readline()
        told = json.loads(line)
        return {
            "dialled": ip,
            "result": "answered",
            "server_local": told["local"],
            "server_peer": told["peer"],
            "client_local": list(c.getsockname()),
        }
    except TimeoutError:
        return {"dialled": ip, "result": "timeout"}
    except OSError as err:
        name = errno.errorcode.get(err.errno, str(err))
        return {"dialled": ip, "result": "refused" if err.errno == errno.ECONNREFUSED else name}
    except ValueError:
        return {"dialled": ip, "result": "bad reply"}
    finally:
        c.close()


def main() -> None:
    if sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        port, timeout = int(sys.argv[2]), float(sys.argv[3])
        print(json.dumps([dial_one(ip, port, timeout) for ip in sys.argv[4:]]))


if __name__ == "__main__":
    main()
