"""hoplab against the parallel docker-py floor (bench/floor.py), at several sizes in one run.

    .venv/bin/python bench/sizes.py                       # default lab, 25, 50, 100, 200 nodes
    .venv/bin/python bench/sizes.py --sizes default,25 --rounds 1

Each round brings every size up and down with hoplab and with the floor back to back (the order
alternates between rounds, so a machine that slows down does not favour one), and the ratio is
taken pair by pair inside the round; the summary is the median of those ratios. docker-compose v1
runs the same lab as plain Compose at every size up to --compose-up-to, and Mininet builds the
default lab where it is installed (neither is left out silently). Also per size:
hoplab's own phase profile (lab.report.timings), the engine API calls per node (counted at
docker-py's HTTP session), and at 100 nodes the idle memory per node. Writes JSON and a PNG plot
of up and down time against node count. The load average is kept beside every size: figures from
a busy machine measure the others' load, not hoplab.

Two more contenders in the same rounds (issue 24): hoplab with fabric wiring (HOPLAB_WIRING=fabric:
its own bridges in a fabric container, one wiring helper per up), and the runtime floor: the very
same node containers with `network_mode: none`, created and started by 16 workers, then removed,
with no wiring and no readiness wait. What hoplab spends above the runtime floor is its wiring
and its own work; what the Docker-network floor spends above it is Docker's networking.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import yaml
from floor import floor_name, round_trip

import hoplab
from bench import compose_round, mininet_available, mininet_round, summary
from hoplab import lifecycle, resources
from hoplab.engine import fabric
from hoplab.engine.engine import Engine
from hoplab.engine.image import ensure_image
from hoplab.model.plan import NodePlan, Plan

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TIMEOUT = 300  # seconds for one docker-compose command before it counts as failed
SIZES = "default,25,50,100,200"


def generated(nodes: int) -> dict:
    """A chain of routers, each with a LAN of hosts: `nodes` nodes in all (25, 50, 100, 200...).

    Ten nodes per LAN from 50 up (so 100 nodes: 10 routers, 19 networks); five below."""
    per_lan = 10 if nodes >= 50 else 5
    routers = max(2, nodes // per_lan)
    services: dict[str, dict] = {}
    networks: dict[str, dict] = {}
    for r in range(routers):
        links = [f"lan{r}"] + [f"core{c}" for c in (r - 1, r) if 0 <= c < routers - 1]
        services[f"r{r}"] = {"x-hoplab": {"role": "router"}, "networks": links}
        networks[f"lan{r}"] = {"ipam": {"config": [{"subnet": f"10.152.{r}.0/24"}]}}
        if r < routers - 1:
            networks[f"core{r}"] = {"ipam": {"config": [{"subnet": f"10.153.{r * 8}.0/29"}]}}
        for h in range(per_lan - 1):
            services[f"h{r}x{h}"] = {"networks": [f"lan{r}"]}
    return {"x-hoplab": {"name": f"gen{nodes}"}, "services": services, "networks": networks}


def compose_doc(doc: dict) -> dict:
    """A generated topology as plain Compose: the node image with NET_ADMIN on the same
    networks and subnets, routers forwarding; no routes (compose has no way to plan them)."""
    services = {}
    for name, svc in doc["services"].items():
        plain = {"image": "hoplab/node", "cap_add": ["NET_ADMIN"], "networks": svc["networks"]}
        if svc.get("x-hoplab", {}).get("role") == "router":
            plain["sysctls"] = {"net.ipv4.ip_forward": 1}
        services[name] = plain
    return {"services": services, "networks": doc["networks"]}


def compose_path(size: str, folder: Path) -> Path:
    """The compose file for a size: the repository's compose.yaml for the default lab."""
    if size == "default":
        return ROOT / "compose.yaml"
    path = folder / f"compose-{size}.yaml"
    path.write_text(yaml.safe_dump(compose_doc(generated(int(size)))))
    return path


class CallCounter:
    """Counts the engine API calls of a docker-py client (every call goes through its HTTP
    session's request), by method and the path's first word."""

    def __init__(self, api: object) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        inner = api.request  # type: ignore[attr-defined]

        def request(method: str, url: str, *args: object, **kwargs: object) -> object:
            path = url.split("/v1.", 1)[-1].split("/", 1)[-1].split("?")[0]
            parts = path.split("/")  # containers/create, containers/<id>/start: ids dropped
            keep = len(parts) > 2 or parts[-1] in ("create", "json", "prune")
            what = f"{parts[0]}/{parts[-1]}" if len(parts) > 1 and keep else parts[0]
            with self._lock:
                self.calls[f"{method} {what}"] += 1
            return inner(method, url, *args, **kwargs)

        api.request = request  # type: ignore[attr-defined]

    @contextlib.contextmanager
    def counting(self) -> object:
        with self._lock:
            self.calls.clear()
        yield self.calls


def hoplab_round(engine: Engine, topo: object, name: str, calls: CallCounter, memory: bool):
    with calls.counting() as up_calls:
        t0 = time.perf_counter()
        lab = hoplab.up(topo, name, engine=engine)
        t1 = time.perf_counter()
        up_counted = dict(up_calls)
    try:
        mem = statistics.median(engine.memory(name).values()) / (1 << 20) if memory else None
    finally:
        with calls.counting() as down_calls:
            t2 = time.perf_counter()
            lab.down()
            t3 = time.perf_counter()
            down_counted = dict(down_calls)
    assert lab.report.action == "created", lab.report.action
    return t1 - t0, t3 - t2, lab.report.timings, up_counted, down_counted, mem


RUNTIME_WORKERS = 16
RUNTIME_LABEL = "hoplab-bench.runtime-floor"  # not a hoplab.* key: no hoplab lab


def runtime_round(
    client: docker.DockerClient,
    plan: Plan,
    image: str,
    host_config: Callable[..., dict[str, Any]],
) -> tuple[float, float]:
    """The runtime floor: the plan's node containers, network_mode none, created and started by
    16 workers, then removed; (up, down) seconds. Whatever fails, nothing is left."""
    api = client.api
    label = {RUNTIME_LABEL: str(os.getpid())}
    ids: list[str] = []
    lock = threading.Lock()

    def one(node: NodePlan) -> None:
        made = api.create_container(
            image,
            name=f"rtf{os.getpid()}-{node.name}",
            hostname=node.name,
            labels=label,
            host_config=host_config(node, wired=True),  # the very same node, no network
            detach=True,
        )
        with lock:
            ids.append(made["Id"])
        api.start(made["Id"])

    def remove(cid: str) -> None:
        api.remove_container(cid, force=True, v=True)

    try:
        with ThreadPoolExecutor(RUNTIME_WORKERS) as workers:
            t0 = time.perf_counter()
            list(workers.map(one, plan.nodes))
            t1 = time.perf_counter()
            list(workers.map(remove, list(ids)))
            t2 = time.perf_counter()
        ids.clear()
        return t1 - t0, t2 - t1
    finally:
        for cid in ids:
            with contextlib.suppress(Exception):
                api.remove_container(cid, force=True, v=True)


def measure(
    engine: Engine,
    image: str,
    size: str,
    rounds: int,
    compose_file: Path | None,
    mininet: bool,
    wired: Engine | None = None,
) -> dict:
    """Rounds of one size. compose_file: the same lab as plain Compose (None: compose is left
    out at this size); mininet: also build it with Mininet (the default lab only)."""
    doc = resources.default_lab() if size == "default" else generated(int(size))
    topo = hoplab.topology(doc)
    failed: dict[str, str] = {}  # a contender that failed is left out of the later rounds
    calls = CallCounter(engine.client.api)
    rows: dict[str, list[float]] = {}
    profiles, up_calls, down_calls, mems = [], Counter(), Counter(), []
    fab_profiles: list[dict] = []
    load = [round(os.getloadavg()[0], 2)]
    for i in range(rounds):
        name = f"bsz{os.getpid()}x{size}"
        fname = floor_name(f"x{size}")
        plan, _ = lifecycle.make_plan(engine, topo, fname)  # a dual-stack lab's IPv6 half too

        ours = functools.partial(hoplab_round, engine, topo, name, calls, size == "100")
        same = functools.partial(engine._bringup.host_config, plan)  # the very same containers
        floor = functools.partial(round_trip, engine.client, plan, image, host_config=same)
        runs = [ours, floor]
        if wired is not None:
            fab_calls = CallCounter(wired.client.api)
            fab = functools.partial(hoplab_round, wired, topo, f"{name}f", fab_calls, False)
            runtime = functools.partial(runtime_round, engine.client, plan, image, same)
            runs += [fab, runtime]
        order = list(range(len(runs))) if i % 2 == 0 else list(reversed(range(len(runs))))
        got: dict[int, tuple] = {}
        try:
            for k in order:
                got[k] = runs[k]()
        finally:
            with contextlib.suppress(Exception):
                hoplab.down(name, engine=engine)
            if wired is not None:
                with contextlib.suppress(Exception):
                    hoplab.down(f"{name}f", engine=wired)
        h, f = got[0], got[1]
        others = {}
        if wired is not None:
            w, rt = got[2], got[3]
            others |= {
                "fabric up": w[0],
                "fabric down": w[1],
                "runtime floor up": rt[0],
                "runtime floor down": rt[1],
                "fabric up / runtime floor up": w[0] / rt[0],
                "fabric down / runtime floor down": w[1] / rt[1],
                "hoplab up / runtime floor up": h[0] / rt[0],
                "hoplab down / runtime floor down": h[1] / rt[1],
                "floor up / runtime floor up": f[0] / rt[0],
                "floor down / runtime floor down": f[1] / rt[1],
            }
            fab_profiles.append(w[2])

        if compose_file is not None and "compose" not in failed:
            try:
                c_up, c_down = compose_round(f"bszc{os.getpid()}", compose_file, COMPOSE_TIMEOUT)
                others |= {"compose up": c_up, "compose down": c_down}
                others |= {"up / compose up": h[0] / c_up, "down / compose down": h[1] / c_down}
            except (subprocess.SubprocessError, OSError) as err:
                failed["compose"] = f"failed at {size} in round {i + 1}: {err}"
                print(f"  docker-compose {failed['compose']}", file=sys.stderr)
        if mininet:
            m_up, m_down = mininet_round()
            others |= {"mininet up": m_up, "mininet down": m_down}
        h_up, h_down, timings, ucalls, dcalls, mem = h
        profiles.append(timings)
        up_calls.update(ucalls)
        down_calls.update(dcalls)
        if mem is not None:
            mems.append(mem)
        for key, value in {
            "hoplab up": h_up,
            "hoplab down": h_down,
            "floor up": f[0],
            "floor down": f[1],
            "floor up: endpoint-lock wait (worker-seconds)": f[2],
            "floor down: endpoint-lock wait (worker-seconds)": f[3],
            "up / floor up": h_up / f[0],
            "down / floor down": h_down / f[1],
        }.items() | others.items():
            rows.setdefault(key, []).append(value)
        load.append(round(os.getloadavg()[0], 2))
    n = len(topo.nodes)
    result: dict = {"nodes": n, "networks": len(topo.networks)}
    result |= {k: summary(v) for k, v in rows.items()}
    result["hoplab up profile (median over rounds)"] = {
        k: round(statistics.median(p[k] for p in profiles), 3) for k in profiles[0]
    }
    if fab_profiles:
        result["fabric up profile (median over rounds)"] = {
            k: round(statistics.median(p[k] for p in fab_profiles), 3) for k in fab_profiles[0]
        }
    result["engine calls per node, up"] = {
        k: round(v / rounds / n, 2) for k, v in sorted(up_calls.items())
    }
    result["engine calls per node, down"] = {
        k: round(v / rounds / n, 2) for k, v in sorted(down_calls.items())
    }
    if mems:
        result["idle MiB per node"] = summary(mems)
    result |= {f"{who} (left out)": why for who, why in failed.items()}
    result["loadavg (1 min) before and after each round"] = load
    return result


def plot(results: dict, out: Path) -> None:
    """Up and down seconds against node count, hoplab and the floor (median, min-max bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(results, key=lambda s: results[s]["nodes"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    contenders = (
        ("hoplab", "o-", "hoplab"),
        ("floor", "s--", "parallel docker-py floor"),
        ("fabric", "D-", "hoplab, fabric wiring"),
        ("runtime floor", "v--", "runtime floor (network_mode none)"),
        ("compose", "^:", "docker-compose v1"),
        ("mininet", "x-.", "Mininet"),
    )
    for ax, phase in zip(axes, ("up", "down"), strict=True):
        for who, style, label in contenders:
            key = f"{who} {phase}"
            have = [s for s in sizes if key in results[s]]  # compose and Mininet: where run
            if not have:
                continue
            med = [results[s][key]["median"] for s in have]
            lo = [m - results[s][key]["min"] for s, m in zip(have, med, strict=True)]
            hi = [results[s][key]["max"] - m for s, m in zip(have, med, strict=True)]
            xs = [results[s]["nodes"] for s in have]
            ax.errorbar(xs, med, yerr=[lo, hi], fmt=style, capsize=3, label=label)
        ax.set_title(f"{phase} (s)")
        ax.set_xlabel("nodes")
        ax.grid(alpha=0.3)
        ax.legend()
    load = max(max(r["loadavg (1 min) before and after each round"]) for r in results.values())
    fig.suptitle(f"hoplab vs the parallel floor (load average up to {load:g} on this machine)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=SIZES, help=f"comma-separated (default {SIZES})")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--compose-up-to",
        type=int,
        default=200,
        help="run docker-compose v1 at sizes up to this many nodes (0: never; default 200)",
    )
    ap.add_argument(
        "--no-fabric",
        action="store_true",
        help="leave out hoplab's fabric wiring and the runtime floor",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results" / "sizes.json")
    args = ap.parse_args()
    engine = hoplab.from_env()
    image = ensure_image(engine.client, resources.hosts_dir(), lambda *_: None)
    results = {}
    compose = shutil.which("docker-compose") is not None
    mininet = mininet_available()
    if not compose or not mininet:
        left = [w for w, have in (("docker-compose", compose), ("Mininet", mininet)) if not have]
        print(f"not installed, so left out: {' and '.join(left)}", file=sys.stderr)
    folder = Path(tempfile.mkdtemp(prefix="hoplab-sizes-"))
    try:
        for size in (s.strip() for s in args.sizes.split(",")):
            print(f"size {size}: {args.rounds} round(s)", file=sys.stderr)
            nodes = len(hoplab.topology(resources.default_lab()).nodes) if size == "default" else 0
            with_compose = compose and (nodes or int(size)) <= args.compose_up_to
            results[size] = measure(
                engine,
                image,
                size,
                args.rounds,
                compose_path(size, folder) if with_compose else None,
                mininet and size == "default",  # mininet_lab.py builds the default lab
                None if args.no_fabric else Engine(engine.client, wiring=fabric.FABRIC),
            )
            r = results[size]
            print(
                f"  {r['nodes']} nodes: up {r['hoplab up']['median']:.2f} s vs floor "
                f"{r['floor up']['median']:.2f} s (ratio {r['up / floor up']['median']:.2f}); "
                f"down {r['hoplab down']['median']:.2f} s vs {r['floor down']['median']:.2f} s "
                f"(ratio {r['down / floor down']['median']:.2f}); "
                + (
                    f"fabric up {r['fabric up']['median']:.2f} s / down "
                    f"{r['fabric down']['median']:.2f} s vs runtime floor "
                    f"{r['runtime floor up']['median']:.2f} / "
                    f"{r['runtime floor down']['median']:.2f} s (ratios "
                    f"{r['fabric up / runtime floor up']['median']:.2f} / "
                    f"{r['fabric down / runtime floor down']['median']:.2f}); "
                    if "fabric up" in r
                    else ""
                )
                + "load "
                f"{r['loadavg (1 min) before and after each round']}",
                file=sys.stderr,
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2))  # a later size's crash keeps it
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    plot(results, args.out.with_suffix(".png"))
    print(f"written to {args.out} and {args.out.with_suffix('.png')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
