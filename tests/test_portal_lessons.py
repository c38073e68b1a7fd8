"""The portal's lesson panel: steps in the participant's own lab, verified from its evidence,
progress kept per participant; attacked as the portal's threat model says.

Pure tests cover the markdown rendering and the progress store. The rest serve a room of two
default labs on the real engine (tests.test_portal's helpers) and act as the page does: HTTP with
tokens, terminals over websockets, and one whole lesson in a real headless chromium.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import stat
import time
from collections.abc import Iterator

import aiohttp
import pytest

from hoplab import lessons
from hoplab.engine.engine import Engine
from hoplab.lessons import port_opens_on_listen as POL
from hoplab.portal.lessons import LessonProgress, html, total_steps
from hoplab.portal.limits import Rate
from tests.test_portal import (
    Room,
    Term,
    call,
    chromium,
    open_terminal,
    run,
    served_room,
    shots_dir,
    start_portal,
    ws_connect,
)

LESSON = POL.LESSON.name  # port-opens-on-listen: 3 steps, two verified from the wire

# --- pure -----------------------------------------------------------------------------------


def test_markdown_is_rendered_with_raw_html_escaped_and_script_links_refused():
    out = html(
        "Run `nc -4 {srv}`, **now**.\n\n<script>alert(1)</script>\n\n"
        "<img src=x onerror=alert(1)> [x](javascript:alert(1)) [ok](https://example.org/)\n\n"
        "- one\n- two"
    )
    assert "<code>nc -4 {srv}</code>" in out and "<strong>now</strong>" in out
    assert "<script" not in out and "&lt;script&gt;" in out
    assert "<img" not in out and "&lt;img" in out
    assert 'href="javascript' not in out and '<a href="https://example.org/">ok</a>' in out
    assert "<ul>\n<li>one</li>" in out


def test_progress_is_private_per_participant_and_reports_the_step_stuck_longest(tmp_path):
    store = LessonProgress(tmp_path)
    one, two = lessons.catalogue()[0], lessons.catalogue()[1]
    store.shown("a", one.name, 1)
    store.record("a", one.name, 1, ok=False)
    store.record("a", one.name, 1, ok=True)
    store.shown("a", one.name, 2)
    store.record("a", one.name, 2, ok=False)
    store.shown("a", two.name, 1)  # later than one's step 2: not the longest
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    again = LessonProgress(tmp_path)  # a restart reads it back
    assert again.passed("a", one.name) == {1} and again.passed("b", one.name) == set()
    assert again.current("a", one) == 2 and again.failures("a", one.name, 2) == 1
    summary = again.summary("a", now=time.time() + 100)
    assert summary["passed"] == 1 and summary["total"] == total_steps() >= 60
    stuck = summary["stuck"]
    assert (stuck["lesson"], stuck["step"], stuck["failures"]) == (one.name, 2, 1)
    assert stuck["title"] == one.steps[1].title and stuck["seconds"] >= 100
    assert again.summary("b") == {"passed": 0, "total": total_steps(), "stuck": None}
    listing = {entry["name"]: entry for entry in again.listing("a")}
    assert len(listing) == 20 and listing[one.name]["passed"] == [1]
    assert listing[one.name]["current"] == 2 and listing[two.name]["current"] == 1


def test_no_assignment_is_named_like_the_exports_lesson_field():
    """results.json keeps each participant's lesson progress under "lessons", beside their
    assignments: an assignment of that name would be shadowed."""
    from hoplab import grading

    assert "lessons" not in {a.name for a in grading.catalogue()}


# --- on the real engine -------------------------------------------------------------------------

docker = pytest.mark.docker


@pytest.fixture(scope="module")
def lroom(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    with served_room(engine, tmp_path_factory.mktemp("lessons-state"), "pl", 2) as served:
        yield served


async def lesson_call(room: Room, who: str, what: str, body: dict) -> tuple[int, dict]:
    """POST /api/lessons/<what> as the page does."""
    path = f"/api/lessons/{what}"
    return await call(room.served.base, "POST", path, room.tokens[who], body)


async def show(room: Room, who: str, step: int | None = None, **extra) -> tuple[int, dict]:
    return await lesson_call(room, who, "show", {"lesson": LESSON, "step": step, **extra})


async def verify(room: Room, who: str, step: int, **extra) -> tuple[int, dict]:
    return await lesson_call(room, who, "verify", {"lesson": LESSON, "step": step, **extra})


async def passed(base: str, token: str, lesson: str = LESSON) -> list[int]:
    status, listing = await call(base, "GET", "/api/lessons", token)
    assert status == 200, listing
    return next(entry["passed"] for entry in listing if entry["name"] == lesson)


@docker
def test_bad_input_is_a_400_that_names_what_is_wrong(lroom):
    a = sorted(lroom.labs)[0]
    base, token = lroom.served.base, lroom.tokens[a]

    async def go() -> None:
        for path in ("/api/lessons/show", "/api/lessons/verify"):
            for body, words in (
                ({"lesson": "no-such-lesson"}, "lesson: unknown lesson 'no-such-lesson'"),
                ({"lesson": 5}, "lesson: unknown lesson 5 (lessons: one-port-many-clients, "),
                ({}, "lesson: unknown lesson None"),
                ({"lesson": LESSON, "step": 0}, f"step: lesson {LESSON} has no step 0"),
                ({"lesson": LESSON, "step": 4}, "no step 4 (steps are 1 to 3, or none for"),
                ({"lesson": LESSON, "step": "1"}, "has no step '1'"),
                ({"lesson": LESSON, "step": True}, "has no step True"),
                ({"lesson": LESSON, "step": [1]}, "has no step [1]"),
            ):
                status, answer = await call(base, "POST", path, token, body)
                assert status == 400, (path, body, answer)
                assert words in answer["error"], (path, body, answer)
            assert (await call(base, "POST", path, None, {"lesson": LESSON}))[0] == 401
            instructor = lroom.tokens["instructor"]
            assert (await call(base, "POST", path, instructor, {"lesson": LESSON}))[0] == 403
        # No step named: the participant's current one, whose captures start now.
        status, doc = await show(lroom, a)
        assert status == 200 and doc["shown"] == 1, doc
        # One show or verify at a time per participant: a second gets no thread.
        answers = await asyncio.gather(verify(lroom, a, 1), verify(lroom, a, 1))
        assert sorted(status for status, _ in answers) == [200, 429], answers
        assert "being shown or verified" in max(answers)[1]["error"]
        # A flood is cut once the participant's window is used up (a small window, to be quick).
        portal = lroom.served.portal
        saved, portal.learning.rate = portal.learning.rate, Rate(2, 60)
        try:
            got = [await verify(lroom, a, 1) for _ in range(3)]
        finally:
            portal.learning.rate = saved
        assert [status for status, _ in got] == [200, 200, 429], got
        assert "wait a minute" in got[2][1]["error"]

    run(go())


@docker
def test_a_step_shows_the_participants_own_addresses_and_verifies_only_their_own_lab(lroom):
    """B names A's lab and A in the body: ignored, the token's lab is the only one reached.
    A's server in A's srv passes A's step 2 and not B's; B sees none of A's progress."""
    a, b = sorted(lroom.labs)
    base = lroom.served.base
    mine, theirs = lroom.labs[a].address("srv", "lan2"), lroom.labs[b].address("srv", "lan2")

    async def go() -> None:
        status, doc_a = await show(lroom, a, 1)
        assert status == 200 and doc_a["lab"] == lroom.labs[a].name
        dial = doc_a["steps"][0]["commands"][0]
        assert dial == {
            "node": "alice",
            "command": POL.DIAL.format(srv=mine),
            "keeps_running": False,
        }
        assert theirs not in json.dumps(doc_a)
        assert "<p>" in doc_a["steps"][0]["text_html"] and doc_a["steps"][0]["watches"] == [
            {"node": "srv", "network": "lan2"}
        ]
        status, doc_b = await show(lroom, b, 1, lab=lroom.labs[a].name, participant=a)
        assert status == 200 and doc_b["lab"] == lroom.labs[b].name
        assert mine not in json.dumps(doc_b) and theirs in json.dumps(doc_b)
        tid = await open_terminal(base, lroom.tokens[a], "srv")
        try:
            async with (
                aiohttp.ClientSession() as s,
                ws_connect(s, base, f"/ws/terminal/{tid}", lroom.tokens[a]) as ws,
            ):
                term = Term(ws)
                await term.expect(r"root@srv")
                await term.send(POL.SERVER + "\r")  # as the learner types it: no run mark
                await asyncio.sleep(1.5)
                status, got_a = await verify(lroom, a, 2)
                assert status == 200 and got_a["status"] == "PASS", got_a
                status, got_b = await verify(lroom, b, 2, lab=lroom.labs[a].name, participant=a)
                assert status == 200 and got_b["status"] == "FAIL", got_b
                assert got_b["hint"] == POL.LESSON.steps[1].hints[0], got_b
        finally:
            await call(base, "DELETE", f"/api/terminals/{tid}", lroom.tokens[a])
        assert await passed(base, lroom.tokens[a]) == [2]
        assert await passed(base, lroom.tokens[b]) == []
        # B reaches nobody's progress but their own: the room's views are the instructor's.
        for path in ("/api/room", "/api/room/grades.csv", "/api/room/results.json"):
            assert (await call(base, "GET", path, lroom.tokens[b]))[0] == 403, path

    run(go())


@docker
def test_the_instructor_sees_learning_beside_the_grades_never_in_a_score(lroom):
    a, b = sorted(lroom.labs)
    base, ti = lroom.served.base, lroom.tokens["instructor"]

    async def go() -> None:
        status, grid = await call(base, "GET", "/api/room", ti)
        assert status == 200
        rows = {r["participant"]: r["lessons"] for r in grid["participants"]}
        assert rows[a]["passed"] >= 1 and rows[a]["total"] == total_steps()
        assert rows[b]["passed"] == 0
        # B was shown step 1 and never passed it: the step B is stuck on longest.
        assert (rows[b]["stuck"]["lesson"], rows[b]["stuck"]["step"]) == (LESSON, 1)
        assert rows[b]["stuck"]["seconds"] >= 0
        status, text = await call(base, "GET", "/api/room/grades.csv", ti)
        table = list(csv.DictReader(io.StringIO(text)))
        by = {r["participant"]: r for r in table}
        assert by[b]["lesson steps passed"] == f"0/{total_steps()}"
        assert by[b]["stuck on lesson step"] == f"{LESSON} 1" and by[b]["stuck for (s)"].isdigit()
        assert by[a]["lesson steps passed"] == f"{rows[a]['passed']}/{total_steps()}"
        status, results = await call(base, "GET", "/api/room/results.json", ti)
        assert status == 200 and set(results) == {a, b}
        assert results[b]["lessons"]["passed"] == 0 and "score" not in results[b]["lessons"]
        # Nothing of it reaches the grades the check button keeps.
        grades = lroom.folder / "grades.json"
        assert not grades.exists() or "lesson" not in grades.read_text()
        assert stat.S_IMODE((lroom.folder / "lessons.json").stat().st_mode) == 0o600

    run(go())


@docker
def test_a_participant_who_hangs_their_node_waits_alone_and_within_a_deadline(lroom):
    """A replaces `ss` in their srv with a program that never ends: their verify is cut by the
    exec's deadline and answers a FAIL, a second one meanwhile is refused, and B's page and
    step are served as ever while A's hangs."""
    a, b = sorted(lroom.labs)
    base = lroom.served.base
    srv = lroom.labs[a].node("srv")
    srv.run("printf '#!/bin/sh\\nsleep 1000\\n' > /usr/local/sbin/ss; chmod +x /usr/local/sbin/ss")

    async def go() -> None:
        started = time.monotonic()
        hung = asyncio.ensure_future(verify(lroom, a, 2))
        await asyncio.sleep(2)
        assert (await verify(lroom, a, 2))[0] == 429  # one at a time: no second thread
        times = []
        for _ in range(10):
            t = time.monotonic()
            status, _ = await call(base, "GET", "/api/me", lroom.tokens[b])
            times.append(time.monotonic() - t)
            assert status == 200
        assert not hung.done(), "the attack did not hang the verify"
        status, got_b = await verify(lroom, b, 2)
        assert status == 200 and got_b["status"] == "FAIL", got_b
        status, got_a = await hung
        took = time.monotonic() - started
        assert status in (200, 503) and got_a.get("status") != "PASS", got_a
        assert took < 45, f"the hung verify took {took:.0f} s"
        assert max(times) < 2.0, times
        print(f"hung verify answered after {took:.1f} s; B's /api/me max {max(times):.3f} s")

    try:
        run(go())
    finally:
        srv.run("rm -f /usr/local/sbin/ss", timeout=5)


@docker
def test_progress_survives_a_restart_of_serve_and_a_reset_of_the_lab(lroom, engine):
    a = sorted(lroom.labs)[0]
    token = lroom.tokens[a]
    again = start_portal(engine, lroom.name, lroom.folder)
    try:
        assert run(passed(again.base, token)) == [2]
        status, grid = run(call(again.base, "GET", "/api/room", lroom.tokens["instructor"]))
        row = next(r for r in grid["participants"] if r["participant"] == a)
        assert row["lessons"]["passed"] >= 1
    finally:
        again.close()
    base = lroom.served.base

    def ids() -> set[str]:
        label = f"hoplab.lab={lroom.labs[a].name}"
        return {c["Id"] for c in engine.api.containers(all=True, filters={"label": [label]})}

    old = ids()
    status, body = run(call(base, "POST", "/api/reset", token, {"confirm": lroom.labs[a].name}))
    assert status == 200, body
    assert len(ids()) == len(old) == 7 and old.isdisjoint(ids())
    assert run(passed(base, token)) == [2]
    # The new lab answers: step 1 shows (its captures start in the new srv); step 2's server
    # went with the old nodes, so a verify FAILs now, and the pass stays recorded.
    status, doc = run(show(lroom, a, 1))
    assert status == 200 and doc["steps"][1]["passed"], doc
    status, got = run(verify(lroom, a, 2))
    assert status == 200 and got["status"] == "FAIL" and got["progress"] == [2], got


def terminals_on(driver, node: str) -> list:  # noqa: ANN001 - selenium's types
    """The text rows of this page's terminals on node, in the order they were opened."""
    from selenium.webdriver.common.by import By

    panes = driver.find_elements(
        By.XPATH, f"//div[@class='term'][.//span[starts-with(text(), '{node} (')]]"
    )
    return [pane.find_element(By.CSS_SELECTOR, ".xterm-rows") for pane in panes]


@docker
def test_a_browser_takes_a_whole_lesson_and_finds_its_progress_after_a_reload(lroom, tmp_path):
    """Each command is typed by its button (no Enter); the browser presses Enter in the
    terminal, as the learner does, then verify; every step passes, and a reload keeps it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    b = sorted(lroom.labs)[1]
    base, token = lroom.served.base, lroom.tokens[b]
    srv = lroom.labs[b].address("srv", "lan2")
    driver = chromium()
    driver.set_window_size(1500, 1400)
    wait = WebDriverWait(driver, 60)
    row = f"#lessons-list tr[data-lesson='{LESSON}']"

    def typed(node: str, nth: int, text: str, button: int) -> None:
        """Press the step's command button, see the command in the terminal (not run), and
        press Enter there."""
        shown = terminals_on(driver, node)
        before = shown[nth].text.replace("\n", "").count(text) if len(shown) > nth else 0
        driver.find_elements(By.CSS_SELECTOR, "button.type-command")[button].click()
        wait.until(lambda d: len(terminals_on(d, node)) > nth)
        rows = terminals_on(driver, node)[nth]
        wait.until(lambda d: rows.text.replace("\n", "").count(text) > before)
        time.sleep(0.5)
        # nothing ran: the command stands after the prompt, no Enter was sent with it
        assert rows.text.replace("\n", "").rstrip().endswith(text), rows.text
        driver.switch_to.active_element.send_keys(Keys.ENTER)

    def verified(step: int) -> None:
        driver.find_element(By.ID, "verify").click()
        verdict = WebDriverWait(driver, 90).until(
            ec.presence_of_element_located((By.ID, "lesson-verdict"))
        )
        assert verdict.get_attribute("class") == "PASS", driver.find_element(
            By.ID, "lesson-result"
        ).text
        assert f"step {step}" in verdict.text

    def progress(driver) -> str:  # noqa: ANN001 - selenium's type
        return driver.find_element(By.CSS_SELECTOR, row + " td.progress").get_attribute(
            "textContent"
        )

    def next_step(step: int) -> None:
        driver.find_element(By.ID, "next-step").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "step-title"), f"step {step}/3"))

    try:
        driver.get(f"{base}/p/#{token}")
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "ready"))
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, row)))
        driver.find_element(By.CSS_SELECTOR, row + " button.open-lesson").click()
        # B's earlier tests showed step 1 and passed nothing: it opens at step 1.
        wait.until(ec.text_to_be_present_in_element((By.ID, "step-title"), "step 1/3"))
        assert srv in driver.find_element(By.CSS_SELECTOR, "ul.commands").text
        dial = POL.DIAL.format(srv=srv)
        typed("alice", 0, dial, 0)
        alice = terminals_on(driver, "alice")[0]
        wait.until(lambda d: re.search(r"^1$", alice.text, re.M))  # refused
        verified(1)
        next_step(2)
        typed("srv", 0, POL.SERVER, 0)  # keeps running: its terminal is busy from now on
        typed("srv", 1, "ss -tlnp", 1)
        second = terminals_on(driver, "srv")[1]
        wait.until(lambda d: re.search(rf"LISTEN.*:{POL.PORT}\b", second.text))
        verified(2)
        next_step(3)
        typed("alice", 0, dial, 0)
        wait.until(lambda d: re.search(r"^0$", alice.text, re.M))  # accepted
        assert len(terminals_on(driver, "alice")) == 1 and len(terminals_on(driver, "srv")) == 2
        verified(3)
        wait.until(lambda d: progress(d) == "done")  # the list is folded: its text is hidden
        shots = shots_dir(tmp_path)
        shots.mkdir(exist_ok=True)
        driver.execute_script("document.getElementById('terminals-section').scrollIntoView()")
        driver.save_screenshot(str(shots / "portal-lesson.png"))
        driver.refresh()
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "ready"))
        wait.until(
            ec.text_to_be_present_in_element((By.CSS_SELECTOR, row + " td.progress"), "done")
        )
        assert run(passed(base, token)) == [1, 2, 3]
    finally:
        driver.quit()  # its terminals end with the portal and the room (the fixture's close)


@docker
def test_the_instructors_page_shows_each_participants_lesson_progress(lroom, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, ti = lroom.served.base, lroom.tokens["instructor"]
    _, grid = run(call(base, "GET", "/api/room", ti))
    want = {r["participant"]: r["lessons"] for r in grid["participants"]}
    driver = chromium()
    try:
        driver.get(f"{base}/i/#{ti}")
        wait = WebDriverWait(driver, 60)
        for participant, lessons_ in want.items():
            cells = f"//tr[td[1][text()='{participant}']]/td"
            wait.until(lambda d, c=cells: d.find_elements(By.XPATH, c + "[@class='lessons']"))
            shown = driver.find_element(By.XPATH, cells + "[@class='lessons']").text
            assert shown == f"{lessons_['passed']}/{total_steps()}", shown
            stuck = driver.find_element(By.XPATH, cells + "[@class='stuck']").text
            if lessons_["stuck"]:
                s = lessons_["stuck"]
                assert stuck.startswith(f"{s['lesson']} step {s['step']} ({s['title']})"), stuck
            else:
                assert stuck == ""
        heads = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "#grid thead th")]
        assert "lesson steps" in heads and "stuck on (longest)" in heads, heads
        driver.save_screenshot(str(tmp_path / "instructor-lessons.png"))
    finally:
        driver.quit()
