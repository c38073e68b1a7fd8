"""Drawing speed: the generated 100-node topology (10 routers, 19 networks) as SVG and PNG, and a
ladder joined from three captures of 1,000 frames each. Pure drawing, no Docker: 5 runs, median.

The budget is the issue's: a 100-node topology draws in under 5 s.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dpkt
from rich.console import Console
from rich.table import Table

from hoplab.draw import graph, ladder
from hoplab.model.load import parse
from hoplab.model.plan import build_plan
from hoplab.runtime.pcap import mac_str

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 5.0
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


def generated_topology(routers: int = 10, hosts_per_lan: int = 9) -> str:
    """The shape bench.py brings up: a chain of routers, each with a LAN of hosts (100 nodes)."""
    lines = ["x-hoplab: {name: bench100}", "services:"]
    nets = ["networks:"]
    for r in range(routers):
        links = [f"lan{r}"] + [f"core{c}" for c in (r - 1, r) if 0 <= c < routers - 1]
        lines.append(f"  r{r}: {{x-hoplab: {{role: router}}, networks: [{', '.join(links)}]}}")
        nets.append(f"  lan{r}: {{ipam: {{config: [{{subnet: 10.150.{r}.0/24}}]}}}}")
        if r < routers - 1:
            nets.append(f"  core{r}: {{ipam: {{config: [{{subnet: 10.151.{r}.0/29}}]}}}}")
        for h in range(hosts_per_lan):
            lines.append(f"  h{r}x{h}: {{networks: [lan{r}]}}")
    return "\n".join(lines + nets) + "\n"


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def long_path_captures(
    plan, packets: int = 1000
) -> tuple[list[tuple[str, bytes]], ladder.Directory]:
    """h0x0 -> r0 -> r1 -> h1x0: one UDP datagram per packet on each of the three segments."""
    hops = [("h0x0", "r0", "lan0"), ("r0", "r1", "core0"), ("r1", "h1x0", "lan1")]
    macs = {}
    for i, node in enumerate(plan.nodes):
        for j, iface in enumerate(node.interfaces):
            macs[(node.name, iface.network)] = bytes([2, 0, 0, i // 256, i % 256, j])
    src, dst = plan.address("h0x0", "lan0"), plan.address("h1x0", "lan1")
    caps = []
    for k, (a, b, net) in enumerate(hops):
        buf = io.BytesIO()
        w = dpkt.pcap.Writer(buf)
        for n in range(packets):
            udp = dpkt.udp.UDP(sport=5000, dport=6000, data=b"x" * 64)
            ip = dpkt.ip.IP(
                src=socket.inet_aton(str(src)),
                dst=socket.inet_aton(str(dst)),
                ttl=64 - k,
                id=n,
                p=dpkt.ip.IP_PROTO_UDP,
                data=udp,
            )
            eth = dpkt.ethernet.Ethernet(
                src=macs[(a, net)], dst=macs[(b, net)], data=ip, type=dpkt.ethernet.ETH_TYPE_IP
            )
            w.writepkt(bytes(eth), ts=n * 0.01 + k * 0.0001)
        caps.append((f"{net}.pcap", buf.getvalue()))
    where = ladder.directory_from_plan(plan, {mac_str(m): k for k, m in macs.items()})
    return caps, where


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results" / "draw.json")
    args = ap.parse_args()
    plan = build_plan(parse(generated_topology(), "bench100.yaml"))
    pic = graph.from_plan(plan)
    caps, where = long_path_captures(plan)
    built = ladder.build(caps, where)
    measures = {
        "100-node topology: SVG": lambda: graph.svg(plan),
        "100-node topology: PNG": lambda: graph.render(pic, "png"),
        "100-node topology: Mermaid + DOT": lambda: (graph.to_mermaid(pic), graph.to_dot(pic)),
        "ladder: join 3 x 1,000 frames": lambda: ladder.build(caps, where),
        "ladder: draw SVG (first 60 rows)": lambda: ladder.svg(built, "bench"),
    }
    results = {}
    table = Table(title=f"drawing, {args.runs} runs (median, min-max)", title_justify="left")
    for col in ("measure", "median", "range", "budget"):
        table.add_column(col)
    for label, fn in measures.items():
        runs = timed(fn, args.runs)
        med = statistics.median(runs)
        results[label] = {"median": round(med, 4), "runs": [round(r, 4) for r in runs]}
        budget = (
            f"< {BUDGET:.0f} s: {'yes' if med < BUDGET else 'NO'}" if "topology" in label else ""
        )
        table.add_row(label, f"{med:.3f} s", f"{min(runs):.3f}-{max(runs):.3f} s", budget)
    console.print(table)
    console.print(
        f"nodes {len(plan.nodes)}, networks {len(plan.networks)}, "
        f"ladder packets {len({h.packet for h in built.hops})}, lanes {len(built.lanes)}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    slow = [k for k, v in results.items() if "topology" in k and v["median"] >= BUDGET]
    return 1 if slow else 0


if __name__ == "__main__":
    raise SystemExit(main())
