"""Workshops: rosters (pure), a room of two labs on the real engine, limits, isolation, teardown."""

from __future__ import annotations

import errno
import getpass
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv4Network

import pytest

from hoplab.engine import fabric
from hoplab.engine.engine import MEM_LIMIT, Engine
from hoplab.errors import HoplabError, InputError
from hoplab.model import labels as L
from hoplab.model.load import load
from hoplab.runtime.lab import Lab, Proc
from hoplab.workshop import room as workshop
from hoplab.workshop.placement import memory_bytes
from tests.conftest import COMPOSE, ROOT, run_hoplab, unique_lab_name
from tests.test_lab_integration import spare_address

# --- pure: rosters, generated names, pool -------------------------------------------------------


def test_roster_skips_blanks_and_comments_and_keeps_lines():
    seats = workshop.parse_roster("# room 1\n\nalice\n  bob   # late\ncarol-2\n", "r.txt")
    assert [(s.participant, s.lab, s.line) for s in seats] == [
        ("alice", "alice", 3),
        ("bob", "bob", 4),
        ("carol-2", "carol-2", 5),
    ]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("alice\nBob\n", 2, "invalid lab name 'Bob'"),
        ("alice\n\nbad name\n", 3, "invalid lab name"),
        ("alice\nbob\nalice\n", 3, "listed twice (first on line 1)"),
        ("x" * 31 + "\n", 1, "invalid lab name"),
    ],
)
def test_bad_roster_lines_are_named(text, line, words):
    with pytest.raises(InputError) as info:
        workshop.parse_roster(text, "room.txt")
    assert info.value.exit_code == 2
    assert f"room.txt:{line}: " in info.value.message and words in info.value.message
    assert info.value.hint


def test_empty_or_missing_roster_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no participants"):
        workshop.parse_roster("# nobody yet\n\n", "empty.txt")
    with pytest.raises(InputError, match=r"nope\.txt: cannot read the roster"):
        workshop.read_roster(tmp_path / "nope.txt")


def test_numbered_seats_pad_and_check_the_prefix():
    assert [s.lab for s in workshop.numbered_seats(3, "ws-")] == ["ws-01", "ws-02", "ws-03"]
    assert workshop.numbered_seats(100, "p")[-1].lab == "p100"
    for count in (0, workshop.MAX_PARTICIPANTS + 1):
        with pytest.raises(InputError, match="--participants"):
            workshop.numbered_seats(count, "p")
    for prefix in ("Bad-", "9x", "x" * 29):
        with pytest.raises(InputError, match="--prefix"):
            workshop.numbered_seats(2, prefix)


def test_pool_is_checked_against_the_room():
    topo = load(COMPOSE)
    assert workshop.check_pool("10.200.0.0/16", topo, 20) == IPv4Network("10.200.0.0/16")
    bad = {
        "10.200.0.1/16": "host bits",
        "nonsense": "invalid pool",
        "8.8.0.0/16": "not a private range",
        "10.200.0.0/25": "smaller than the topology's /24",
        "10.200.0.0/22": "need up to",  # 4 x /24: not even two labs of the default topology
    }
    for raw, words in bad.items():
        with pytest.raises(InputError) as info:
            workshop.check_pool(raw, topo, 20)
        assert words in info.value.message and "--pool" in info.value.message, raw


# --- on the real engine ---------------------------------------------------------------------

docker = pytest.mark.docker


def _hoplab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return run_hoplab(*args, timeout=timeout)


def room_objects(engine: Engine, room: str) -> tuple[list, list]:
    """Everything of the room: its containers by label, and its labs' networks."""
    containers = engine.api.containers(all=True, filters={"label": [f"{workshop.WORKSHOP}={room}"]})
    labs = {c["Labels"][L.LAB] for c in containers}
    networks = [n for lab in labs for n in engine.api.networks(filters=L.lab_filter(lab))]
    return containers, networks


def lab_objects(engine: Engine, lab: str) -> tuple[list, list]:
    return (
        engine.api.containers(all=True, filters=L.lab_filter(lab)),
        engine.api.networks(filters=L.lab_filter(lab)),
    )


@pytest.fixture(scope="module")
def room(engine: Engine) -> Iterator[tuple[str, Lab, Lab]]:
    """Two participants' labs, brought up by the CLI as a workshop; torn down even on failure."""
    name = unique_lab_name("ws")
    try:
        res = _hoplab("workshop", "up", "--participants", "2", "--workshop", name)
        assert res.returncode == 0, res.stderr
        assert "2 of 2 labs up" in res.stderr
        a, b = (Lab.attach(engine, f"{name}-{i:02d}") for i in (1, 2))
        yield name, a, b
    finally:
        workshop.down(engine, name)
        assert room_objects(engine, name) == ([], [])


@docker
def test_room_labs_carry_the_room_and_their_participant(engine, room):
    name, a, b = room
    assert workshop.room_labs(engine, name) == [a.name, b.name]
    for lab in (a, b):
        assert lab.state.running and len(lab.state.nodes) == 7
        assert lab.state.owner == lab.name != getpass.getuser()  # the participant, not the user
    if engine.wiring == fabric.FABRIC:  # each lab is its own world: both keep the file's subnets
        own = {n.name: str(n.subnet) for n in load(COMPOSE).networks}
        assert a.state.networks == b.state.networks == own, (a.state.networks, b.state.networks)
    else:
        assert not set(a.state.networks.values()) & set(b.state.networks.values())
    listing = _hoplab("ls").stdout
    rows = [[cell.strip() for cell in line.split("│")][1:3] for line in listing.splitlines()]
    for lab in (a, b):
        assert [lab.name, lab.name] in rows, listing  # lab and owner columns
    again = _hoplab("workshop", "up", "--participants", "2", "--workshop", name)
    assert again.returncode == 0 and "2 kept" in again.stderr, again.stderr
    assert {c["Id"] for c in room_objects(engine, name)[0]} == {
        c["Id"] for lab in (a, b) for c in lab_objects(engine, lab.name)[0]
    }


@docker
def test_every_node_has_memory_and_pids_limits(engine, room):
    _, a, b = room
    containers = [c for lab in (a, b) for c in lab_objects(engine, lab.name)[0]]
    if engine.wiring == fabric.FABRIC:  # each lab's fabric is limited too, tighter than a node
        fabrics = [c for c in containers if L.FABRIC in c["Labels"]]
        assert len(fabrics) == 2, [c["Names"] for c in containers]
        for c in fabrics:
            host = engine.api.inspect_container(c["Id"])["HostConfig"]
            assert 0 < host["Memory"] < memory_bytes(MEM_LIMIT) and 0 < host["PidsLimit"] < 256
        containers = [c for c in containers if c not in fabrics]
    assert len(containers) == 14
    for c in containers:
        host = engine.api.inspect_container(c["Id"])["HostConfig"]
        assert host["Memory"] == memory_bytes(MEM_LIMIT) == 128 * 1024 * 1024, c["Names"]
        assert host["PidsLimit"] == 256, c["Names"]
    assert 0 < sum(engine.memory(a.name).values()) < 7 * memory_bytes(MEM_LIMIT)


FORK_BOMB = """
import json, os, time
kids, err = [], None
deadline = time.monotonic() + 15
while time.monotonic() < deadline:
    try:
        pid = os.fork()
    except OSError as e:
        err = e.errno
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    kids.append(pid)
print(json.dumps({"forked": len(kids), "errno": err}), flush=True)
time.sleep(3)  # hold every pid while the test looks at the other lab
for k in kids:
    os.kill(k, 9)
for k in kids:
    os.waitpid(k, 0)
print("released", flush=True)
"""


def _pings(lab: Lab, src: str, dst: str) -> bool:
    return lab.node(src).run(["ping", "-n", "-c1", "-W2", lab.address(dst)]).ok


def _exited(proc: Proc) -> bool:
    try:
        return proc.wait(timeout=10)
    except HoplabError:  # no pid free for the exec yet
        return False


@docker
def test_a_fork_bomb_hits_the_pids_limit_and_spares_the_other_lab(room):
    _, a, b = room
    bomb = a.node("alice").start(["python3", "-u", "-c", FORK_BOMB], ready="forked", timeout=20)
    try:
        seen = json.loads(bomb.output().splitlines()[0])
        assert seen["errno"] == errno.EAGAIN, seen
        assert 200 <= seen["forked"] < 256, seen  # the cgroup's 256 pids, not anything sooner
        # While alice's node is full, the other participant's lab and alice's neighbours work.
        assert _pings(b, "alice", "srv") and _pings(b, "carol", "dave")
        assert _pings(a, "bob", "r1")
    finally:
        deadline = time.monotonic() + 40
        while not _exited(bomb):  # exec into alice's node needs a free pid: wait for the bomb
            assert time.monotonic() < deadline, "the fork bomb never let go of its pids"
    assert "released" in bomb.output()
    assert _pings(a, "alice", "srv")


@docker
def test_a_memory_hog_is_killed_in_its_own_node_only(room):
    _, a, b = room
    hog = a.node("alice").run(["python3", "-c", "b = bytearray(600 << 20); print('got it')"])
    assert hog.code == 137 and "got it" not in hog.out, hog  # SIGKILL from the cgroup's OOM
    assert _pings(b, "alice", "srv")
    assert _pings(a, "alice", "srv")  # the node itself lives on


@docker
def test_a_participant_cannot_reach_another_participants_lab(engine, room):
    _, a, b = room
    if engine.wiring == fabric.FABRIC:  # both labs hold the file's addresses: use ones only B has
        return cannot_reach_addresses_only_the_other_lab_holds(a, b)
    srv = b.node("srv").start_py("echo.py", 7000, ready="listening")
    try:
        target = b.address("srv", "lan2")
        # positive controls: inside lab B, both ping and TCP reach srv, so failures below mean
        # isolation and not a dead target
        assert _pings(b, "alice", "srv")
        assert b.node("alice").run(f"echo hi | nc -q1 -w2 {target} 7000").out.strip() == "hi"
        targets = [b.address(n) for n in ("alice", "r1", "r2", "dave")] + [target]
        for src in ("alice", "r1", "r2", "srv"):
            for ip in targets:
                res = a.node(src).run(["ping", "-n", "-c1", "-W1", ip])
                assert not res.ok, f"lab A {src} reached lab B at {ip}"
            res = a.node(src).run(f"echo hi | nc -q1 -w2 {target} 7000")
            assert res.out.strip() != "hi", f"lab A {src} connected to lab B's srv"
        # even with NET_ADMIN, pointing an on-link route at the other lab's subnet gets nowhere:
        # lab B's bridge is another L2 segment, and the bridges have no host address to route by
        alice = a.node("alice")
        subnet = b.subnet("lan1")
        assert alice.run(["ip", "route", "add", subnet, "dev", alice.iface("lan1").name]).ok
        try:
            assert not alice.run(["ping", "-n", "-c1", "-W1", b.address("alice")]).ok
        finally:
            alice.run(["ip", "route", "del", subnet])
    finally:
        srv.stop()


def cannot_reach_addresses_only_the_other_lab_holds(a: Lab, b: Lab) -> None:
    """Fabric wiring: lab B's alice, r2, dave and srv get one more address each, on each of the
    four networks, that no node of either lab holds; lab A's nodes reach none of them by ping
    or TCP (the targets are on-link for A's own nodes: no route to add), while inside lab B
    both reach them (the control)."""
    spares = [(n, net, spare_address(b, n, net)) for n, net in SPARES]
    srv = b.node("srv").start_py("echo.py", 7000, ready="listening")
    try:
        target = next(ip for n, _, ip in spares if n == "srv")
        for _, _, ip in spares:
            assert b.node("r1").run(["ping", "-n", "-c1", "-W2", ip]).ok, ip
        assert b.node("alice").run(f"echo hi | nc -q1 -w2 {target} 7000").out.strip() == "hi"
        for src in ("alice", "r1", "r2", "srv"):
            for _, _, ip in spares:
                res = a.node(src).run(["ping", "-n", "-c1", "-W1", ip])
                assert not res.ok, f"lab A {src} reached lab B at {ip}"
            res = a.node(src).run(f"echo hi | nc -q1 -w2 {target} 7000")
            assert res.out.strip() != "hi", f"lab A {src} connected to lab B's srv"
    finally:
        srv.stop()
        for n, net, ip in spares:  # the room is shared by the tests after this one
            prefix = IPv4Network(b.subnet(net)).prefixlen
            b.node(n).run(["ip", "addr", "del", f"{ip}/{prefix}", "dev", b.node(n).iface(net).name])


SPARES = (("alice", "lan1"), ("r2", "core"), ("dave", "lan3"), ("srv", "lan2"))


@docker
def test_bad_roster_or_pool_exits_2_and_creates_nothing(engine, lab, tmp_path):
    name = unique_lab_name("wsbad")
    roster = tmp_path / "room.txt"
    roster.write_text(f"{name}a\n{name}b\nNot Valid\n")
    res = _hoplab("workshop", "up", "--roster", str(roster), "--workshop", name)
    assert res.returncode == 2, res.stderr
    assert "room.txt:3: participant: invalid lab name 'Not Valid'" in res.stderr
    roster.write_text(f"{name}a\n")
    res = _hoplab(
        "workshop", "up", "--roster", str(roster), "--workshop", name, "--pool", "1.2.0.0/16"
    )
    assert res.returncode == 2 and "--pool: pool 1.2.0.0/16 is not a private range" in res.stderr
    # someone else's running lab is never taken over: the session lab's name in a roster
    roster.write_text(f"{name}a\n{lab.name}\n")
    res = _hoplab("workshop", "up", "--roster", str(roster), "--workshop", name)
    assert res.returncode == 2 and f"room.txt:2: lab '{lab.name}' already exists" in res.stderr
    assert "Traceback" not in res.stderr
    assert room_objects(engine, name) == ([], [])
    assert lab_objects(engine, f"{name}a") == ([], [])
    assert lab.state.running and Lab.attach(engine, lab.name).state.owner != name


@docker
def test_ctrl_c_leaves_only_whole_labs_and_names_them(engine):
    name = unique_lab_name("wsint")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hoplab", "workshop", "up", "--participants", "3", "--parallel", "1"]
        + ["--workshop", name],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        # interrupt while the second lab is being made: the first is whole, the third not begun
        while not engine.api.containers(all=True, filters=L.lab_filter(f"{name}-02")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the second lab never started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        assert f"up: {name}-01" in err and "interrupted" in err
        up = Lab.attach(engine, f"{name}-01")
        assert up.state.running and len(up.state.nodes) == 7
        for lab in (f"{name}-02", f"{name}-03"):
            containers, _ = lab_objects(engine, lab)
            if engine.wiring == fabric.FABRIC:  # whole: 7 nodes and one fabric, no helper left
                roles = sorted(c["Labels"].get(L.FABRIC, "") for c in containers)
                assert roles in ([], [""] * 7 + [fabric.FABRIC]), (lab, roles)
                containers = [c for c in containers if L.FABRIC not in c["Labels"]]
            # rolled back, or (if the Ctrl-C came as it finished) whole: never half-made
            assert len(containers) in (0, 7), (lab, len(containers))
            if containers:
                assert f"{lab}" in err.split("up:", 1)[1].splitlines()[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        workshop.down(engine, name)
    assert room_objects(engine, name) == ([], [])


@docker
def test_down_removes_exactly_the_room(engine, lab, room):
    """Last in this module: it takes the shared room down."""
    name, a, b = room
    res = _hoplab("workshop", "down", "--workshop", name)
    assert res.returncode == 0, res.stderr
    assert f"workshop {name} down: removed 2 labs" in res.stderr
    assert room_objects(engine, name) == ([], [])
    for other in (a, b):
        assert lab_objects(engine, other.name) == ([], [])
    assert Lab.attach(engine, lab.name).state.running  # another lab on the engine is untouched
    again = _hoplab("workshop", "down", "--workshop", name)
    assert again.returncode == 0 and "has no labs" in again.stderr
