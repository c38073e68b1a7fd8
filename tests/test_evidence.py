"""The pure readers of hoplab.runtime.evidence, on real `ss` output shapes. No Docker: the
readers that dial (reach_matrix, network_towards) run in tests/exercises and test_grading.py."""

from __future__ import annotations

from hoplab.runtime.evidence import show_matrix, ss_tuples

# `ss -tnH` as srv prints it with three clients on port 80, and a connection of another local
# port whose *peer* port is 80 (it must not be counted: the local port selects).
SS = """\
ESTAB 0 0 10.77.2.10:80 10.77.1.10:41000
ESTAB 0 0 10.77.2.10:80 10.77.1.10:41002
ESTAB 0 0 10.77.2.10:80 10.77.2.11:52000
ESTAB 0 0 10.77.2.10:8080 10.77.1.10:80
"""


def test_ss_tuples_keeps_connections_whose_local_port_is_the_port():
    assert ss_tuples(SS, 80) == {
        ("10.77.2.10:80", "10.77.1.10:41000"),
        ("10.77.2.10:80", "10.77.1.10:41002"),
        ("10.77.2.10:80", "10.77.2.11:52000"),
    }
    assert ss_tuples(SS, 8080) == {("10.77.2.10:8080", "10.77.1.10:80")}


def test_ss_tuples_ignores_short_or_empty_lines():
    assert ss_tuples("\n\nESTAB 0 0\ngarbage\n", 80) == set()


def test_show_matrix_groups_cells_by_client_in_order():
    cells = {
        ("alice", "lan2"): "refused",
        ("alice", "lan3"): "answered",
        ("srv", "lo"): "answered",
    }
    assert show_matrix(cells) == "alice: lan2 refused, lan3 answered | srv: lo answered"
