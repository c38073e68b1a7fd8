"""`hoplab workshop serve`: issue the room's links, then serve the portal until Ctrl-C.

Links are issued once per participant and kept: a restart serves the same links (the links file
keeps the tokens, the state dir their hashes). The instructor's link is printed when it is issued
and never again; `--reissue instructor` prints a new one and kills the old.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from hoplab.engine.engines import LOCAL
from hoplab.engine.interface import EngineAPI
from hoplab.errors import InputError
from hoplab.model.load import load
from hoplab.portal import tokens as T
from hoplab.portal.grades import Grades
from hoplab.portal.lessons import LessonProgress
from hoplab.portal.server import Portal, lab_topology, make_app
from hoplab.portal.terminals import Terminals
from hoplab.workshop.graderlab import RoomGraders
from hoplab.workshop.placement import check_workers

IO_WORKERS = 24  # Docker calls (list, exec, kill) in flight at once


@dataclass
class Links:
    """What `issue` did: every participant's link, and the instructor's when it was new."""

    participants: dict[str, str]
    instructor: str | None
    path: Path


def url(base: str, kind: str, token: str) -> str:
    # The token goes in the fragment: browsers never send it to the server, to a proxy's log or
    # in a Referer; the page's script reads it and sends it in a header.
    return f"{base.rstrip('/')}/{kind}/#{token}"


def issue(
    store: T.Tokens,
    participants: list[str],
    base: str,
    links_file: Path | None = None,
    reissue: tuple[str, ...] = (),
    revoke: tuple[str, ...] = (),
) -> Links:
    """Keep valid links, issue missing ones, reissue or revoke those named; write the links."""
    path = links_file or store.path.parent / "links.csv"
    known = T.read_links(path)
    for name in (*reissue, *revoke):
        if name != "instructor" and name not in participants and name not in known:
            raise InputError(
                f"no participant {name!r} in this room",
                key="--reissue" if name in reissue else "--revoke",
                hint=f"participants: {', '.join(participants) or 'none'}; or 'instructor'",
            )
    instructor = None
    if "instructor" in revoke:
        store.revoke(T.INSTRUCTOR)
    if "instructor" in reissue or (not store.has(T.INSTRUCTOR) and "instructor" not in revoke):
        instructor = url(base, "i", store.issue(T.INSTRUCTOR))
    links: dict[str, str] = {}
    for name in sorted(set(participants) | set(known)):
        if name in revoke:
            store.revoke(name)
            continue
        token = urlsplit(known.get(name, "")).fragment
        valid = store.who(token)
        if name in reissue or valid is None or valid.participant != name:
            if name not in participants:
                continue  # a former participant's link that no longer works: drop it
            token = store.issue(name)
        links[name] = url(base, "p", token)
    T.write_links(path, links)
    return Links(links, instructor, path)


def build(
    engines: EngineAPI | dict[str, EngineAPI],
    room: str,
    folder: Path,
    topology: Path | None = None,
    kind: type[Portal] = Portal,
    **extra: Any,
) -> Portal:
    """The portal of a room on one engine, or on several given by name (the first is the
    default); each lab's terminals, checks and resets then go to the engine it is found on.
    kind and extra: another kind of portal, made with these fields too (a learner's, solo.py)."""
    if not isinstance(engines, dict):
        engines = {LOCAL: engines}
    engine = next(iter(engines.values()))
    workers = check_workers(sum(e.machine()[0] for e in engines.values()))
    io = ThreadPoolExecutor(max_workers=IO_WORKERS, thread_name_prefix="portal-io")
    checks = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="portal-check")
    portal = kind(
        engine=engine,
        room=room,
        tokens=T.Tokens(folder),
        grades=Grades(
            engine,
            checks,
            folder,
            RoomGraders(room, lambda e, lab: load(lab_topology(e, lab, topology)), workers),
        ),
        terminals=Terminals(engine, io),
        learning=LessonProgress(folder),
        io=io,
        topology=topology,
        engines=dict(engines),
        **extra,
    )
    portal.terminals.lanes = portal.lanes  # one lane per participant for all their calls
    portal.terminals.on_activity = portal.touch
    portal.terminals.valid = lambda token: portal.tokens.who(token) is not None
    return portal


def run(
    portal: Portal,
    host: str,
    port: int,
    on_ready: Callable[[str], None] = lambda base: None,
) -> None:
    """Serve until Ctrl-C; on the way out every terminal is ended and its processes killed."""

    async def main() -> None:
        runner = web.AppRunner(make_app(portal), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        on_ready(f"http://{host if ':' not in host else f'[{host}]'}:{bound[1]}")
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    stop(portal)


def stop(portal: Portal) -> None:
    """What the portal leaves when it stops serving: no Docker call in flight and no grader lab.

    Exercise runs end at their next exec. The grader labs close next: a bring-up in flight
    rolls back, queued checks are refused rather than starting one, and a grading in flight
    ends at once (its lab is gone). Then the workers are awaited, so nothing is left to bring a
    lab up later.
    """
    portal.exercises.close()  # runs end at their next exec, their clean up done
    portal.grades.graders.close()
    portal.io.shutdown(wait=True, cancel_futures=True)
    portal.grades.workers.shutdown(wait=True, cancel_futures=True)


def main(
    connect: Callable[[], dict[str, EngineAPI]],
    room: str,
    *,
    host: str,
    port: int,
    base: str | None,
    links_file: Path | None,
    reissue: tuple[str, ...],
    revoke: tuple[str, ...],
    issue_only: bool,
    topology: Path | None,
    say: Callable[[str], None],
    show: Callable[[str], None],
) -> int:
    """The CLI's handler: arguments are checked before the engines are reached.

    `connect` gives the room's engines by name (one, 'local', unless `--engine` named several).
    """
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port}: give 0 to 65535", key="--port")
    if base is not None and urlsplit(base).scheme not in ("http", "https"):
        raise InputError(
            f"--url {base!r} is not an http(s) URL",
            key="--url",
            hint="the address participants open, e.g. https://lab.example.org",
        )
    engines = connect()
    from hoplab.workshop.room import room_labs

    if not issue_only and not any(room_labs(e, room) for e in engines.values()):
        raise InputError(
            f"workshop {room!r} has no labs"
            + (f" on {', '.join(engines)}" if len(engines) > 1 else ""),
            key="--workshop",
            hint="bring it up first: hoplab workshop up --participants N --workshop NAME",
        )
    folder = T.state_dir(room)
    portal = build(engines, room, folder, topology)
    participants = sorted(portal.read_seats())

    def publish(bound: str) -> None:
        links = issue(portal.tokens, participants, base or bound, links_file, reissue, revoke)
        say(f"links for {len(links.participants)} participants: {links.path} (mode 0600)")
        if links.instructor:
            show(f"instructor: {links.instructor}")
            say("  the instructor's link is shown once: keep it (--reissue instructor: a new one)")
        else:
            say("  the instructor's link was shown when issued (--reissue instructor: a new one)")
        if not issue_only:
            say(f"serving workshop {room} on {bound} (Ctrl-C stops; terminals end with it)")
        if len(engines) > 1:
            held = list(portal.where.values())
            say("  labs on " + ", ".join(f"{name}: {held.count(name)}" for name in engines))

    if issue_only:
        publish(base or f"http://{host}:{port}")
        return 0
    run(portal, host, port, publish)
    return 0
