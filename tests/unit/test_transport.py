"""docker-py's SSH transport (paramiko) loads only for a command that may reach an ssh:// engine.

The command line used to make it unimportable unless DOCKER_HOST was ssh://, so
`hoplab ls --engine ssh://...` (and workshop rooms over SSH) said "Install paramiko package to
enable ssh:// support" with paramiko installed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from hoplab.engine.transport import may_use_ssh


@pytest.mark.parametrize(
    ("argv", "docker_host", "expected"),
    [
        (["status"], "", False),
        (["up", "compose.yaml"], "unix:///var/run/docker.sock", False),
        (["status"], "ssh://lab@host2", True),
        (["ls", "--engine", "ssh://lab@host2"], "", True),
        (["ls", "--engine=ctx2"], "", True),  # a context's endpoint may be ssh://
        (["workshop", "up", "--engines", "engines.txt"], "", True),
    ],
)
def test_which_commands_may_use_ssh(argv, docker_host, expected):
    assert may_use_ssh(argv, {"DOCKER_HOST": docker_host}) is expected


def _loads_paramiko(argv: list[str]) -> bool:
    code = (
        "import sys\n"
        "from hoplab.engine.transport import skip_unused_ssh\n"
        f"skip_unused_ssh({argv!r})\n"
        "import docker\n"
        "print('paramiko' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip() == "True"


def test_paramiko_is_loaded_only_when_an_engine_is_named():
    assert importlib.util.find_spec("paramiko"), "the portal extra (webssh) installs paramiko"
    assert not _loads_paramiko(["status"])
    assert _loads_paramiko(["ls", "--engine", "ssh://lab@host2"])


def test_ls_reaches_an_ssh_engine_over_the_system_ssh():
    # Loopback port 1: ssh is refused at once, and nothing leaves this machine.
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    res = subprocess.run(
        [sys.executable, "-m", "hoplab", "ls", "--engine", "ssh://nobody@127.0.0.1:1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert res.returncode == 1, res.stdout + res.stderr
    assert "ssh://nobody@127.0.0.1:1: unreachable" in res.stderr
    assert "Install paramiko" not in res.stderr, res.stderr
