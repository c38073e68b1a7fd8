"""report.html from real exercises in a real lab, rendered by headless Chromium (Debian's package).

The run captures on every segment of alice -> r1 -> r2 -> srv (mac-per-hop) and on both sides
of a router (half-close), so the ladders must show real MACs, TTLs and the pcap links. Chromium
runs with every network feature off and name resolution disabled: the page must render from the
file alone.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from hoplab.cli.commands import main
from hoplab.draw.html import interfaces

CHOSEN = ["mac-per-hop", "half-close"]
# Offline and quiet: no sync, no updates, no DNS, any request goes to a closed loopback port.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # root in CI; the page is our own file and has no script
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--hide-scrollbars",
]


def screenshot(page: Path, png: Path, profile: Path, size: str = "1280,2600") -> None:
    browser = shutil.which("chromium")
    assert browser, "Debian's chromium is missing: `make sysdeps` (apt-get install chromium)"
    res = subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={size}",
            f"--screenshot={png}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0 and png.exists(), res.stderr[-2000:]


@pytest.mark.docker
def test_report_html_from_a_real_run_renders_in_chromium(lab, tmp_path, capsys):
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    # The command a learner runs: `hoplab run` ends with the report's path.
    results = artifacts / "results.json"
    argv = ["run", "--name", lab.name, *CHOSEN, "--artifacts", str(artifacts), "--json"]
    code = main([*argv, str(results)])
    # The exercises' own tests prove they pass; here a FAIL must still give a full report.
    assert code in (0, 1)
    page = artifacts / "report.html"
    assert f"report: {page}" in " ".join(capsys.readouterr().err.split())
    text = page.read_text()
    exercises = json.loads(results.read_text())["exercises"]

    # Every exercise with its checks, and links to its pcaps that resolve from the page.
    for ex in exercises:
        assert f'id="{ex["name"]}"' in text
        for c in ex["checks"]:
            assert html.escape(c["name"]) in text and html.escape(c["expected"]) in text
    links = re.findall(r'href="([^"#][^"]*)"', text)
    assert links and all(link.endswith(".pcap") for link in links)
    assert all((artifacts / link).is_file() for link in links)
    assert {link.split("/")[0] for link in links} == set(CHOSEN)

    # The ladders carry the real MACs, TTLs and addresses of the path alice -> r1 -> r2 -> srv.
    seen = interfaces(lab)
    for node, net in [("alice", "lan1"), ("r1", "core"), ("r2", "lan2"), ("srv", "lan2")]:
        assert seen[node][net].mac in text, (node, net)
    assert "TTL 64" in text and "TTL 63" in text and "TTL 62" in text
    assert lab.address("alice") in text and lab.address("srv") in text
    assert "[SA]" in text or "[AS]" in text  # half-close's handshake, as flags
    assert text.count("<svg") >= 3  # topology + two ladders
    # The topology of the running lab: interface names and lan3's MTU read from the nodes.
    assert f"{seen['srv']['lan3'].name} {lab.address('srv', 'lan3')}" in text
    assert "MTU 1280" in text

    # Self-contained: no script, no external reference of any kind.
    assert "<script" not in text and "@import" not in text and "@font-face" not in text
    assert not re.search(r"""(src|href)=["'](https?:|//)""", text)
    assert not re.search(r"url\((?!#)", text)

    png = tmp_path / "report.png"
    screenshot(page, png, tmp_path / "chromium-profile")
    with Image.open(png) as img:
        assert img.size == (1280, 2600)
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
        # A real page: many colours (text, badges, pictures), not a blank or error screen.
        assert colours is not None and len(colours) > 200


@pytest.mark.docker
def test_graph_of_a_running_lab_names_interfaces_addresses_and_mtu(lab, tmp_path):
    out = tmp_path / "lab.svg"
    assert main(["graph", "--name", lab.name, "-o", str(out)]) == 0
    text = out.read_text()
    seen = interfaces(lab)
    for node in lab.state.nodes:
        assert f">{node.name}<" in text
        for net, addr in node.addresses.items():
            assert f"{seen[node.name][net].name} {addr}" in text
    for net, subnet in lab.state.networks.items():
        assert net in text and subnet in text
    assert "MTU 1280" in text and "MTU 1500" not in text
    assert "<script" not in text


@pytest.mark.docker
def test_graph_of_a_lab_that_is_not_up_is_a_clear_error(engine, capsys):
    assert main(["graph", "--name", "t-not-up-anywhere"]) == 1
    err = capsys.readouterr().err
    assert "is not up" in err and "-f" in err
