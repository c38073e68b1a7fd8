"""Property: whatever text the loader is given, it returns a valid Topology or raises InputError
naming a line and a key, never anything else. And a Topology it accepts always plans.

Three sources of input: YAML-ish text, random documents built from the words of a topology, and
mutations of the real compose.yaml (structural and byte-level). No Docker here.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hoplab.errors import InputError
from hoplab.model.load import parse
from hoplab.model.plan import build_plan
from hoplab.model.topology import Topology
from tests.conftest import COMPOSE

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOURCE = "fuzz.yaml"
COMPOSE_TEXT = COMPOSE.read_text()
COMPOSE_DOC = yaml.safe_load(COMPOSE_TEXT)

WORDS = [
    "services", "networks", "x-hoplab", "name", "role", "router", "host", "routes", "to", "via",
    "ipam", "config", "subnet", "gateway", "ipv4_address", "driver", "driver_opts", "mtu",
    "image", "hoplab/node", "cap_add", "NET_ADMIN", "sysctls", "net.ipv4.ip_forward",
    "r1", "r2", "alice", "bob", "lan1", "lan2", "core", "privileged", "ports",
]  # fmt: skip
SCALARS = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(["10.77.1.0/24", "10.77.1.10", "10.77.0.0/29", "10.77.1.255", "8.8.8.0/24"]),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
)
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=6), inner, max_size=4),
    ),
    max_leaves=30,
)
YAML_CHARS = st.sampled_from(list(":-[]{},&*!|>'\"#%@`?\t\n ") + list("abc01./x"))


def outcome(text: str) -> Topology | InputError:
    """The property itself: a Topology that plans, or a clean InputError, nothing else."""
    try:
        topo = parse(text, SOURCE)
    except InputError as e:
        assert e.exit_code == 2 and e.file == SOURCE, str(e)
        assert e.line > 0 and e.key, f"no line or key in: {e}"
        assert str(e).startswith(f"{SOURCE}:{e.line}: {e.key}: "), str(e)
        return e
    plan = build_plan(topo)
    for net in plan.networks:
        addrs = [i.address for n in plan.nodes for i in n.interfaces if i.network == net.name]
        assert len(addrs) == len(set(addrs)), f"duplicate address on {net.name}"
        assert all(a in net.subnet for a in addrs) and net.gateway not in addrs
        assert all(
            a not in (net.subnet.network_address, net.subnet.broadcast_address) for a in addrs
        )
    return topo


@FAST
@given(st.lists(st.text(YAML_CHARS, max_size=40), max_size=12))
def test_yaml_ish_text_never_raises_anything_else(lines: list[str]):
    outcome("\n".join(lines))


@FAST
@given(st.text(max_size=200))
def test_any_unicode_text_never_raises_anything_else(text: str):
    outcome(text)


@FAST
@given(DOCS)
def test_random_documents_from_topology_words(doc: Any):
    outcome(yaml.safe_dump(doc, allow_unicode=True) if doc is not None else "")


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


COMPOSE_PATHS = _paths(COMPOSE_DOC)


def _mutate(doc: Any, path: tuple, action: str, value: Any) -> Any:
    """A copy of doc with the value at path replaced, deleted, or given a sibling."""
    if not path:
        return value if action == "replace" else doc
    head, *rest = path
    if isinstance(doc, dict):
        copy = dict(doc)
        if not rest and action == "delete":
            copy.pop(head, None)
        elif not rest and action == "add":
            copy[f"{head}x" if isinstance(head, str) else "x"] = value
        else:
            copy[head] = _mutate(doc[head], tuple(rest), action, value)
        return copy
    copy = list(doc)
    if not rest and action == "delete":
        del copy[head]
    elif not rest and action == "add":
        copy.insert(head, value)
    else:
        copy[head] = _mutate(doc[head], tuple(rest), action, value)
    return copy


@FAST
@given(
    st.lists(
        st.tuples(
            st.sampled_from(COMPOSE_PATHS),
            st.sampled_from(["replace", "delete", "add"]),
            DOCS,
        ),
        min_size=1,
        max_size=3,
    )
)
def test_structural_mutations_of_compose_yaml(mutations: list[tuple[tuple, str, Any]]):
    doc = COMPOSE_DOC
    for path, action, value in mutations:
        try:
            doc = _mutate(doc, path, action, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    outcome(yaml.safe_dump(doc, allow_unicode=True))


@FAST
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(COMPOSE_TEXT)),
            st.integers(0, 40),
            st.text(YAML_CHARS, max_size=8),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_byte_level_mutations_of_compose_yaml(edits: list[tuple[int, int, str]]):
    text = COMPOSE_TEXT
    for at, cut, insert in edits:
        at = min(at, len(text))
        text = text[:at] + insert + text[at + cut :]
    outcome(text)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["10.77.1.10", "10.77.2.100"]), st.integers(0, 255))
def test_changed_addresses_in_compose_yaml(old: str, last: int):
    new = str(IPv4Address(old) - int(old.split(".")[-1]) + last)
    outcome(COMPOSE_TEXT.replace(old, new))


def test_compose_yaml_itself_passes_the_property():
    assert isinstance(outcome(COMPOSE_TEXT), Topology)
