"""hoplab's benchmark: bring-up and teardown beside what a user would pick instead, in one run.

Each round runs every contender back to back on the same machine, so ratios are taken pair by pair
inside a round and then summarised (median and spread over rounds). Contenders:

- hoplab: `up` (routes and names in place, every node ready) and `down`, in-process.
- docker-compose v1: `up -d` and `down` on the same compose.yaml.
- floor: a plain docker-py loop that creates the same networks and containers and starts them, with
  no routes, no names and no readiness wait: the engine's own cost. It lives here, not in lab/,
  because it is a yardstick, not part of hoplab.
- mininet: the namespace-only lower bound, when Mininet is installed (skipped, with a message).

Also: a generated 100-node topology (up, down, idle memory per node) and the warm `make lab`.
First of all, before anything else runs: how long the commands people type most take, as whole
processes (`hoplab --help`, `hoplab ls`, `hoplab status`; median of --cmd-runs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import docker
import yaml
from rich.console import Console
from rich.table import Table

import hoplab
from hoplab import resources
from hoplab.engine.engine import Engine
from hoplab.engine.image import ensure_image
from hoplab.model.plan import Plan, build_plan

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


def quiet(*_a: object) -> None:
    pass


# --- contenders -------------------------------------------------------------------------------


def hoplab_round(engine: Engine, path: Path | dict, name: str) -> tuple[float, float, dict]:
    """Through the public API, as a user scripts it: up (attached, ready to use), then down."""
    topo = hoplab.topology(path)
    t0 = time.perf_counter()
    lab = hoplab.up(topo, name, engine=engine)
    t1 = time.perf_counter()
    lab.down()
    t2 = time.perf_counter()
    assert lab.report.action == "created", lab.report.action
    return t1 - t0, t2 - t1, lab.report.timings


def compose_round(
    project: str, path: Path = COMPOSE, timeout: float | None = None
) -> tuple[float, float]:
    """`up -d` and `down` of one compose file; a failed or timed-out up is still taken down.

    timeout: seconds each command may take (docker-compose v1 has been seen to hang in `up`
    at 100 nodes on this engine); subprocess.TimeoutExpired is raised past it."""
    exe = shutil.which("docker-compose")
    if exe is None:
        raise RuntimeError("docker-compose is not installed")
    base = [exe, "-p", project, "-f", str(path)]
    try:
        t0 = time.perf_counter()
        subprocess.run([*base, "up", "-d"], check=True, capture_output=True, timeout=timeout)
        t1 = time.perf_counter()
    except BaseException:
        subprocess.run([*base, "down"], capture_output=True)
        raise
    subprocess.run([*base, "down"], check=True, capture_output=True)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def floor_round(client: docker.DockerClient, image: str) -> tuple[float, float]:
    """The same containers and networks, one call after another, as a plain script would."""
    plan = build_plan(hoplab.topology(COMPOSE), "floor")
    api = client.api
    nets: dict[str, str] = {}
    ids: list[str] = []
    try:
        return _floor(api, plan, image, nets, ids)
    finally:  # a crash must not leave the yardstick's objects behind
        for cid in ids:
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(cid, force=True)
        for nid in nets.values():
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_network(nid)


def _floor(api: docker.APIClient, plan: Plan, image: str, nets: dict, ids: list) -> tuple:
    t0 = time.perf_counter()
    for net in plan.networks:
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(net.subnet))])
        nets[net.name] = api.create_network(net.docker_name, driver="bridge", ipam=ipam)["Id"]
    for node in plan.nodes:
        first, *rest = node.interfaces
        hc = api.create_host_config(network_mode=nets[first.network], cap_add=["NET_ADMIN"])
        cid = api.create_container(image, name=node.container, host_config=hc)["Id"]
        for iface in rest:
            api.connect_container_to_network(cid, nets[iface.network])
        api.start(cid)
        ids.append(cid)
    t1 = time.perf_counter()
    for cid in ids:
        api.remove_container(cid, force=True)
    for nid in nets.values():
        api.remove_network(nid)
    t2 = time.perf_counter()
    ids.clear()
    nets.clear()
    return t1 - t0, t2 - t1


SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's mininet package installs for this interpreter


def mininet_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import mininet"], capture_output=True)
    tools = ("mn", "brctl", "ping")  # apt-get install mininet bridge-utils iputils-ping
    return probe.returncode == 0 and all(shutil.which(t) for t in tools)


def mininet_round() -> tuple[float, float]:
    """The same routed topology in plain namespaces; `mn -c` cleans up after a failed build."""
    script = Path(__file__).with_name("mininet_lab.py")
    res = subprocess.run([SYSTEM_PYTHON, str(script)], capture_output=True, text=True)
    if res.returncode != 0:
        subprocess.run(["mn", "-c"], capture_output=True)
        raise RuntimeError(f"mininet build failed: {res.stdout[-500:]} {res.stderr[-500:]}")
    timings = json.loads(res.stdout.strip().splitlines()[-1])
    return timings["up"], timings["down"]


# --- own images (issue 11) -------------------------------------------------------------------

OWN_EXAMPLE = ROOT / "examples" / "ownimage" / "compose.yaml"
OWN_NODES = ("alice", "srv")


def own_image_topology(client: docker.DockerClient, node_image: str) -> dict:
    """The default lab with alice and srv running the example's FROM scratch image (a UDP
    listener each, no healthcheck): the same lab, two nodes as pods."""
    from hoplab.engine.build import ensure_app_images

    ids = ensure_app_images(client, hoplab.topology(OWN_EXAMPLE), node_image, console.print)
    doc = yaml.safe_load(COMPOSE.read_text())
    for name in OWN_NODES:
        doc["services"][name] |= {"image": ids["srv"], "command": ["listen", "9000"]}
    return doc


def own_image_round(engine: Engine, own: dict) -> dict[str, float]:
    """All-hoplab/node lab, then the same lab with two own-image nodes, back to back.

    Per-node cost: a hoplab/node node costs up/7; an own-image node costs what the pod lab
    adds over five hoplab/node nodes, split over the two."""
    base_up, _, _ = hoplab_round(engine, COMPOSE, "benchbase")
    own_up, _, _ = hoplab_round(engine, own, "benchown")
    nodes = len(hoplab.topology(COMPOSE).nodes)
    per_node = base_up / nodes
    own_per_node = (own_up - per_node * (nodes - len(OWN_NODES))) / len(OWN_NODES)
    return {
        "all hoplab/node up": base_up,
        "two own-image nodes up": own_up,
        "own-image node cost / hoplab/node node cost": own_per_node / per_node,
    }


# --- the 100-node topology ------------------------------------------------------------------


def generated_topology(routers: int = 10, hosts_per_lan: int = 9) -> dict:
    """A chain of routers, each with a LAN of hosts: routers * (1 + hosts_per_lan) nodes.

    Built in code as a Compose-shaped dict; hoplab.up validates it with the file loader's rules.
    """
    services: dict[str, dict] = {}
    networks: dict[str, dict] = {}
    for r in range(routers):
        links = [f"lan{r}"] + [f"core{c}" for c in (r - 1, r) if 0 <= c < routers - 1]
        services[f"r{r}"] = {"x-hoplab": {"role": "router"}, "networks": links}
        networks[f"lan{r}"] = {"ipam": {"config": [{"subnet": f"10.150.{r}.0/24"}]}}
        if r < routers - 1:
            networks[f"core{r}"] = {"ipam": {"config": [{"subnet": f"10.151.{r}.0/29"}]}}
        for h in range(hosts_per_lan):
            services[f"h{r}x{h}"] = {"networks": [f"lan{r}"]}
    return {"x-hoplab": {"name": "bench100"}, "services": services, "networks": networks}


def memory_per_node(engine: Engine, lab: str) -> float:
    """Idle memory of a node's cgroup (usage minus inactive page cache), MiB, median over nodes."""
    return statistics.median(engine.memory(lab).values()) / (1 << 20)


def big_round(engine: Engine) -> tuple[float, float, float, int]:
    topo = hoplab.topology(generated_topology())
    try:
        t0 = time.perf_counter()
        lab = hoplab.up(topo, "bench100", engine=engine)
        t1 = time.perf_counter()
        mem = memory_per_node(engine, "bench100")
        t2 = time.perf_counter()
        lab.down()
        t3 = time.perf_counter()
    finally:
        hoplab.down("bench100", engine=engine)
    return t1 - t0, t3 - t2, mem, len(topo.nodes)


# --- command start-up -------------------------------------------------------------------------

COMMANDS = (["--help"], ["ls"], ["status"])


def command_times(runs: int, engine: Engine) -> dict[str, dict | float]:
    """Wall clock of whole `hoplab` processes (interpreter start, imports, engine calls, output).

    `status` is measured twice: for a lab that is not up (the common "is it up?" question) and for
    a running default lab, whose table and in-node process scan cost engine calls too. The CPU
    time (user + system) of each process is kept beside it: on a busy machine the wall clock
    mostly measures the others' load, the CPU time what the command itself costs.
    """
    exe = Path(sys.executable).parent / "hoplab"

    def once(argv: list[str]) -> tuple[float, float]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([exe, *argv], cwd=ROOT, capture_output=True, check=False)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    def measure(label: str, argv: list[str]) -> None:
        runs_ = [once(argv) for _ in range(runs)]
        figures[label] = summary([w for w, _ in runs_])
        figures[f"{label} (cpu s)"] = summary([c for _, c in runs_])

    figures: dict[str, dict | float] = {}
    for argv in COMMANDS:
        measure(f"hoplab {' '.join(argv)}", argv)
    lab = hoplab.up(COMPOSE, "benchcmd", engine=engine)
    try:
        measure("hoplab status (lab up)", ["status", "--name", "benchcmd"])
    finally:
        lab.down()
    figures["loadavg (1 min) at the end"] = round(os.getloadavg()[0], 2)
    return figures


# --- reporting --------------------------------------------------------------------------------


def summary(values: list[float]) -> dict:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "runs": [round(v, 3) for v in values],
    }


def timed(label: str, fn: Callable[[], object]) -> object:
    console.print(f"[dim]{label}...[/]")
    return fn()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results" / "bench.json")
    ap.add_argument("--skip-big", action="store_true", help="skip the 100-node topology")
    ap.add_argument("--skip-make", action="store_true", help="skip the warm `make lab`")
    ap.add_argument("--cmd-runs", type=int, default=11, help="runs per command-time figure")
    ap.add_argument(
        "--commands-only", action="store_true", help="only the command start-up figures"
    )
    ap.add_argument("--own-only", action="store_true", help="only the own-image figures")
    args = ap.parse_args()

    engine = hoplab.from_env()
    client = engine.client
    image = ensure_image(client, resources.hosts_dir(), quiet)
    # First, before anything else loads the machine: the commands people type most.
    commands = timed("command times", lambda: command_times(args.cmd_runs, engine))
    if args.commands_only:
        return report({"commands": commands}, args.runs, args.out)
    own_doc = own_image_topology(client, image)
    own_rows: dict[str, list[float]] = {}
    for i in range(args.runs):
        console.print(f"own images: round {i + 1}/{args.runs}")
        for key, value in own_image_round(engine, own_doc).items():
            own_rows.setdefault(key, []).append(value)
    own_results = {k: summary(v) for k, v in own_rows.items()}
    if args.own_only:
        return report({"commands": commands} | own_results, args.runs, args.out)
    if engine.labs():
        console.print("[yellow]note: other hoplab labs are running; figures will be noisier[/]")

    rows: dict[str, list[float]] = {}
    profile: list[dict] = []
    mininet = mininet_available()
    if not mininet:
        console.print(
            "[yellow]mininet is not installed (apt-get install mininet bridge-utils "
            "iputils-ping): its lower bound is skipped[/]"
        )
    for i in range(args.runs):
        console.print(f"round {i + 1}/{args.runs}")
        h_up, h_down, timings = hoplab_round(engine, COMPOSE, "benchlab")
        c_up, c_down = compose_round("benchcompose")
        f_up, f_down = floor_round(client, image)
        profile.append(timings)
        if mininet:
            m_up, m_down = mininet_round()
            for key, value in {
                "mininet up": m_up,
                "mininet down": m_down,
                "up / mininet up": h_up / m_up,
                "down / mininet down": h_down / m_down,
            }.items():
                rows.setdefault(key, []).append(value)
        for key, value in {
            "hoplab up": h_up,
            "hoplab down": h_down,
            "compose up": c_up,
            "compose down": c_down,
            "floor up": f_up,
            "floor down": f_down,
            "up / compose up": h_up / c_up,
            "down / compose down": h_down / c_down,
            "up / floor up": h_up / f_up,
            "down / floor down": h_down / f_down,
        }.items():
            rows.setdefault(key, []).append(value)

    results: dict[str, object] = {"commands": commands} | own_results
    results |= {k: summary(v) for k, v in rows.items()}
    results["hoplab up profile (median over rounds)"] = {
        k: round(statistics.median(p[k] for p in profile), 3) for k in profile[0]
    }
    if not mininet:
        results["mininet"] = "skipped: not installed"

    if not args.skip_big:
        big = [timed("100-node topology", lambda: big_round(engine)) for _ in range(3)]
        results["100 nodes up"] = summary([b[0] for b in big])
        results["100 nodes down"] = summary([b[1] for b in big])
        results["idle MiB per node"] = summary([b[2] for b in big])
        results["100 nodes count"] = big[0][3]

    if not args.skip_make:
        engine.down("hoplab")
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run(["make", "-s", "lab"], cwd=ROOT, check=False, capture_output=True)
            runs.append(time.perf_counter() - t0)
        results["warm make lab"] = summary(runs)

    return report(results, args.runs, args.out)


def report(results: dict[str, object], runs: int, out: Path) -> int:
    """The table on the terminal, and the same figures as JSON."""
    table = Table(title=f"hoplab bench ({runs} rounds; seconds unless a ratio)")
    for col in ("measure", "median", "min", "max"):
        table.add_column(col)
    for key, value in results.items():
        if isinstance(value, dict) and "median" in value:
            table.add_row(
                key, f"{value['median']:.3f}", f"{value['min']:.3f}", f"{value['max']:.3f}"
            )
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, dict):  # command times: median, min, max of each
                    table.add_row(
                        f"  {k}", f"{v['median']:.3f}", f"{v['min']:.3f}", f"{v['max']:.3f}"
                    )
                else:
                    table.add_row(f"  {k}", f"{v:.3f}", "", "")
        else:
            table.add_row(key, str(value), "", "")
    console.print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    console.print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
