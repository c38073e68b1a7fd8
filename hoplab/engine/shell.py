"""An interactive shell in a node over the Engine API: a TTY exec pumped to the local terminal.

Done through docker-py rather than `docker exec -it` so that hoplab never shells out to the CLI.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import sys
import termios
import time
import tty
from typing import cast

import docker


def interactive_shell(api: docker.APIClient, container: str, cmd: list[str]) -> int:
    """Attach the local terminal to a TTY exec until the shell exits; return its exit code."""
    exec_id = api.exec_create(container, cmd, stdin=True, tty=True)["Id"]
    sock = api.exec_start(exec_id, tty=True, socket=True)
    raw = cast(socket.socket, getattr(sock, "_sock", sock))  # the unbuffered socket inside
    stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()
    is_tty = os.isatty(stdin_fd)
    saved = termios.tcgetattr(stdin_fd) if is_tty else None
    try:
        if is_tty:
            tty.setraw(stdin_fd)
            cols, rows = shutil.get_terminal_size()
            with contextlib.suppress(docker.errors.APIError):
                api.exec_resize(exec_id, height=rows, width=cols)
        _pump(raw, stdin_fd, stdout_fd)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        raw.close()
    return _exit_code(api, exec_id)


def _exit_code(api: docker.APIClient, exec_id: str, timeout: float = 5.0) -> int:
    """The stream can close a moment before the engine records the exit code: wait for it."""
    deadline = time.monotonic() + timeout
    while True:
        info = api.exec_inspect(exec_id)
        if not info["Running"] or time.monotonic() > deadline:
            return int(info["ExitCode"] or 0)
        time.sleep(0.02)


def _pump(sock: socket.socket, stdin_fd: int, stdout_fd: int) -> None:
    stdin_open = True
    while True:
        readers: list[socket.socket | int] = [sock, stdin_fd] if stdin_open else [sock]
        ready, _, _ = select.select(readers, [], [])
        if sock in ready:
            data = sock.recv(65536)
            if not data:
                return
            os.write(stdout_fd, data)
        if stdin_fd in ready:
            data = os.read(stdin_fd, 4096)
            if data:
                sock.sendall(data)
            else:
                # End of local input: on a TTY that is Ctrl-D, not a half-closed socket
                # (the engine would drop the whole session, output still in flight).
                stdin_open = False
                sock.sendall(b"\x04")
