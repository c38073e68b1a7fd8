"""`hoplab capture NODE[:INTERFACE]`: a live pcap stream that Wireshark reads, on the real engine.

Proved here: a pcap written while an exercise runs parses with dpkt and holds that exercise's
packets as they crossed the chosen hop (TTL one less than sent, source MAC the router's); the
stream is live (frames reach a reader while the capture still runs); Ctrl-C and a reader that
goes away both end it with no tcpdump left in the node; bad targets exit 2 naming the choices.
The own-image case (a FROM scratch node, no tcpdump in its image) is in examples/test_ownimage.py.
"""

from __future__ import annotations

import io
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import dpkt
import pytest

from hoplab.exercises import ttl_and_traceroute
from hoplab.exercises.runner import cast
from hoplab.runtime.lab import Lab
from tests.conftest import ROOT

pytestmark = pytest.mark.docker

PCAP_HEADER = 24  # the global header, then a 16-byte record header per frame


def _capture(lab: Lab, *args: str, stdout: int | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hoplab", "capture", "--name", lab.name, *args],
        cwd=ROOT,
        stdout=stdout if stdout is not None else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_listening(proc: subprocess.Popen, patience: float = 30.0) -> str:
    """tcpdump says "listening on" once its socket is open: frames after that are captured."""
    seen = b""
    deadline = time.monotonic() + patience
    while b"listening on" not in seen:
        assert time.monotonic() < deadline, seen
        line = proc.stderr.readline()
        assert line or proc.poll() is None, (proc.returncode, seen)
        seen += line
    return seen.decode()


def _tcpdumps(lab: Lab, node: str) -> list[str]:
    """tcpdump processes in the node that write to stdout: only `hoplab capture` starts those."""
    out = lab.node(node).run(["ps", "-eo", "pid,args"]).stdout
    return [line for line in out.splitlines() if "tcpdump" in line and "-w -" in line]


def _frames(data: bytes) -> list[dpkt.ethernet.Ethernet]:
    return [dpkt.ethernet.Ethernet(buf) for _, buf in dpkt.pcap.Reader(io.BytesIO(data))]


def test_a_capture_during_an_exercise_holds_its_packets_and_ctrl_c_leaves_no_tcpdump(
    lab: Lab, tmp_path: Path
) -> None:
    out = tmp_path / "core.pcap"
    proc = _capture(lab, "r2:core", "-w", str(out))
    try:
        _wait_listening(proc)
        roles = cast(lab, ttl_and_traceroute.EXERCISE)
        result = [c for c in ttl_and_traceroute.run(lab, roles)]
        assert all(c.status.name == "PASS" for c in result), result
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert "Traceback" not in err.decode(), err.decode()
    assert _tcpdumps(lab, "r2") == []

    alice, srv = lab.address("alice", "lan1"), lab.address("srv", "lan2")
    r1_core = lab.node("r1").iface("core").mac
    frames = _frames(out.read_bytes())
    sent = [
        f
        for f in frames
        if isinstance(f.data, dpkt.ip.IP)
        and isinstance(f.data.data, dpkt.udp.UDP)
        and f.data.data.dport == ttl_and_traceroute.PORT
        and (dpkt.utils.inet_to_str(f.data.src), dpkt.utils.inet_to_str(f.data.dst)) == (alice, srv)
    ]
    # The exercise's datagram leaves alice with TTL 64; on core it has crossed r1 only.
    assert any(f.data.ttl == 63 for f in sent), [f.data.ttl for f in sent]
    assert {dpkt.utils.mac_to_str(f.src) for f in sent} == {r1_core}


def test_the_stream_is_live_and_ends_when_its_reader_goes_away(lab: Lab) -> None:
    proc = _capture(lab, "r1:lan1", "-f", "icmp", stdout=subprocess.PIPE)
    got = bytearray()
    frames = threading.Event()

    def read() -> None:
        # Read the global header, then records, until three frames have arrived.
        need = PCAP_HEADER
        while len(got) < need or not frames.is_set():
            chunk = proc.stdout.read1(65536)
            if not chunk:
                return
            got.extend(chunk)
            count, at = 0, PCAP_HEADER
            while len(got) >= at + 16:
                (caplen,) = struct.unpack_from("<I", got, at + 8)
                at += 16 + caplen
                count += len(got) >= at
            if count >= 3:
                frames.set()

    reader = threading.Thread(target=read, daemon=True)
    try:
        _wait_listening(proc)
        reader.start()
        srv = lab.address("srv", "lan2")
        assert lab.node("alice").run(["ping", "-4", "-c", "2", "-i", "0.2", srv]).ok
        # Frames reach the reader while the capture still runs: it is a stream, not a file.
        assert frames.wait(20), bytes(got[:64])
        assert proc.poll() is None
    finally:
        proc.stdout.close()  # the reader goes away, as Wireshark does when it quits
    # The next frame meets the closed pipe: the capture ends by itself, cleanly.
    lab.node("alice").run(["ping", "-4", "-c", "2", "-i", "0.2", lab.address("srv", "lan2")])
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in err.decode() and "Exception ignored" not in err.decode(), err
    assert _tcpdumps(lab, "r1") == []
    parsed = _frames(bytes(got[: _whole(got)]))
    assert len(parsed) >= 3
    assert all(isinstance(f.data, dpkt.ip.IP) and f.data.p == dpkt.ip.IP_PROTO_ICMP for f in parsed)


def _whole(data: bytearray) -> int:
    """Length of the prefix that holds only complete records."""
    at = PCAP_HEADER
    while len(data) >= at + 16:
        (caplen,) = struct.unpack_from("<I", data, at + 8)
        if len(data) < at + 16 + caplen:
            break
        at += 16 + caplen
    return at


@pytest.mark.parametrize(
    ("target", "wanted"),
    [("nobody:eth0", "has no node 'nobody'"), ("r1:eth9", "no interface or network 'eth9'")],
)
def test_a_bad_target_exits_2_naming_the_choices(lab: Lab, target: str, wanted: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hoplab", "capture", "--name", lab.name, target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert wanted in proc.stderr and "hint: one of:" in proc.stderr, proc.stderr
    assert proc.stdout == ""  # nothing that a pcap reader would mistake for a stream
