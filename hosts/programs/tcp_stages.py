"""A TCP server that opens its port one step at a time, each step on SIGUSR1.

  tcp_stages.py IP PORT     socket() -> "created"; bind() -> "bound"; listen() -> "listening";
                            then accepts one client, reads until it closes, and prints the peer

Between steps the socket sits as it is, so a client can try to connect to each state.
"""

import json
import signal
import socket
import sys

STEP_WAIT = 10.0


def say(**fields) -> None:
    print(json.dumps(fields), flush=True)


def main(ip: str, port: int) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    say(step="created")
    if signal.sigtimedwait({signal.SIGUSR1}, STEP_WAIT) is None:
        return say(error="no signal to bind")
    s.bind((ip, port))
    say(step="bound", local=list(s.getsockname()))
    if signal.sigtimedwait({signal.SIGUSR1}, STEP_WAIT) is None:
        return say(error="no signal to listen")
    s.listen(4)
    say(step="listening", local=list(s.getsockname()))
    s.settimeout(5)
    try:
        c, peer = s.accept()
    except TimeoutError:
        return say(step="accept", error="no client within 5 s")
    local = list(c.getsockname())
    c.settimeout(3)
    try:
        while c.recv(4096):  # the client closes first, so TIME_WAIT stays on its side
            pass
    except OSError:
        pass
    c.close()
    say(step="accepted", peer=list(peer), local=local)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
