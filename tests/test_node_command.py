"""Compose's program keys on every node, and exec where the program lives (issue 22), on the real
engine. The project below is also what tests/test_wheel.py brings up from an installed wheel.

- A default node (no image) with entrypoint, command, environment, working_dir, user and a
  healthcheck: its program runs as the container's main process (pid 1), as that user, in that
  folder, with that variable; `up` returns once the healthcheck on the program passed.
- An image FROM hoplab/node runs its own CMD, or the command it is given (before, hoplab's
  entrypoint ignored both and slept).
- exec, shell, Node.run/start/fetch reach the program's container: a file the program wrote is
  read back. A tool its image lacks (ss, sh in a FROM scratch image) runs in the node's own
  container, and a note says so; hoplab's own evidence gathering stays there.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hoplab import lifecycle
from hoplab.engine.engine import Engine
from hoplab.model.load import load
from hoplab.runtime.lab import Lab
from tests.conftest import ROOT, run_hoplab, unique_lab_name

pytestmark = pytest.mark.docker

SERVER = ROOT / "examples" / "ownimage" / "server"  # FROM scratch: /udphello and nothing else

PROJECT = """\
# A project's topology: bob -> r1 -> listen, a default node running a program of its own; srv, a
# FROM scratch server; own and told, images FROM hoplab/node with their own CMD or a command.
services:
  r1:
    x-hoplab: {role: router}
    networks: [lan1, lan2]
  listen:
    entrypoint: ["sh", "-c"]
    command: ["echo \\"$GREETING from $(id -u) in $(pwd)\\" > said &&
      exec socat -u UDP-RECV:9000 OPEN:got,creat,append"]
    environment: {GREETING: hello}
    working_dir: /tmp
    user: "65534"
    healthcheck:
      test: ["CMD-SHELL", "ss -Hlun | grep -q ':9000 '"]
      interval: 100ms
      retries: 50
    networks: [lan1]
  srv:
    build: ./server
    command: ["listen", "7000"]
    healthcheck: {test: ["CMD", "/udphello", "probe", "7000"], interval: 200ms, retries: 25}
    networks: [lan2]
  own:
    build: ./own
    networks: [lan2]
  told:
    build: ./own
    command: ["sh", "-c", "echo told by compose > /tmp/ran; exec sleep infinity"]
    networks: [lan2]
  bob:
    networks: [lan2]
networks:
  lan1: {ipam: {config: [{subnet: 10.66.1.0/24}]}}
  lan2: {ipam: {config: [{subnet: 10.66.2.0/24}]}}
"""
OWN_DOCKERFILE = """\
FROM hoplab/node
CMD ["sh", "-c", "echo its own CMD > /tmp/ran; exec sleep infinity"]
"""


def make_project(folder: Path) -> Path:
    """The project's files under folder; returns its compose.yaml."""
    shutil.copytree(SERVER, folder / "server")
    (folder / "own").mkdir()
    (folder / "own" / "Dockerfile").write_text(OWN_DOCKERFILE)
    (folder / "compose.yaml").write_text(PROJECT)
    return folder / "compose.yaml"


def hoplab_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return run_hoplab(*args, stdin=stdin, timeout=120)


@pytest.fixture(scope="module")
def lab(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    path = make_project(tmp_path_factory.mktemp("cmd"))
    name = unique_lab_name("h22c")
    try:
        lifecycle.up(engine, load(path), name, lambda *a: None, print)
        yield Lab.attach(engine, name)
    finally:
        engine.down(name)
        assert engine.state(name).exists is False


def app(lab: Lab, node: str) -> str:
    return f"{lab.name}-{node}-app"


def test_a_default_node_runs_its_program_as_main_process_with_its_keys(lab: Lab) -> None:
    res = lab.node("listen").run(["cat", "/tmp/said", "/proc/1/cmdline"])
    assert res.ok and res.container == app(lab, "listen") and not res.note, res
    said, cmdline = res.out.split("\n", 1)
    assert said == "hello from 65534 in /tmp", said  # environment, user, working_dir
    # exec all the way down: signals sent to the container reach the program itself
    assert cmdline.split("\0")[:2] == ["socat", "-u"], cmdline
    info = lab.engine.api.inspect_container(app(lab, "listen"))
    assert info["State"]["Health"]["Status"] == "healthy", info["State"]["Health"]
    node = lab.engine.api.inspect_container(f"{lab.name}-listen")
    assert info["Image"] == node["Image"]  # no image given: the one of every node, hoplab/node
    assert info["Config"]["Entrypoint"] == ["sh", "-c"] and info["Config"]["User"] == "65534"


def test_exec_reads_the_file_the_program_wrote_across_a_router(lab: Lab) -> None:
    sent = lab.node("bob").run(["sh", "-c", "echo across-r1 | socat -u - UDP:listen:9000"])
    assert sent.ok, sent
    wait = "for i in $(seq 50); do grep -q across-r1 got && exit; sleep 0.1; done; exit 1"
    res = lab.node("listen").run(["sh", "-c", wait])
    assert res.ok, res
    proc = hoplab_cli("exec", "--name", lab.name, "listen", "--", "cat", "/tmp/got")
    assert proc.returncode == 0 and proc.stdout == "across-r1\n", proc
    assert "note" not in proc.stderr, proc.stderr
    assert lab.node("listen").fetch("/tmp/got") == b"across-r1\n"
    # The node's own container shares the namespace but not the program's files.
    assert not lab.node("listen").run(["test", "-e", "/tmp/got"], sandbox=True).ok


def test_images_from_hoplab_node_run_their_cmd_or_their_command(lab: Lab) -> None:
    assert lab.node("own").run(["cat", "/tmp/ran"]).out == "its own CMD\n"
    assert lab.node("told").run(["cat", "/tmp/ran"]).out == "told by compose\n"
    # They joined a planned namespace: the plan is not applied (or announced) a second time.
    assert "hoplab-ready" not in (lab.node("own").logs() or "")
    assert "hoplab-ready" in lab.engine.api.logs(f"{lab.name}-own").decode()


def test_exec_on_a_scratch_image_runs_its_binary_and_falls_back_for_tools(lab: Lab) -> None:
    probe = hoplab_cli("exec", "--name", lab.name, "srv", "--", "/udphello", "probe", "7000")
    assert probe.returncode == 0 and "note" not in probe.stderr, probe  # only its image has it
    ss = hoplab_cli("exec", "--name", lab.name, "srv", "--", "ss", "-Hlun")
    assert ss.returncode == 0 and ":7000 " in ss.stdout, ss  # the program's socket, same netns
    assert "note:" in ss.stderr and "ss is not in the image" in ss.stderr, ss.stderr
    res = lab.node("srv").run(["ss", "-Hlun"])
    assert res.ok and res.container == f"{lab.name}-srv" and "ss is not in" in res.note, res
    assert any("ss is not in" in n for n in lab.node("srv").notes), lab.node("srv").notes
    with lab.evidence():  # hoplab's own calls: the node's own container, and no note
        quiet = lab.node("own").run(["cat", "/tmp/ran"])
    assert quiet.container == f"{lab.name}-own" and not quiet.ok and not quiet.note, quiet


def test_shell_opens_where_the_program_lives_or_says_why_not(lab: Lab) -> None:
    own = hoplab_cli("shell", "--name", lab.name, "own", stdin="cat /tmp/ran\nexit 3\n")
    assert own.returncode == 3 and "its own CMD" in own.stdout, own
    srv = hoplab_cli("shell", "--name", lab.name, "srv", stdin="hostname\nexit 4\n")
    assert srv.returncode == 4 and "/bin/bash is not in the image" in srv.stderr, srv


def test_start_runs_in_the_program_container_and_captures_stay_in_the_sandbox(lab: Lab) -> None:
    own = lab.node("own")
    with own.start(["sh", "-c", "echo started; cat /tmp/ran; sleep 30"], ready="started") as proc:
        assert proc.container == app(lab, "own")
        assert proc.wait(0.2) is False  # still running, asked where it runs
    assert "its own CMD" in proc.output() and proc.wait(0.2) is True
    # tcpdump on the FROM scratch node: from the node's own container, with no note.
    with lab.capture("srv", "lan2", bpf="udp port 7000") as cap:
        sent = lab.node("bob").run(["sh", "-c", "echo x | socat -t 3 - UDP:srv:7000"], timeout=8)
    assert sent.ok and sent.out == "x\n", sent  # srv echoes it
    assert len(cap.frames) >= 2, cap.frames  # the datagram and its echo
    assert not lab.node("srv").notes or all("tcpdump" not in n for n in lab.node("srv").notes)
