"""Exercises from the portal, on the real engine: a participant runs one in their own lab and sees
its result and ladder as report.html shows them; another participant can neither run in that lab
nor read its runs; runs are one at a time, rate-limited and cut at their deadline; and they never
reach the instructor's grades or exports.
"""

from __future__ import annotations

import asyncio
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html import escape

import pytest

from hoplab import exercises
from hoplab.draw import html
from hoplab.engine.engine import Engine
from hoplab.exercises import runner
from hoplab.portal import exercises as portal_exercises
from hoplab.runtime.lab import RUN_ENV, Lab
from tests.test_portal import Room, call, chromium, run, served_room, shots_dir

docker = pytest.mark.docker

EXERCISE = "mac-per-hop"  # a datagram across a router, captured on each segment: a ladder


@pytest.fixture(scope="module")
def room(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    with served_room(engine, tmp_path_factory.mktemp("portal-ex"), "px", 2) as served:
        yield served


async def wait_done(base: str, token: str, timeout: float = 240, idle: bool = False) -> dict:
    """Poll the participant's latest run, as the page does, until it is done (idle: or until
    there is none, for a test that only needs the participant's runs to have ended)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = await call(base, "GET", "/api/exercises/run", token)
        assert status == 200, body
        if (body and body["state"] == "done") or (idle and body is None):
            return body
        assert time.monotonic() < deadline, f"the run never finished: {body}"
        await asyncio.sleep(0.5)


def svg_texts(fragment: str) -> list[str]:
    """Every text in the fragment's ladder SVG (matplotlib keeps text as text)."""
    found = re.search(r"<svg.*</svg>", fragment, re.S)
    assert found, f"no SVG in {fragment[:300]!r}"
    tree = ET.fromstring(found.group(0))
    return ["".join(t.itertext()) for t in tree.iter() if t.tag.endswith("text")]


def lanes(fragment: str, nodes: set[str]) -> list[str]:
    return [t for t in svg_texts(fragment) if t in nodes]


def marked(engine: Engine, lab: Lab) -> list[str]:
    """Processes carrying a hoplab run mark in any of the lab's nodes, read from the host side."""
    return [
        f"{n.name}: {cmd}"
        for n in lab.nodes
        for _pid, _uid, mark, cmd in engine.processes(n.container, RUN_ENV)
        if mark
    ]


@docker
def test_an_exercise_runs_in_the_own_lab_and_shows_the_reports_result_and_ladder(
    room, engine, tmp_path
):
    a, b = sorted(room.labs)
    base, token = room.served.base, room.tokens[a]
    status, listed = run(call(base, "GET", "/api/exercises", token))
    assert status == 200 and [e["name"] for e in listed] == [e.name for e in exercises.catalogue()]
    assert len(listed) == 20
    status, started = run(call(base, "POST", "/api/exercises", token, {"exercise": EXERCISE}))
    assert status == 202, started
    assert started["exercise"] == EXERCISE and started["state"] in ("queued", "running")
    done = run(wait_done(base, token))
    assert done["id"] == started["id"] and "error" not in done, done
    result = done["result"]
    assert result["status"] == "PASS", result
    assert result["checks"] and all(
        c["expected"] and c["observed"] and c["status"] == "PASS" for c in result["checks"]
    ), result
    fragment = done["html"]
    assert fragment.startswith('<div class="result">') and "<svg" in fragment
    assert "captures (open in Wireshark)" not in fragment  # no links to files the portal dropped
    # It ran in a's lab: its packets carry a's addresses, never b's (the labs' subnets differ).
    lab_a, lab_b = room.labs[a], room.labs[b]
    texts = " ".join(svg_texts(fragment))
    assert lab_a.address("srv", "lan2") in texts, texts[:500]
    assert lab_b.address("srv", "lan2") not in texts

    # report.html, for the same exercise run the CLI's way in the same lab, has the same parts.
    ex = exercises.select([EXERCISE])[0]
    cli_result = runner.run_one(lab_a, ex, tmp_path)
    page = html.write_report(lab_a, [ex], [cli_result], tmp_path).read_text()
    start = page.index('<div class="result">\n<h2')
    reported = page[start : page.index("</div>\n</body>", start) + len("</div>")]
    nodes = {n.name for n in lab_a.nodes}
    assert lanes(fragment, nodes) == lanes(reported, nodes) != []
    assert re.findall(r"<th>(\w+)</th>", fragment) == re.findall(r"<th>(\w+)</th>", reported)
    check_names = [c["name"] for c in result["checks"]]
    assert check_names == [c.name for c in cli_result.checks]
    for name in check_names:
        assert f"<td>{escape(name)}</td>" in reported

    def arrows(text: str) -> list[str]:  # each hop's first line, less its ephemeral port
        return [re.sub(r"\d+→", "→", t) for t in svg_texts(text) if t.startswith("#")]

    assert arrows(fragment) == arrows(reported) != []
    # The page can style it as the report does: the parts' CSS is served.
    status, css = run(call(base, "GET", "/static/result.css"))
    assert status == 200 and ".result .badge" in css and css == html.PARTS_CSS


@docker
def test_a_participant_can_neither_run_in_nor_read_another_ones_lab(room):
    runs = room.served.portal.exercises
    interval, runs.min_interval = runs.min_interval, 0.0  # the test before ran one just now
    try:
        _neither_run_in_nor_read(room)
    finally:
        runs.min_interval = interval


def _neither_run_in_nor_read(room) -> None:  # noqa: ANN001 - the module's Room
    a, b = sorted(room.labs)
    base = room.served.base
    status, mine = run(
        call(base, "POST", "/api/exercises", room.tokens[a], {"exercise": "ephemeral-ports"})
    )
    assert status == 202, mine
    # b names a's lab: the body's lab is not a parameter, the token's lab is where it runs.
    status, theirs = run(
        call(
            base,
            "POST",
            "/api/exercises",
            room.tokens[b],
            {"exercise": EXERCISE, "lab": room.labs[a].name},
        )
    )
    assert status == 202, theirs
    assert theirs["lab"] == room.labs[b].name
    # b cannot read a's run, by id or as the latest
    status, body = run(call(base, "GET", f"/api/exercises/runs/{mine['id']}", room.tokens[b]))
    assert status == 404, body
    done_a = run(wait_done(base, room.tokens[a]))
    done_b = run(wait_done(base, room.tokens[b]))
    assert done_a["id"] == mine["id"] and done_b["id"] == theirs["id"]
    assert done_a["lab"] == room.labs[a].name
    status, body = run(call(base, "GET", f"/api/exercises/runs/{mine['id']}", room.tokens[b]))
    assert status == 404, body
    status, body = run(call(base, "GET", f"/api/exercises/runs/{mine['id']}", room.tokens[a]))
    assert status == 200 and body["id"] == mine["id"]
    texts = " ".join(svg_texts(done_b["html"]))
    assert room.labs[b].address("srv", "lan2") in texts
    assert room.labs[a].address("srv", "lan2") not in texts
    # no token, a wrong one, the instructor: no runs at all
    assert run(call(base, "POST", "/api/exercises", None, {"exercise": EXERCISE}))[0] == 401
    assert run(call(base, "POST", "/api/exercises", "x" * 43, {"exercise": EXERCISE}))[0] == 401
    status, _ = run(
        call(base, "POST", "/api/exercises", room.tokens["instructor"], {"exercise": EXERCISE})
    )
    assert status == 403
    # another origin (a page elsewhere using the browser's token) is refused before it runs
    status, _ = run(
        call(
            base,
            "POST",
            "/api/exercises",
            room.tokens[a],
            {"exercise": EXERCISE},
            headers={"Origin": "http://evil.example"},
        )
    )
    assert status == 403
    status, body = run(
        call(base, "POST", "/api/exercises", room.tokens[a], {"exercise": "no_such_one"})
    )
    assert status == 400 and "unknown exercise" in body["error"]


@docker
def test_runs_are_one_at_a_time_rate_limited_and_never_grades(room):
    a = sorted(room.labs)[0]
    base, token = room.served.base, room.tokens[a]
    runs = room.served.portal.exercises
    grades_before = {p: dict(g) for p, g in room.served.portal.grades.latest.items()}
    interval, runs.min_interval = runs.min_interval, 0.0
    try:
        run(wait_done(base, token, idle=True))  # an earlier test's run ends first
        status, first = run(call(base, "POST", "/api/exercises", token, {"exercise": EXERCISE}))
        assert status == 202, first
        # while it is queued or running, a second is refused, whatever exercise it names
        for name in (EXERCISE, "ephemeral-ports"):
            status, body = run(call(base, "POST", "/api/exercises", token, {"exercise": name}))
            assert status == 429 and "queued or running" in body["error"], body
        run(wait_done(base, token))
        runs.min_interval = 600.0  # the next start comes too soon after this one
        status, again = run(call(base, "POST", "/api/exercises", token, {"exercise": EXERCISE}))
        assert status == 429 and "one exercise every 600 s" in again["error"], again
    finally:
        runs.min_interval = interval
    assert portal_exercises.MIN_INTERVAL >= 5 and portal_exercises.WORKERS <= 4
    # Exercise runs are lessons, not grades: nothing of them in the grid or the exports.
    assert room.served.portal.grades.latest == grades_before
    instructor = room.tokens["instructor"]
    status, grid = run(call(base, "GET", "/api/room", instructor))
    assert status == 200
    assert all(EXERCISE not in row["grades"] for row in grid["participants"])
    status, csv_text = run(call(base, "GET", "/api/room/grades.csv", instructor))
    assert status == 200 and EXERCISE not in csv_text
    status, results = run(call(base, "GET", "/api/room/results.json", instructor))
    assert status == 200 and EXERCISE not in str(results)


@docker
def test_a_run_past_its_deadline_starts_no_new_step_and_leaves_nothing_running(room, engine):
    b = sorted(room.labs)[1]
    base, token = room.served.base, room.tokens[b]
    runs = room.served.portal.exercises
    deadline, interval = runs.deadline, runs.min_interval
    # errors-by-layer gathers evidence for about 3 s on a quiet machine (longer under load), so
    # half a second is always overrun, however fast the machine (2 s was not: it passed quiet)
    runs.deadline, runs.min_interval = 0.5, 0.0
    try:
        run(wait_done(base, token, idle=True))
        started = time.monotonic()
        status, body = run(
            call(base, "POST", "/api/exercises", token, {"exercise": "errors-by-layer"})
        )
        assert status == 202, body
        done = run(wait_done(base, token, timeout=120))
        took = time.monotonic() - started
    finally:
        runs.deadline, runs.min_interval = deadline, interval
    assert done["overran"] is True, done
    assert done["result"]["status"] == "FAIL"
    observed = " ".join(c["observed"] for c in done["result"]["checks"])
    assert "ran past its deadline of 0.5 s" in observed, done["result"]
    # one exec's own deadline (20 s + the engine's slack) past the run's, at the most
    assert took < 2 + 30 + 30, took
    print(f"a run with a 0.5 s deadline ended after {took:.1f} s")
    assert marked(engine, room.labs[b]) == []  # what it started was stopped


def test_the_deadline_refuses_only_the_exercises_own_steps():
    """Pure: the wrapper refuses a new exec past the deadline while the exercise gathers
    evidence, and lets the runner's clean up (outside evidence()) through."""

    class Engine:
        def __init__(self) -> None:
            self.calls: list[list[str]] = []

        def run(self, container: str, cmd: list[str], timeout: float = 300.0) -> tuple:
            self.calls.append(cmd)
            return 0, b"", b""

        def state(self, lab: str) -> str:
            return f"state of {lab}"

    class Gathering:
        gathering = True

    inner = Engine()
    bounded = portal_exercises.Deadline(inner, 60)  # type: ignore[arg-type]
    bounded.lab = Gathering()  # type: ignore[assignment]
    assert bounded.run("c", ["true"]) == (0, b"", b"")
    bounded.expire()
    with pytest.raises(Exception, match="ran past its deadline of 60 s"):
        bounded.run("c", ["step"])
    assert bounded.overran
    Gathering.gathering = False  # the runner's stop_all, after the exercise
    assert bounded.run("c", ["stop"]) == (0, b"", b"")
    assert inner.calls == [["true"], ["stop"]]
    assert bounded.state("x") == "state of x"  # everything else passes through


def test_exercise_runs_have_a_pool_of_their_own():
    runs = portal_exercises.ExerciseRuns()
    try:
        assert runs.workers._max_workers == portal_exercises.WORKERS  # type: ignore[attr-defined]
        assert runs.workers._thread_name_prefix == "portal-exercise"  # type: ignore[attr-defined]
    finally:
        runs.close()


@docker
def test_a_browser_runs_an_exercise_and_sees_its_ladder(room, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    a = sorted(room.labs)[0]
    base, token = room.served.base, room.tokens[a]
    runs = room.served.portal.exercises
    run(wait_done(base, token, idle=True))  # an earlier test's run ends first
    interval, runs.min_interval = runs.min_interval, 0.0
    driver = chromium()
    try:
        driver.get(f"{base}/p/#{token}")
        wait = WebDriverWait(driver, 30)
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "ready"))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#exercise option")) == 20)
        Select(driver.find_element(By.ID, "exercise")).select_by_value(EXERCISE)
        driver.find_element(By.ID, "run-exercise").click()  # clears the last result at once
        assert not driver.find_elements(By.CSS_SELECTOR, "#exercise-result svg")
        WebDriverWait(driver, 240).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "#exercise-result .result svg"))
        )
        heading = driver.find_element(By.CSS_SELECTOR, "#exercise-result h2")
        assert heading.text.startswith("PASS") and EXERCISE in heading.text, heading.text
        ladder = driver.find_element(By.CSS_SELECTOR, "#exercise-result .pic svg")
        assert ladder.is_displayed() and ladder.size["width"] > 300, ladder.size
        rows = driver.find_elements(By.CSS_SELECTOR, "#exercise-result table tr")
        assert len(rows) > 1
        # the report's styles reached the page: the badge is the report's green
        badge = driver.find_element(By.CSS_SELECTOR, "#exercise-result h2 .badge")
        assert badge.value_of_css_property("display") == "inline-block"
        assert "not a grade" in driver.find_element(By.ID, "exercise-state").text
        shots = shots_dir(tmp_path)
        shots.mkdir(exist_ok=True)
        driver.set_window_size(1400, 3200)
        section = driver.find_element(By.ID, "exercises-section")
        driver.execute_script("arguments[0].scrollIntoView()", section)
        section.screenshot(str(shots / "portal-exercise.png"))
        assert (shots / "portal-exercise.png").stat().st_size > 10_000
    finally:
        runs.min_interval = interval
        driver.quit()
