"""`hoplab init [DIR]`: a starter project with a topology of its own and a test that uses it.

The topology is a copy of the packaged default lab, so it runs as it is and shows what to edit;
the test uses the pytest plugin's `hoplab` fixture. Existing files are never overwritten.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hoplab.errors import InputError

TEST_FILE = "test_lab.py"

EXAMPLE_TEST = '''\
"""Tests across real routers, with hoplab's pytest plugin: run `pytest` (or `pytest -n 2`) here.

The `hoplab` fixture brings up ./compose.yaml once per process and removes it at the end; edit
compose.yaml and these tests see the new topology. `hoplab_lab("other.yaml")` gives one test a
lab of its own.
"""

import re

SERVER = """
import socket
s = socket.create_server(("0.0.0.0", 7000))
print("listening", flush=True)
conn, peer = s.accept()
conn.sendall(conn.recv(1024).upper() + f" from {peer[0]}".encode())
conn.close()
"""


def test_ping_crosses_two_routers(hoplab):
    res = hoplab.node("alice").run(["ping", "-n", "-c1", "-W5", hoplab.address("srv", "lan2")])
    assert res.returncode == 0, res.stderr
    assert int(re.search(r"ttl=(\\d+)", res.stdout).group(1)) == 62  # 64, minus one per router


def test_tcp_server_sees_the_client_address_across_routers(hoplab):
    srv, alice = hoplab.node("srv"), hoplab.node("alice")
    with srv.start(["python3", "-u", "-c", SERVER], ready="listening"):
        res = alice.run(f"printf hello | nc -N -w5 {hoplab.address('srv', 'lan2')} 7000")
    assert res.stdout == f"HELLO from {hoplab.address('alice')}", res
'''


def register(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    sp = sub.add_parser(
        "init",
        help="write a starter compose.yaml and an example test into DIR",
        description="Write DIR/compose.yaml (a copy of the default lab, to edit) and "
        f"DIR/{TEST_FILE} (tests that use it through the pytest plugin). DIR is created if "
        "needed; existing files are never overwritten (exit 2).",
    )
    sp.add_argument("dir", nargs="?", default=".", metavar="DIR", help="default: .")
    return {"init": cmd_init}


def files_for(folder: Path) -> dict[Path, str]:
    """What init writes: path -> text, all of it read before anything is written."""
    from hoplab.resources import DEFAULT_FILE, default_lab

    return {folder / DEFAULT_FILE: default_lab().read_text(), folder / TEST_FILE: EXAMPLE_TEST}


def cmd_init(args: argparse.Namespace) -> int:
    from hoplab.cli import ui

    folder = Path(args.dir)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is not a directory", key="DIR", hint="name a folder")
    files = files_for(folder)
    for path in files:  # all checked first: a refusal writes nothing at all
        if path.exists() or path.is_symlink():
            raise InputError(
                f"{path} exists already; init never overwrites a file",
                key="DIR",
                hint=f"move {path.name} away, or run `hoplab init OTHER_DIR`",
            )
    folder.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        with path.open("x") as f:  # "x": a file that appeared meanwhile is still not overwritten
            f.write(text)
    ui.err.print(
        f"[green]wrote[/] {', '.join(str(p) for p in files)}\n"
        f"  edit the topology, then: cd {folder} && pytest {TEST_FILE} (or `hoplab up` to explore)"
    )
    return 0
