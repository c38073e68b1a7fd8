"""`hoplab capture`'s target and tcpdump command line (no Docker): the live side is
tests/test_capture.py."""

from __future__ import annotations

import pytest

from hoplab.cli.capture import split_target, tcpdump_argv
from hoplab.errors import InputError


@pytest.mark.parametrize(
    ("target", "want"),
    [("r1", ("r1", "")), ("r1:eth1", ("r1", "eth1")), ("r1:core", ("r1", "core"))],
)
def test_node_and_interface(target: str, want: tuple[str, str]) -> None:
    assert split_target(target) == want


@pytest.mark.parametrize("target", ["", ":eth0", "r1:"])
def test_an_unreadable_target_is_an_input_error(target: str) -> None:
    with pytest.raises(InputError) as e:
        split_target(target)
    assert e.value.exit_code == 2 and "NODE[:INTERFACE]" in str(e.value)


def test_tcpdump_writes_whole_frames_to_stdout_as_they_come_with_the_filter_last() -> None:
    argv = tcpdump_argv("eth1", "udp port 53", 5)
    assert argv[:3] == ["tcpdump", "-i", "eth1"]
    assert {"-U", "--immediate-mode", "-n"} <= set(argv)
    assert argv[argv.index("-w") + 1] == "-" and argv[argv.index("-s") + 1] == "262144"
    assert argv[argv.index("-c") + 1] == "5"
    assert argv[-3:] == ["udp", "port", "53"]
