"""Pictures without Docker: the topology drawing from a plan, and ladders from synthetic pcaps.

The pcaps are made with dpkt the way tcpdump writes them: one capture per segment of the path
alice -> r1 -> r2 -> srv, with the TTL dropping and the MACs rewritten at each router.
"""

from __future__ import annotations

import io
import re
import socket
import xml.etree.ElementTree as ET
from html import escape
from pathlib import Path

import dpkt
import pytest

from hoplab.cli.commands import main
from hoplab.draw import graph, ladder
from hoplab.errors import HoplabError
from hoplab.model.load import load
from hoplab.model.plan import build_plan

ROOT = Path(__file__).resolve().parent.parent
PLAN = build_plan(load(ROOT / "compose.yaml"))
IP = {
    name: str(PLAN.address(*name.split("@")))
    for name in ("alice@lan1", "srv@lan2", "r1@lan1", "r2@lan2")
}
MAC = {
    ("alice", "lan1"): "02:00:00:00:01:0a",
    ("r1", "lan1"): "02:00:00:00:01:01",
    ("r1", "core"): "02:00:00:00:00:01",
    ("r2", "core"): "02:00:00:00:00:02",
    ("r2", "lan2"): "02:00:00:00:02:01",
    ("srv", "lan2"): "02:00:00:00:02:64",
}
WHERE = ladder.directory_from_plan(PLAN, {m: k for k, m in MAC.items()})
PATH = [("alice", "r1", "lan1"), ("r1", "r2", "core"), ("r2", "srv", "lan2")]


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def frame(src: tuple, dst: tuple, ip: dpkt.ip.IP) -> bytes:
    eth = dpkt.ethernet.Ethernet(
        src=_mac(MAC[src]), dst=_mac(MAC[dst]), type=dpkt.ethernet.ETH_TYPE_IP, data=ip
    )
    return bytes(eth)


def echo(
    ip_id: int,
    seq: int,
    ttl: int,
    src: str = "alice@lan1",
    dst: str = "srv@lan2",
    kind: int = dpkt.icmp.ICMP_ECHO,
) -> dpkt.ip.IP:
    icmp = dpkt.icmp.ICMP(type=kind, data=dpkt.icmp.ICMP.Echo(id=7, seq=seq, data=b"x" * 56))
    return dpkt.ip.IP(
        src=socket.inet_aton(IP[src]),
        dst=socket.inet_aton(IP[dst]),
        ttl=ttl,
        id=ip_id,
        p=dpkt.ip.IP_PROTO_ICMP,
        data=icmp,
    )


def pcap(frames: list[tuple[float, bytes]]) -> bytes:
    buf = io.BytesIO()
    writer = dpkt.pcap.Writer(buf)
    for ts, data in frames:
        writer.writepkt(data, ts=ts)
    return buf.getvalue()


def path_captures() -> list[tuple[str, bytes]]:
    """Packet 1 crosses all three segments; packet 2 reaches r2 and is never seen on lan2; the
    reply to packet 1 comes back; an ARP frame is noise."""
    per: dict[str, list] = {"lan1": [], "core": [], "lan2": []}
    for i, (a, b, net) in enumerate(PATH):
        per[net].append((1.0 + i / 1000, frame((a, net), (b, net), echo(100, 1, 64 - i))))
    for i, (a, b, net) in enumerate(PATH[:2]):
        per[net].append((2.0 + i / 1000, frame((a, net), (b, net), echo(101, 2, 64 - i))))
    for i, (b, a, net) in enumerate(reversed(PATH)):
        reply = echo(900, 1, 64 - i, "srv@lan2", "alice@lan1", dpkt.icmp.ICMP_ECHOREPLY)
        per[net].append((2.5 + i / 1000, frame((a, net), (b, net), reply)))
    arp = dpkt.ethernet.Ethernet(
        src=_mac(MAC[("alice", "lan1")]),
        dst=b"\xff" * 6,
        type=dpkt.ethernet.ETH_TYPE_ARP,
        data=dpkt.arp.ARP(),
    )
    per["lan1"].insert(0, (0.5, bytes(arp)))
    return [(f"{net}.pcap", pcap(sorted(f, key=lambda x: x[0]))) for net, f in per.items()]


# --- the topology picture ---------------------------------------------------------------------


def test_plan_picture_has_every_node_network_and_address():
    pic = graph.from_plan(PLAN)
    text = graph.svg(PLAN)
    dot = graph.to_dot(pic)
    mermaid = graph.to_mermaid(pic)
    for out in (text, dot, mermaid):
        for node in PLAN.nodes:
            assert node.name in out
            for iface in node.interfaces:
                assert str(iface.address) in out
        for net in PLAN.networks:
            assert net.name in out and str(net.subnet) in out
        assert "MTU 1280" in out  # lan3; the 1500 default is not shown
    assert "MTU 1500" not in text
    assert {n.role for n in pic.nodes if n.name.startswith("r")} == {"router"}


def test_svg_is_self_contained_and_well_formed():
    text = graph.svg(PLAN)
    root = ET.fromstring(text)
    assert root.tag.endswith("svg")
    _assert_self_contained(text)


def _assert_self_contained(text: str) -> None:
    assert "<script" not in text and "@font-face" not in text and "<!DOCTYPE" not in text
    assert not re.search(r"""href=["'](?!#)""", text), "only in-document references"
    assert not re.search(r"url\((?!#)", text)
    assert set(re.findall(r"https?://[^\s\"']+", text)) <= {
        "http://www.w3.org/2000/svg",
        "http://www.w3.org/1999/xlink",
        "http://purl.org/dc/elements/1.1/",
        "http://creativecommons.org/ns#",
        "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
        "http://purl.org/dc/dcmitype/StillImage",
    }


def test_state_picture_labels_each_attachment_with_interface_and_address():
    from hoplab.engine.state import LabState, NodeState

    def node(name: str, role: str, addresses: dict[str, str]) -> NodeState:
        return NodeState(name, f"running-{name}", role, "running", addresses, (), "digest")

    state = LabState(
        "running",
        nodes=(
            node("r1", "router", {"lan1": "10.9.1.1", "core": "10.9.0.1"}),
            node("pc", "host", {"lan1": "10.9.1.10"}),
        ),
        networks={"lan1": "10.9.1.0/24", "core": "10.9.0.0/29"},
    )
    pic = graph.from_state(
        state, ifaces={"r1": {"lan1": "eth0", "core": "eth1"}}, mtus={"core": 9000}
    )
    dot = graph.to_dot(pic)
    assert "eth0 10.9.1.1" in dot and "eth1 10.9.0.1" in dot and "10.9.1.10" in dot
    assert "MTU 9000" in dot
    assert "10.9.0.0/29" in graph.svg(state)


def test_png_is_a_png():
    data = graph.render(graph.from_plan(PLAN), "png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_missing_dot_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(HoplabError) as err:
        graph.render(graph.from_plan(PLAN), "svg")
    assert "graphviz" in err.value.hint and "make sysdeps" in err.value.hint
    # Text formats need no tool.
    assert graph.render(graph.from_plan(PLAN), "mermaid").startswith(b"flowchart")


def test_graph_command_writes_each_format(tmp_path, capsys):
    for fmt in graph.FORMATS:
        out = tmp_path / f"t.{fmt}"
        assert (
            main(["graph", "-f", str(ROOT / "compose.yaml"), "--format", fmt, "-o", str(out)]) == 0
        )
        assert out.stat().st_size > 100
    assert main(["graph", "-f", str(ROOT / "compose.yaml"), "--format", "mermaid"]) == 0
    assert "flowchart LR" in capsys.readouterr().out


def test_graph_command_bad_input_exits_2_and_names_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  a:\n    networks: [nowhere]\n")
    assert main(["graph", "-f", str(bad)]) == 2
    assert "bad.yaml" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["graph", "--format", "gif"])
    assert exit_.value.code == 2


# --- the ladder -------------------------------------------------------------------------------


def test_ladder_lanes_ttls_macs_and_drop():
    lad = ladder.build(path_captures(), WHERE)
    assert lad.lanes == ("alice", "r1", "r2", "srv")
    assert lad.ignored == 1  # the ARP frame
    first = lad.packet(1)
    assert [(h.sender, h.receiver, h.segment) for h in first] == PATH
    assert [h.ttl for h in first] == [64, 63, 62]
    assert [(h.src_mac, h.dst_mac) for h in first] == [
        (MAC[(a, n)], MAC[(b, n)]) for a, b, n in PATH
    ]
    assert {(h.src_ip, h.dst_ip) for h in first} == {(IP["alice@lan1"], IP["srv@lan2"])}
    assert len({h.src_mac for h in first}) == 3  # a new source MAC at every hop
    second = lad.packet(2)
    assert [h.ttl for h in second] == [64, 63]
    assert [(d.packet, d.at, d.expected_on) for d in lad.drops] == [(2, "r2", "lan2")]
    assert "lost at r2" in lad.drops[0].reason
    reply = lad.packet(3)
    assert [(h.sender, h.receiver) for h in reply] == [("srv", "r2"), ("r2", "r1"), ("r1", "alice")]
    assert [h.ttl for h in reply] == [64, 63, 62]


def test_ladder_svg_shows_labels_and_the_drop():
    lad = ladder.build(path_captures(), WHERE)
    text = ladder.svg(lad, "mac-per-hop")
    ET.fromstring(text)
    _assert_self_contained(text)
    for needle in (
        "TTL 64",
        "TTL 63",
        "TTL 62",
        "DROPPED",
        "echo-request",
        "echo-reply",
        MAC[("r1", "core")],
        IP["alice@lan1"],
        "alice",
        "srv",
        "98 B",
    ):
        assert needle in text, needle


def test_same_frame_from_two_captures_on_one_segment_is_drawn_once():
    caps = path_captures()
    lad = ladder.build([*caps, ("lan1-again.pcap", caps[0][1])], WHERE)
    assert len(lad.hops) == len(ladder.build(caps, WHERE).hops)


def test_retransmission_and_fragment_are_marked():
    def tcp(ip_id: int, seq: int) -> dpkt.ip.IP:
        seg = dpkt.tcp.TCP(
            sport=40000,
            dport=80,
            seq=seq,
            ack=1,
            flags=dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH,
            data=b"d" * 100,
        )
        return dpkt.ip.IP(
            src=socket.inet_aton(IP["alice@lan1"]),
            dst=socket.inet_aton(IP["srv@lan2"]),
            ttl=64,
            id=ip_id,
            p=dpkt.ip.IP_PROTO_TCP,
            data=seg,
        )

    frag = echo(300, 5, 64)
    frag.mf = 1
    frames = [
        (1.0, frame(("alice", "lan1"), ("r1", "lan1"), tcp(10, 5000))),
        (1.3, frame(("alice", "lan1"), ("r1", "lan1"), tcp(11, 5000))),  # same bytes again
        (1.5, frame(("alice", "lan1"), ("r1", "lan1"), frag)),
    ]
    lad = ladder.build([("lan1.pcap", pcap(frames))], WHERE)
    assert [h.retransmission for h in lad.hops] == [False, True, False]
    assert [h.fragment for h in lad.hops] == [False, False, True]
    text = ladder.svg(lad)
    assert "RETRANSMISSION" in text and "FRAGMENT" in text


def test_icmp_error_from_a_router_is_matched_to_the_packet_it_quotes():
    dying = echo(200, 9, 1)
    quoted = echo(200, 9, 1)
    err = dpkt.icmp.ICMP(type=11, code=0, data=dpkt.icmp.ICMP.TimeExceed(data=quoted))
    back = dpkt.ip.IP(
        src=socket.inet_aton(IP["r1@lan1"]),
        dst=socket.inet_aton(IP["alice@lan1"]),
        ttl=64,
        id=5,
        p=dpkt.ip.IP_PROTO_ICMP,
        data=err,
    )
    core_noise = frame(("r1", "core"), ("r2", "core"), echo(201, 10, 63))
    lan1 = pcap(
        [
            (1.0, frame(("alice", "lan1"), ("r1", "lan1"), dying)),
            (1.001, frame(("r1", "lan1"), ("alice", "lan1"), back)),
        ]
    )
    lad = ladder.build([("lan1.pcap", lan1), ("core.pcap", pcap([(1.2, core_noise)]))], WHERE)
    assert [h.what.split(" ")[1] for h in lad.packet(2)] == ["time-exceeded"]
    assert lad.drops[0].at == "r1" and "TTL 1" in lad.drops[0].reason
    assert "about #1, IP ID 200" in lad.packet(2)[0].what  # the error names the packet it quotes


def test_empty_and_truncated_captures_give_an_empty_ladder():
    caps = path_captures()
    lad = ladder.build([("empty.pcap", b""), ("cut.pcap", caps[0][1][:30])], WHERE)
    assert lad.hops == () and lad.lanes == ()


# --- the report page --------------------------------------------------------------------------


def test_report_page_escapes_hostile_text_links_pcaps_relatively_and_draws_the_ladder(tmp_path):
    from hoplab.checks import check
    from hoplab.draw import html
    from hoplab.exercises.runner import ExerciseResult

    folder = tmp_path / "mac-per-hop"
    folder.mkdir()
    for name, data in path_captures():
        (folder / name).write_bytes(data)
    evil = "<script>alert(1)</script><img src=http://example.invalid/x>"
    results = [
        ExerciseResult("mac-per-hop", (check("ttl drops", True, "64, 63, 62", evil),), 1.5),
        ExerciseResult("nat", (check("no capture", False, "x", "y", hint=evil),), 0.5),
    ]

    class Ex:
        name, summary, lesson = "mac-per-hop", "MACs change per hop", "A lesson with <b>tags</b>"

    secs = html.sections([Ex], results, tmp_path, WHERE)
    page = html.render_page("lab<1>", graph.svg(PLAN), secs)
    assert "<script" not in page and "<img" not in page and "&lt;script&gt;" in page
    assert "&lt;b&gt;tags&lt;/b&gt;" in page and "lab&lt;1&gt;" in page
    assert 'href="mac-per-hop/core.pcap"' in page and str(tmp_path) not in page
    assert page.count("<svg") == 2  # topology + the one exercise that captured
    assert "DROPPED" in page and "TTL 62" in page
    # Escaped, the hostile text is inert; the rest of the page must reference nothing outside.
    body = page.removeprefix("<!DOCTYPE html>").replace(escape(evil), "")
    _assert_self_contained(body.replace('href="mac-per-hop/', 'href="#'))


def test_a_packet_fragmented_by_a_router_is_not_a_drop_and_keeps_its_number():
    whole = echo(400, 3, 63)
    whole.data.data.data = b"y" * 1400
    head, tail = echo(400, 3, 62), echo(400, 3, 62)
    head.mf, head.data.data.data = 1, b"y" * 1000
    tail.offset, tail.data = 1008 // 8, b"y" * 400
    tail.p = dpkt.ip.IP_PROTO_ICMP
    core = pcap([(1.0, frame(("r1", "core"), ("r2", "core"), whole))])
    lan2 = pcap(
        [
            (1.001, frame(("r2", "lan2"), ("srv", "lan2"), head)),
            (1.002, frame(("r2", "lan2"), ("srv", "lan2"), tail)),
        ]
    )
    lad = ladder.build([("core.pcap", core), ("lan2.pcap", lan2)], WHERE)
    assert lad.drops == ()
    assert [(h.segment, h.fragment) for h in lad.packet(1)] == [("core", False), ("lan2", True)]
    assert lad.packet(2)[0].what.startswith("fragment offset 1008")
    assert lad.packet(1)[0].length == 14 + 20 + 8 + 1400  # the wire length, not the snapshot


def test_too_big_with_df_set_is_dropped_by_the_router_that_answered_frag_needed():
    big = echo(500, 4, 63)
    big.df, big.data.data.data = 1, b"z" * 1400
    quoted = echo(500, 4, 63)
    err = dpkt.icmp.ICMP(type=3, code=4, data=dpkt.icmp.ICMP.Unreach(mtu=1280, data=quoted))
    back = dpkt.ip.IP(
        src=socket.inet_aton(str(PLAN.address("r2", "core"))),
        dst=socket.inet_aton(IP["alice@lan1"]),
        ttl=64,
        id=6,
        p=dpkt.ip.IP_PROTO_ICMP,
        data=err,
    )
    core = pcap(
        [
            (1.0, frame(("r1", "core"), ("r2", "core"), big)),
            (1.001, frame(("r2", "core"), ("r1", "core"), back)),
        ]
    )
    lan2 = pcap([(1.5, frame(("r2", "lan2"), ("srv", "lan2"), echo(501, 5, 62)))])
    lad = ladder.build([("core.pcap", core), ("lan2.pcap", lan2)], WHERE)
    assert [(d.packet, d.at) for d in lad.drops] == [(1, "r2")]
    assert "frag-needed" in lad.drops[0].reason
    assert "DF" in ladder.label(lad.packet(1)[0])[0]


def test_report_says_why_a_ladder_is_missing(tmp_path):
    from dataclasses import replace

    from hoplab.checks import check
    from hoplab.draw import html
    from hoplab.exercises.runner import ExerciseResult

    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "lan1.pcap").write_bytes(path_captures()[0][1])
    (tmp_path / "x" / "empty.pcap").write_bytes(b"")
    result = ExerciseResult("x", (check("c", True, "a", "a"),), 0.1)
    (sec,) = html.sections([], [result], tmp_path, replace(WHERE, macs={}))
    assert sec.ladder_svg == "" and "MAC addresses could be read" in sec.notes[0]
    assert sec.pcaps == ("x/empty.pcap", "x/lan1.pcap")


def test_a_long_ladder_is_drawn_from_just_before_the_first_retransmission():
    def seg(ip_id: int, seq: int) -> bytes:
        tcp = dpkt.tcp.TCP(
            sport=40000, dport=80, seq=seq, ack=1, flags=dpkt.tcp.TH_ACK, data=b"d" * 100
        )
        ip = dpkt.ip.IP(
            src=socket.inet_aton(IP["alice@lan1"]),
            dst=socket.inet_aton(IP["srv@lan2"]),
            ttl=64,
            id=ip_id,
            p=dpkt.ip.IP_PROTO_TCP,
            data=tcp,
        )
        return frame(("alice", "lan1"), ("r1", "lan1"), ip)

    frames = [(1 + i / 100, seg(i, 1000 + 100 * i)) for i in range(200)]
    frames.append((1.505, seg(999, 1000 + 100 * 50)))  # segment 50 sent again, as frame 52
    lad = ladder.build([("lan1.pcap", pcap(frames))], WHERE)
    assert [i for i, h in enumerate(lad.hops) if h.retransmission] == [51]
    assert ladder.window(lad) == (51 - 8, 51 - 8 + ladder.MAX_ROWS)
    assert "frames 44-103 of 201" in ladder.svg(lad)


def test_hostile_frames_never_break_the_ladder():
    """A participant is root in their node and can send any bytes: the ladder skips what it
    cannot read and draws the rest."""
    import random

    rng = random.Random(14)
    good = path_captures()[0][1]
    src, dst = _mac(MAC[("alice", "lan1")]), _mac(MAC[("r1", "lan1")])
    frames = []
    for i in range(600):
        body = rng.randbytes(rng.randrange(0, 60))
        if i % 3 == 0:  # ICMP errors and echoes quoting garbage
            body = bytes([rng.choice([0, 3, 8, 11]), rng.randrange(16), 0, 0]) + body
        raw = bytearray(bytes(dpkt.ip.IP(p=rng.choice([1, 6, 17]), id=i, ttl=9, data=body)))
        if i % 4 == 0:
            raw[2:4] = rng.randbytes(2)  # a total length that lies
        if i % 5 == 0:
            raw[6:8] = rng.randbytes(2)  # random flags and fragment offset
        if i % 7 == 0:
            raw = bytearray(rng.randbytes(rng.randrange(0, 40)))  # not even a header
        frames.append((1.0 + i / 1000, dst + src + b"\x08\x00" + bytes(raw)))
    lad = ladder.build([("evil.pcap", pcap(frames)), ("lan1.pcap", good)], WHERE)
    real = [h for h in lad.hops if h.what == "ICMP echo-request id 7 seq 1"]
    assert [h.ttl for h in real] == [64]  # the real frame is still there
    assert lad.ignored > 0  # and the unreadable ones were counted, not drawn
    ladder.svg(lad)  # and it draws
