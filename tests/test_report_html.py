"""report.html from real exercises in a real lab, rendered by headless Chromium (Debian's package).

The run captures on every segment of alice -> r1 -> r2 -> srv (mac-per-hop) and on both sides
of a router (half-close), so the ladders must show real MACs, TTLs and the pcap links. Chromium
runs with every network feature off and name resolution disabled: the page must render from the
file alone.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hoplab import exercises
from hoplab.draw.html import interfaces, write_report
from hoplab.exercises import runner
from PIL import Image

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
def test_report_html_from_a_real_run_renders_in_chromium(lab, tmp_path):
    artifacts = tmp_path / "artifacts"
    chosen = exercises.select(CHOSEN)
    results = runner.run_all(lab, chosen, artifacts)
    page = write_report(lab, chosen, results, artifacts)
    assert page == artifacts / "report.html"
    text = page.read_text()

    # Every exercise with its checks, and links to its pcaps that resolve from the page.
    for r in results:
        assert f'id="{r.name}"' in text
        for c in r.checks:
            assert html.escape(c.name) in text and html.escape(c.expected) in text
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
