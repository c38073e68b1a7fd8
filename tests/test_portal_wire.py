"""The wire panel: packets of the participant's own segments, live, grouped hop by hop.

Pure tests cover the stream parsers, the filter and segment checks and the grouping. The rest
serve a room of two default labs on the real engine and watch real packets: a ping across two
segments (the TTL drops by one at r1), a UDP flood that the rate bound cuts and counts, sockets
that close and leave no capture anywhere, a participant who tries another's lab or the host's
interfaces, and a real chromium showing the grouped frames.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import time
from collections.abc import Iterator

import aiohttp
import dpkt
import pytest

from hoplab.engine.engine import Engine
from hoplab.model import labels as L
from hoplab.portal import wire as W
from tests.test_portal import Room, chromium, served_room, shots_dir, ws_connect

docker = pytest.mark.docker

# --- pure ---------------------------------------------------------------------------------------


def _echo(ttl: int, seq: int, src: bytes, dst: bytes, smac: bytes, dmac: bytes) -> bytes:
    icmp = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=7, seq=seq, data=b"x" * 56))
    ip = dpkt.ip.IP(src=src, dst=dst, ttl=ttl, p=1, id=1000 + seq, data=icmp)
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(src=smac, dst=dmac, type=0x0800, data=ip))


def test_one_packet_on_two_segments_is_one_group_and_the_next_is_another():
    groups = W.Groups()
    a, b = b"\x0a\x00\x01\x0a", b"\x0a\x00\x02\x64"
    first = W.frame(1.0, "lan1", 98, _echo(64, 1, a, b, b"\x02" * 6, b"\x04" * 6), groups)
    hop = W.frame(1.001, "core", 98, _echo(63, 1, a, b, b"\x06" * 6, b"\x08" * 6), groups)
    again = W.frame(2.0, "lan1", 98, _echo(64, 2, a, b, b"\x02" * 6, b"\x04" * 6), groups)
    assert first["g"] == hop["g"] != again["g"]
    assert (first["ttl"], hop["ttl"]) == (64, 63)
    assert first["smac"] == "02:02:02:02:02:02" and hop["smac"] == "06:06:06:06:06:06"
    assert first["icmp"] == "echo-request" and first["src"] == "10.0.1.10"
    # The same key on the same segment is a new packet (the ladder's rule), as is one too late.
    late = W.frame(9.0, "lan1", 98, _echo(64, 1, a, b, b"\x02" * 6, b"\x04" * 6), groups)
    same = W.frame(9.002, "lan1", 98, _echo(64, 1, a, b, b"\x02" * 6, b"\x04" * 6), groups)
    assert len({first["g"], late["g"], same["g"]}) == 3


A6, B6 = bytes.fromhex("fd000001" + "0" * 22 + "0a"), bytes.fromhex("fd000002" + "0" * 22 + "64")


def _ip6(hlim: int, smac: bytes, dmac: bytes, nxt: int, l4: dpkt.Packet) -> bytes:
    ip = dpkt.ip6.IP6(src=A6, dst=B6, hlim=hlim, nxt=nxt, plen=len(bytes(l4)), data=l4)
    return bytes(dpkt.ethernet.Ethernet(src=smac, dst=dmac, type=0x86DD, data=ip))


def _echo6(seq: int) -> dpkt.icmp6.ICMP6:
    return dpkt.icmp6.ICMP6(type=128, data=dpkt.icmp6.ICMP6.Echo(id=7, seq=seq, data=b"x" * 56))


def _through_pcap(frames: list[tuple[float, bytes]]) -> list[tuple[float, int, bytes]]:
    """The frames as a real pcap stream (dpkt's writer), read back by the wire's parser."""
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out, snaplen=128)
    for at, buf in frames:
        writer.writepkt(buf, ts=at)
    return W.Pcap().feed(out.getvalue())


def test_an_ipv6_packet_is_grouped_hop_by_hop_with_its_hop_limit_dropping():
    lan1, core = (b"\x02" * 6, b"\x04" * 6), (b"\x06" * 6, b"\x08" * 6)
    udp = dpkt.udp.UDP(sport=5000, dport=9, data=b"w" * 32)
    udp.ulen = len(bytes(udp))
    tcp = dpkt.tcp.TCP(sport=40000, dport=80, seq=1, flags=dpkt.tcp.TH_SYN)
    sent = [
        (1.0, _ip6(64, *lan1, 58, _echo6(1))),
        (1.001, _ip6(63, *core, 58, _echo6(1))),
        (1.2, _ip6(64, *lan1, 58, _echo6(2))),
        (1.201, _ip6(63, *core, 58, _echo6(2))),
        (1.4, _ip6(64, *lan1, 17, udp)),
        (1.401, _ip6(63, *core, 17, udp)),
        (1.5, _ip6(64, *lan1, 17, udp)),  # the same datagram again: no IP ID, a new packet
        (1.6, _ip6(64, *lan1, 6, tcp)),
        (1.601, _ip6(63, *core, 6, tcp)),
    ]
    groups = W.Groups()
    read = _through_pcap(sent)
    assert len(read) == len(sent)
    segs = ["lan1", "core"] * 3 + ["lan1", "lan1", "core"]
    got = [
        W.frame(at, seg, wire, raw, groups) for (at, wire, raw), seg in zip(read, segs, strict=True)
    ]
    g = [f["g"] for f in got]
    assert g[0] == g[1] != g[2] == g[3] != g[4] == g[5] != g[6] != g[7] == g[8]
    assert len(set(g)) == 5, g
    assert [f["hlim"] for f in got[:2]] == [64, 63]
    assert got[0]["smac"] == "02:02:02:02:02:02" and got[1]["smac"] == "06:06:06:06:06:06"
    assert got[0]["src"] == "fd00:1::a" and got[0]["dst"] == "fd00:2::64"
    assert got[0]["icmp"] == "echo-request" and "seq 1" in got[0]["what"]
    assert (got[4]["sport"], got[4]["dport"], got[4]["proto"]) == (5000, 9, "udp")
    assert got[7]["what"].startswith("TCP 40000→80 [S]")
    # Far apart in time, the same echo is another packet, as for IPv4.
    late = W.frame(9.0, "core", 118, _ip6(63, *core, 58, _echo6(1)), groups)
    assert late["g"] not in g


def test_garbage_on_the_wire_is_a_frame_not_an_error():
    out = W.frame(1.0, "lan1", 40, b"\x00" * 14 + b"\x45" + b"\xff" * 25, W.Groups())
    assert out["seg"] == "lan1" and out["len"] == 40 and "g" in out


def test_the_stream_parsers_take_pcap_in_any_pieces():
    records = [(1.5, 98, b"a" * 60), (2.25, 1500, b"b" * 128)]
    pcap = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 128, 1)
    for at, wire, data in records:
        sec, usec = int(at), round((at - int(at)) * 1e6)
        pcap += struct.pack("<IIII", sec, usec, len(data), wire) + data
    docker_stream = b""
    for i in range(0, len(pcap), 37):  # Docker frames of 37 bytes, fed 5 bytes at a time
        part = pcap[i : i + 37]
        docker_stream += bytes([1, 0, 0, 0]) + struct.pack(">I", len(part)) + part
    docker_stream += bytes([2, 0, 0, 0]) + struct.pack(">I", 4) + b"oops"
    demux, reader, got, err = W.Demux(), W.Pcap(), [], b""
    for i in range(0, len(docker_stream), 5):
        for kind, chunk in demux.feed(docker_stream[i : i + 5]):
            if kind == 1:
                got += reader.feed(chunk)
            else:
                err += chunk
    assert got == records and err == b"oops"
    with pytest.raises(ValueError):
        W.Pcap().feed(b"not a pcap header at all")


def test_filters_and_segments_are_checked():
    assert W.check_filter(None) == W.DEFAULT_FILTER == W.check_filter("  ")
    assert W.check_filter("icmp or tcp port 80") == "icmp or tcp port 80"
    assert W.check_filter("ip[2:2] - 20 > 100") == "ip[2:2] - 20 > 100"
    for bad in ("icmp; rm -rf /", "x" * 300, "'quoted'", 5, "a\\b", "icmp\n-i eth0", "-i eth0"):
        with pytest.raises(W.WireError):
            W.check_filter(bad)
    nets = {"lan1": "10.0.1.0/24", "core": "10.0.0.0/29"}
    assert W.check_segments(["core", "lan1", "core"], nets) == ["core", "lan1"]
    for bad in ([], ["lan9"], "core", [1], ["a", "b", "c", "d", "e"]):
        with pytest.raises(W.WireError):
            W.check_segments(bad, nets)


def test_the_rate_bound_is_a_token_bucket():
    watch = W.Watch("p", "lab", None, None)  # type: ignore[arg-type]  # no engine needed here
    allowed = sum(watch.allow() for _ in range(W.RATE * 3))
    assert W.RATE <= allowed <= W.RATE + 5  # the burst, and what refilled while looping


# --- the real engine ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def room(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    with served_room(engine, tmp_path_factory.mktemp("wire-state"), "pw", 2) as served:
        yield served


def taps(engine: Engine, lab: str | None = None) -> list[dict]:
    """The wire's helper containers (of one lab, or of any), running or not."""
    found = engine.api.containers(all=True, filters={"label": [L.HELPER]})
    return [
        c
        for c in found
        if c["Labels"][L.HELPER].startswith("wire:") and lab in (None, c["Labels"][L.LAB])
    ]


def no_taps_left(engine: Engine, lab: str, within: float = 30) -> list[dict]:
    """The lab's taps still there after `within` seconds (they go once the server sees the
    socket close, which is after the client's close returns)."""
    end = time.monotonic() + within
    while (left := taps(engine, lab)) and time.monotonic() < end:
        time.sleep(0.2)
    return left


class Wire:
    """One wire websocket: ask for segments, read frames until a condition holds."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[dict] = []
        self.dropped = 0
        self.messages: list[dict] = []

    async def watch(self, segments: list[str], bpf: str | None = None) -> dict:
        await self.ws.send_str(json.dumps({"watch": segments, "filter": bpf}))
        return await self.until(lambda m: "watching" in m or "error" in m or "ended" in m, 60)

    async def until(self, done, timeout: float) -> dict:  # noqa: ANN001
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out; last messages {self.messages[-5:]}")
            try:
                body = self.take(await self.ws.receive(timeout=left))
            except TimeoutError:
                continue
            if done(body):
                return body

    async def settle(self, quiet: float) -> None:
        """Read until nothing has come for `quiet` seconds: the counts stopped changing."""
        while True:
            try:
                self.take(await self.ws.receive(timeout=quiet))
            except TimeoutError:
                return

    def take(self, msg: aiohttp.WSMessage) -> dict:
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"the wire ended ({msg.type}); saw {self.messages[-5:]}")
        body = json.loads(msg.data)
        self.messages.append(body)
        self.frames += body.get("f", [])
        self.dropped = max(self.dropped, body.get("dropped", 0))
        return body


def hop_pair(frames: list[dict], src: str, dst: str) -> tuple[dict, dict] | None:
    """An echo request from src to dst seen on lan1 and on core, in one group."""
    for f in frames:
        if f.get("seg") != "lan1" or f.get("icmp") != "echo-request" or f.get("src") != src:
            continue
        if f.get("dst") != dst:
            continue
        other = [g for g in frames if g["g"] == f["g"] and g["seg"] == "core"]
        if other:
            return f, other[0]
    return None


async def ping_seen_on_two_segments(base: str, token: str, lab, count: int = 3) -> tuple:  # noqa: ANN001
    alice, srv = lab.address("alice", "lan1"), lab.address("srv", "lan2")
    async with aiohttp.ClientSession() as s, ws_connect(s, base, "/ws/wire", token) as ws:
        wire = Wire(ws)
        got = await wire.watch(["lan1", "core"], "icmp")
        assert got.get("watching") == ["lan1", "core"], got
        ping = asyncio.to_thread(lab.node("alice").run, ["ping", "-4", "-c", str(count), srv])
        res = await ping
        assert res.ok, res
        await wire.until(lambda m: hop_pair(wire.frames, alice, srv) is not None, 20)
        return hop_pair(wire.frames, alice, srv), wire


@docker
def test_a_ping_shows_on_two_segments_with_the_ttl_dropping_by_one(room):
    a = sorted(room.labs)[0]
    lab = room.labs[a]
    (first, second), wire = asyncio.run(
        ping_seen_on_two_segments(room.served.base, room.tokens[a], lab)
    )
    assert first["ttl"] - second["ttl"] == 1, (first, second)
    assert first["smac"] != second["smac"] and first["dmac"] != second["dmac"]
    assert first["len"] == second["len"] == 98  # 56 bytes of data, ICMP, IP and Ethernet
    macs = lab.node("r1").interfaces()
    assert second["smac"] == macs["core"].mac, (second, macs)  # r1 sent it on core
    assert first["dmac"] == macs["lan1"].mac
    assert all(f["proto"] == "icmp" for f in wire.frames)  # the filter held
    assert not no_taps_left(room.served.portal.engine, lab.name)  # they went with the socket


@docker
def test_a_flood_is_cut_to_the_rate_and_the_excess_counted(room):
    a = sorted(room.labs)[0]
    lab = room.labs[a]
    bob = lab.address("bob", "lan1")
    flood = (
        "import socket,time\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        f"n=0\nend=time.time()+4\nwhile time.time()<end:\n s.sendto(b'x'*20,('{bob}',9))\n n+=1\n"
        "print(n)\n"
    )

    async def body() -> tuple[Wire, int, float]:
        async with (
            aiohttp.ClientSession() as s,
            ws_connect(s, room.served.base, "/ws/wire", room.tokens[a]) as ws,
        ):
            wire = Wire(ws)
            got = await wire.watch(["lan1"], "udp port 9")
            assert got.get("watching") == ["lan1"], got
            started = time.monotonic()
            res = await asyncio.to_thread(lab.node("alice").run, ["python3", "-c", flood])
            assert res.ok, res
            sent = int(res.out.split()[-1])
            # the counts, every STATS_EVERY while they change: wait until they settle, the
            # frames sent before the counts all received (one socket keeps the order)
            await wire.until(lambda m: "shown" in m and m["shown"] == len(wire.frames), 20)
            await wire.settle(3 * W.STATS_EVERY)
            return wire, sent, time.monotonic() - started

    wire, sent, seconds = asyncio.run(body())
    shown = len(wire.frames)
    assert sent > 4 * W.RATE, f"the flood sent only {sent} datagrams: no bound was tested"
    assert wire.dropped > 0, (shown, sent)
    assert shown <= W.RATE * (seconds + 1), (shown, seconds)  # the bound, with its burst
    assert shown + wire.dropped <= sent  # nothing made up; the kernel may drop some itself
    assert wire.messages[-1]["shown"] == shown and wire.messages[-1]["dropped"] == wire.dropped


@docker
def test_closing_the_wire_leaves_no_capture_anywhere(room):
    a = sorted(room.labs)[0]
    lab = room.labs[a]
    engine = room.served.portal.engine

    async def body() -> list[dict]:
        async with aiohttp.ClientSession() as s:
            ws = await ws_connect(s, room.served.base, "/ws/wire", room.tokens[a]).__aenter__()
            wire = Wire(ws)
            asked = time.monotonic()
            got = await wire.watch(["lan1", "lan2", "lan3", "core"])
            assert got.get("watching"), got
            during = taps(engine, lab.name)
            assert len(during) == 4 and all(c["State"] == "running" for c in during), during
            # a new request replaces the taps: the old four go
            got = await wire.watch(["core"])
            assert got.get("watching") == ["core"], got
            assert time.monotonic() - asked >= W.WATCH_GAP  # requests are paced: taps cost
            assert len(taps(engine, lab.name)) == 1
            await ws.close()
            return during

    asyncio.run(body())
    assert not no_taps_left(engine, lab.name)
    assert room.served.portal.wires.of(sorted(room.labs)[0]) is None
    # nothing ever ran in a node: no tcpdump in any of them
    for node in lab.nodes:
        procs = engine.processes(node.container, "X")
        assert not [p for p in procs if "tcpdump" in p[3]], (node.name, procs)


@docker
def test_a_participant_watches_only_their_own_lab(room):
    a, b = sorted(room.labs)
    lab_a, lab_b = room.labs[a], room.labs[b]
    base = room.served.base

    async def body() -> None:
        async with aiohttp.ClientSession() as s:
            # no token, a foreign origin, a bad token: refused before the upgrade
            for token, headers in (("nope", {}), (room.tokens[b], {"Origin": "http://evil.test"})):
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    async with ws_connect(s, base, "/ws/wire", token, headers=headers):
                        pass
                assert refused.value.status in (401, 403)
            async with ws_connect(s, base, "/ws/wire", room.tokens[b]) as ws:
                wire = Wire(ws)
                # another lab's network is not a segment of b's: its name is not found
                other = next(iter(taps_names(lab_a)))
                got = await wire.watch([other])
                assert "error" in got and "no segment" in got["error"], got
                # tcpdump options smuggled in the filter (the host's eth0): refused outright
                got = await wire.watch(["lan1"], "icmp or -i eth0")
                assert "error" in got and "no options" in got["hint"], got
                # a filter tcpdump cannot compile: its tap ends and says why; nothing is shown
                got = await wire.watch(["lan1"], "icmp and and")
                assert got.get("watching") == ["lan1"], got
                ended = await wire.until(lambda m: "ended" in m, 30)
                assert "syntax error" in " ".join(ended["why"]), ended
                # b watches b's lan1 while a pings in a's lab: b sees none of a's packets
                got = await wire.watch(["lan1", "core"], "icmp")
                assert got.get("watching") == ["lan1", "core"], got
                srv_a = lab_a.address("srv", "lan2")
                res = await asyncio.to_thread(
                    lab_a.node("alice").run, ["ping", "-4", "-c", "3", "-i", "0.2", srv_a]
                )
                assert res.ok, res
                await asyncio.sleep(1.5)
                await wire.ws.send_str(json.dumps({"stop": True}))
                await wire.until(lambda m: m.get("watching") == [], 20)
                a_addresses = {x for n in lab_a.state.nodes for x in n.addresses.values()}
                leaked = [f for f in wire.frames if {f.get("src"), f.get("dst")} & a_addresses]
                assert not leaked, leaked

    asyncio.run(body())
    assert not no_taps_left(room.served.portal.engine, lab_b.name)


def taps_names(lab) -> list[str]:  # noqa: ANN001
    """Docker's names of the lab's networks (lab-prefixed), which no participant may name."""
    return [f"{lab.name}-{n}" for n in lab.state.networks]


@docker
def test_the_panel_shows_grouped_frames_with_the_ttl_dropping(room, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    a = sorted(room.labs)[1]
    lab = room.labs[a]
    srv = lab.address("srv", "lan2")
    driver = chromium()
    try:
        driver.set_window_size(1400, 1300)
        driver.get(f"{room.served.base}/p/#{room.tokens[a]}")
        wait = WebDriverWait(driver, 30)
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "ready"))
        # as a lesson step would: the segments it names, with its filter
        driver.execute_script("window.hoplabWire.watch(['lan1', 'core'], 'icmp')")
        wait.until(ec.text_to_be_present_in_element((By.ID, "wire-state"), "watching lan1, core"))
        res = lab.node("alice").run(["ping", "-4", "-c", "2", srv])
        assert res.ok, res
        group = wait.until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "#wire-frames tbody.hops"))
        )
        rows = group.find_elements(By.CSS_SELECTOR, "tr")
        ttls = [int(r.find_element(By.CSS_SELECTOR, "td.ttl").text) for r in rows]
        segs = [r.find_element(By.CSS_SELECTOR, "td.seg").text for r in rows]
        assert segs == ["lan1", "core"] and ttls[0] - ttls[1] == 1, (segs, ttls)
        assert "echo-request" in group.text and srv in group.text
        boxes = driver.find_elements(By.CSS_SELECTOR, "#wire-segments input:checked")
        assert sorted(b.get_attribute("value") for b in boxes) == ["core", "lan1"]
        # both echoes, each way, each on both segments: the picture is whole, not mid-arrival
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#wire-frames tbody.hops")) >= 4)
        shots = shots_dir(tmp_path)
        shots.mkdir(exist_ok=True)
        section = driver.find_element(By.ID, "wire-section")
        driver.execute_script("arguments[0].scrollIntoView()", section)  # shots crop to the view
        section.screenshot(str(shots / "portal-wire.png"))
    finally:
        driver.quit()
    assert not no_taps_left(room.served.portal.engine, lab.name)  # they went with the page


@docker
def test_the_instructor_has_no_wire_of_their_own(room):
    async def body() -> int:
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                async with ws_connect(s, room.served.base, "/ws/wire", room.tokens["instructor"]):
                    pass
            return refused.value.status

    assert asyncio.run(body()) == 403


@docker
def test_a_fabric_wired_lab_is_watched_on_the_bridge_in_its_fabric():
    """Issue 24's wiring keeps a lab's bridges in a fabric container: `segment` finds them
    there, and a tap joins that namespace; a ping shows on core with the TTL one lower."""
    from hoplab.engine import fabric
    from hoplab.engine.client import connect
    from tests.conftest import bring_up, unique_lab_name

    wired = Engine(connect(), wiring=fabric.FABRIC)
    name = unique_lab_name("fw")
    try:
        lab = bring_up(wired, name)
        netns, bridge = wired.segment(name, "core")
        assert netns.startswith("container:") and bridge, (netns, bridge)
        tap, sock = wired.tap(name, "core", "icmp")
        try:
            res = lab.node("alice").run(["ping", "-4", "-c", "2", lab.address("srv", "lan2")])
            assert res.ok, res
            sock.settimeout(20)
            demux, pcap, frames, groups = W.Demux(), W.Pcap(), [], W.Groups()
            while not any(f.get("icmp") == "echo-request" for f in frames):
                for kind, chunk in demux.feed(sock.recv(65536)):
                    if kind == 1:
                        frames += [W.frame(t, "core", n, b, groups) for t, n, b in pcap.feed(chunk)]
            request = next(f for f in frames if f.get("icmp") == "echo-request")
            assert request["ttl"] == 63 and request["src"] == lab.address("alice", "lan1")
        finally:
            sock.close()
            wired.untap(name, tap)
        assert not taps(wired, name)
    finally:
        wired.down(name)
