"""Every exec into a node has a deadline that root in the node cannot stretch (issue 26).

Root in a node can make any program hoplab runs there hang: replace it, or add a sitecustomize
implant to Python. The engine then gives up at the deadline, kills the exec's processes from the
host's view (a helper container with the host's pid namespace, from a clean image), and refuses
further execs into that node for a while, so a grading or a reap fails fast and says why.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hoplab.engine import inside, outside
from hoplab.engine.engine import Engine
from hoplab.model import labels as L
from hoplab.runtime.lab import Lab
from tests.conftest import bring_up, unique_lab_name

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def own(engine: Engine) -> Iterator[Lab]:
    name = unique_lab_name("dl")
    try:
        yield bring_up(engine, name)
    finally:
        engine.down(name)
        assert not engine.api.containers(all=True, filters=L.lab_filter(name))


def processes(engine: Engine, container: str) -> str:
    """The node's command lines from the host's view (docker top): no exec into the node."""
    rows = engine.api.top(container, ps_args="-o pid,args")["Processes"] or []
    return "\n".join(r[1] for r in rows)


def test_a_hung_exec_is_cut_at_its_deadline_and_killed_from_outside(engine, own):
    node = own.node("carol")
    # The exec's program hangs and a child it forked holds the output open: both must go.
    hang = ["sh", "-c", "sleep 3101 & exec sleep 3102"]
    started = time.monotonic()
    with pytest.raises(inside.Overdue, match=r"did not finish within 1 s .*were killed"):
        inside.run(engine.api, node.container, hang, timeout=1)
    took = time.monotonic() - started
    print(f"a hung exec with a 1 s deadline raised after {took:.1f} s, its processes killed")
    assert took < 8, took  # the deadline plus one helper container, never the 3102 s
    left = processes(engine, node.container)
    assert "sleep 3101" not in left and "sleep 3102" not in left, left
    # The node is cooled off: the next exec is refused at once, naming why.
    started = time.monotonic()
    with pytest.raises(inside.Overdue, match="did not answer an earlier exec"):
        inside.run(engine.api, node.container, ["true"], timeout=5)
    assert time.monotonic() - started < 0.5
    # The killer left nothing behind: no container of the lab but its nodes.
    names = {
        c["Labels"].get(L.NODE)
        for c in engine.api.containers(all=True, filters=L.lab_filter(own.name))
    }
    assert None not in names, names


def test_a_normal_exec_keeps_its_output_and_exit_code(engine, own):
    node = own.node("alice")
    code, out, err = inside.run(
        engine.api,
        node.container,
        ["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' a; echo e >&2; exit 3"],
        10,
    )
    assert (code, len(out), err) == (3, 300000, b"e\n")


def test_the_host_view_finds_a_tree_by_parents_and_sessions():
    procs = {10: (1, 10), 11: (10, 10), 12: (11, 12), 13: (1, 12), 14: (1, 14), 15: (14, 14)}
    # 12 left the session but descends from 10; 13 was re-parented but is in 12's session
    assert outside.tree(procs, {10}) == {10, 11, 12, 13}
    assert outside.tree(procs, {99}) == set()
