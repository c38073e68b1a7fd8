"""The portal's routes: every request is tied by its token to one participant and their lab only.

Tokens travel in the `Authorization: Bearer` header (API) or as a websocket subprotocol
(`tok.<token>`), never in cookies or URLs the server sees: the browser keeps them in the link's
fragment. So a foreign page cannot make a browser send one (no CSRF), and a websocket is refused
before the upgrade unless its Origin is this server. Participants name nodes and terminals; both
are looked up in their own lab and their own terminals only, so another's name is not found.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from hoplab import grading, lifecycle, resources
from hoplab.engine.engines import LOCAL
from hoplab.engine.interface import EngineAPI
from hoplab.engine.state import LabState
from hoplab.errors import HoplabError, InputError
from hoplab.model import labels as L
from hoplab.model.load import load
from hoplab.portal import lessons as lessonpanel
from hoplab.portal.drawings import Drawings
from hoplab.portal.exercises import Busy as ExerciseBusy
from hoplab.portal.exercises import ExerciseRuns, catalogue
from hoplab.portal.grades import Busy, Grades
from hoplab.portal.lanes import Lanes
from hoplab.portal.renewed import Renewed
from hoplab.portal.terminals import TerminalLimit, Terminals
from hoplab.portal.tokens import Tokens, Who
from hoplab.portal.wire import Wires
from hoplab.workshop.room import ENGINE

MAX_BODY = 300 * 1024  # a JSON body with one program of at most grading.grader.MAX_BYTES
RESET_INTERVAL = 30.0  # seconds from the end of one reset of a lab to the start of the next
SEATS_TTL = 2.0  # seconds the room's participant -> lab map is served at most (renewed at half)
STATE_TTL = 1.0  # seconds a lab's state is served before a renewal starts in the background
STATE_MAX = 5.0  # seconds it may be served while renewed: a page polling every 2 s never waits
PROTOCOL = "hoplab"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' blob:; font-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)
STATIC = files("hoplab.portal").joinpath("static")
PAGES = {"participant.html", "instructor.html"}
ASSETS = {
    "portal.js": "text/javascript",
    "exercises.js": "text/javascript",
    "wire.js": "text/javascript",
    "lessons.js": "text/javascript",
    "instructor.js": "text/javascript",
    "portal.css": "text/css",
}
XTERM = {  # xterm.js 4.2.0 as the webssh package ships it: no npm, no CDN
    "xterm.min.js": ("js/xterm.min.js", "text/javascript"),
    "xterm-addon-fit.min.js": ("js/xterm-addon-fit.min.js", "text/javascript"),
    "xterm.min.css": ("css/xterm.min.css", "text/css"),
}

log = logging.getLogger("hoplab.portal")

# The request's key for the token's owner (a Who); typed keys came with aiohttp 3.12.
WHO: Any = web.RequestKey("who", Who) if hasattr(web, "RequestKey") else "hoplab.who"


def xterm_file(name: str) -> bytes:
    return files("webssh").joinpath("static", XTERM[name][0]).read_bytes()


@dataclass
class Portal:
    """The state one serving process holds for its room; the engines' labels hold the rest.

    A room may span engines (`workshop up --engine ...`): `engines` are those the portal was
    given, by name, and each lab is served from the engine it is found on (`where`, read with the
    seats). `engine` is the first of them, the only one when the room is on one engine.
    """

    engine: EngineAPI
    room: str
    tokens: Tokens
    grades: Grades
    terminals: Terminals
    io: ThreadPoolExecutor
    topology: Path | None = None  # for resets: the lab's own source file when it still exists
    activity: dict[str, float] = field(default_factory=dict)
    resets: dict[str, float] = field(default_factory=dict)
    resetting: set[str] = field(default_factory=set)
    _seats: dict[str, str] = field(default_factory=dict)
    seat_map: Renewed[None, dict[str, str]] = field(
        default_factory=lambda: Renewed(SEATS_TTL / 2, SEATS_TTL)
    )
    state_cache: Renewed[str, LabState] = field(
        default_factory=lambda: Renewed(STATE_TTL, STATE_MAX)
    )
    assignment_cache: list[dict[str, str]] | None = None
    engines: dict[str, EngineAPI] = field(default_factory=dict)  # name -> engine; default: engine
    where: dict[str, str] = field(default_factory=dict)  # lab -> the name of its engine
    unreachable: dict[str, str] = field(default_factory=dict)  # engine name -> why, last read
    drawings: Drawings = field(default_factory=Drawings)
    exercises: ExerciseRuns = field(default_factory=ExerciseRuns)  # a pool of their own
    learning: lessonpanel.LessonProgress = field(default_factory=lessonpanel.LessonProgress)
    lanes: Lanes = field(init=False)  # on `io`; serve.build shares them with the terminals
    wires: Wires = field(init=False)  # the wire panels' captures, on the participants' lanes

    def __post_init__(self) -> None:
        if not self.engines:
            self.engines = {LOCAL: self.engine}
        self.lanes = Lanes(self.io)
        self.wires = Wires(self.call)

    async def call(self, fn: Callable[..., Any], *args: Any, who: str | None = None) -> Any:
        """fn on the I/O threads: in who's lane when it is for one participant (see lanes)."""
        return await self.lanes.run(who, fn, *args)

    def read_seats(self) -> dict[str, str]:
        """participant -> lab over every engine, and where each lab is (`where`).

        The engines are read at once. One that cannot be read keeps the seats last seen on it,
        so its participants are told their lab's engine is out of reach (503), not that they
        have no lab; the other engines' participants are served as ever.
        """
        if len(self.engines) == 1:  # one engine: its errors are the request's, as before
            ((name, engine),) = self.engines.items()
            mine = engine.owners(self.room)
            self.where = {lab: name for lab in mine.values()}
            return mine

        def one(item: tuple[str, EngineAPI]) -> dict[str, str] | str:
            try:
                return item[1].owners(self.room)
            except Exception as err:  # the engine went away: a reason, never a crash
                return f"{type(err).__name__}: {str(err)[:200]}"

        with ThreadPoolExecutor(max_workers=len(self.engines)) as workers:
            found = dict(zip(self.engines, workers.map(one, self.engines.items()), strict=True))
        seats: dict[str, str] = {}
        where: dict[str, str] = {}
        unreachable: dict[str, str] = {}
        for name, got in found.items():
            if isinstance(got, str):
                unreachable[name] = got
                got = {p: lab for p, lab in self._seats.items() if self.where.get(lab) == name}
            for participant, lab in got.items():
                if participant not in seats and lab not in where:  # the first engine given wins
                    seats[participant], where[lab] = lab, name
        # new maps, swapped in whole: handlers on the event loop read them while this runs
        self.where, self.unreachable = where, unreachable
        return seats

    def engine_of(self, lab: str) -> EngineAPI:
        """The engine the lab was found on; the portal's first if it was not seen yet."""
        return self.engines.get(self.where.get(lab, ""), self.engine)

    async def seats(self, fresh: bool = False) -> dict[str, str]:
        """participant -> lab, from the labels hoplab.workshop=<room> and hoplab.owner."""
        self._seats = await self.seat_map.get(None, lambda: self.call(self.read_seats), fresh)
        return self._seats

    async def lab_of(self, participant: str) -> str:
        lab = (await self.seats()).get(participant)
        if lab is None:
            raise web.HTTPNotFound(text=f"no lab of {participant} is up in this room")
        on = self.where.get(lab, "")
        if on in self.unreachable:
            raise web.HTTPServiceUnavailable(
                text=f"your lab's engine {on} cannot be reached ({self.unreachable[on]}): "
                "the instructor has been told; try again later"
            )
        return lab

    async def state(self, participant: str) -> LabState:
        lab = await self.lab_of(participant)
        state = await self.state_cache.get(
            lab, lambda: self.call(self.engine_of(lab).state, lab, who=participant)
        )
        if not self.owns(state, participant):
            raise web.HTTPNotFound(text="that lab is not yours")
        return state

    def owns(self, state: LabState, participant: str) -> bool:
        """The lab is the participant's: in this room, and labelled as theirs."""
        return state.labels.get(L.WORKSHOP) == self.room and state.owner == participant

    def seat_labels(self, participant: str, state: LabState) -> dict[str, str]:
        """The labels a reset brings the participant's lab back up with: its seat in the room
        and, on a room over several engines, its placement as it was."""
        labels = {L.WORKSHOP: self.room, L.OWNER: participant}
        if state.labels.get(ENGINE):
            labels[ENGINE] = state.labels[ENGINE]
        return labels

    def touch(self, participant: str) -> None:
        self.activity[participant] = time.time()


PORTAL = web.AppKey("portal", Portal)


# --- helpers --------------------------------------------------------------------------------


def error(status: int, message: str, hint: str = "") -> web.Response:
    return web.json_response({"error": message, "hint": hint}, status=status)


def bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    return value[7:].strip() if value.startswith("Bearer ") else None


def ws_token(request: web.Request) -> str | None:
    for proto in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        proto = proto.strip()
        if proto.startswith("tok."):
            return proto[4:]
    return None


def same_origin(request: web.Request) -> bool:
    """The Origin a browser sends must be this server's (through a proxy, the Host it kept)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser (curl, tests): nothing cross-site to fear
    return urlsplit(origin).netloc == request.host


async def body_json(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        # A form post from another site cannot set this type without a CORS preflight.
        raise web.HTTPUnsupportedMediaType(text="send application/json")
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="the body is not JSON") from None
    except RecursionError:  # json's decoder recurses once per nesting level
        raise web.HTTPBadRequest(text="the body is nested too deeply") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    return body


def participant_of(request: web.Request) -> str:
    who: Who = request[WHO]
    if who.instructor:
        raise web.HTTPForbidden(text="the instructor has no lab of their own")
    return who.participant


def instructor_only(request: web.Request) -> None:
    if not request[WHO].instructor:
        raise web.HTTPForbidden(text="instructor only")


# --- middleware: headers, auth ----------------------------------------------------------------


@web.middleware
async def headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every answer carries the security headers, errors included; an unexpected error is one
    line on the console and a plain 500, never a traceback (a participant could flood it)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = error(exc.status, exc.text or exc.reason)
    except Exception as exc:  # not CancelledError: a BaseException, it goes on up
        what = f"{type(exc).__name__}: {str(exc)[:200]}"
        log.error("%s %s failed: %s", request.method, request.path, what)
        response = error(500, "the portal could not answer that request", "try again later")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


@web.middleware
async def auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """/api and /ws need a valid token; pages and static files are the same for everybody."""
    path = request.path
    if not (path.startswith("/api/") or path.startswith("/ws/")):
        return await handler(request)
    portal = request.app[PORTAL]
    if path.startswith("/ws/"):
        if not same_origin(request):
            raise web.HTTPForbidden(text="websocket from another origin")
        token = ws_token(request)
    else:
        if request.method not in ("GET", "HEAD") and not same_origin(request):
            raise web.HTTPForbidden(text="request from another origin")
        token = bearer(request)
    who = portal.tokens.who(token)
    if who is None:
        raise web.HTTPUnauthorized(text="no valid token: open the link you were given")
    request[WHO] = who
    if not who.instructor:
        portal.touch(who.participant)
    return await handler(request)


# --- pages and static files -----------------------------------------------------------------


async def index(request: web.Request) -> web.Response:
    return web.Response(text="hoplab portal: open the link you were given.\n")


async def page(request: web.Request) -> web.Response:
    name = {"p": "participant.html", "i": "instructor.html"}[request.match_info["kind"]]
    return web.Response(body=STATIC.joinpath(name).read_bytes(), content_type="text/html")


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name in ASSETS:  # an allow-list: no path from the request reaches the file system
        return web.Response(body=STATIC.joinpath(name).read_bytes(), content_type=ASSETS[name])
    if name in XTERM:
        return web.Response(body=xterm_file(name), content_type=XTERM[name][1])
    if name == "result.css":  # an exercise result's parts, styled as report.html styles them
        from hoplab.draw.html import PARTS_CSS

        return web.Response(text=PARTS_CSS, content_type="text/css")
    raise web.HTTPNotFound(text="no such file")


# --- participant --------------------------------------------------------------------------------


async def me(request: web.Request) -> web.Response:
    participant = participant_of(request)
    portal = request.app[PORTAL]
    state = await portal.state(participant)
    return web.json_response(
        {
            "participant": participant,
            "room": portal.room,
            "lab": state.name,
            "networks": state.networks,
            "nodes": [
                {"name": n.name, "role": n.role, "state": n.state, "addresses": n.addresses}
                for n in state.nodes
            ],
            "terminals": [t.info() for t in portal.terminals.of(participant)],
            "grades": portal.grades.latest.get(participant, {}),
        }
    )


async def topology_svg(request: web.Request) -> web.Response:
    """The lab drawn by hoplab.draw (Graphviz); the page shows the tables when this fails."""
    from hoplab.draw.graph import svg

    portal, participant = request.app[PORTAL], participant_of(request)
    if not portal.drawings.allow(participant):
        raise web.HTTPTooManyRequests(text="the drawing was asked for too often: wait a minute")
    state = await portal.state(participant)
    try:
        text = await portal.drawings.get(
            state.name, state, lambda: portal.call(svg, state, who=participant)
        )
    except HoplabError as err:
        raise web.HTTPServiceUnavailable(text=f"no drawing: {err.message}") from None
    return web.Response(text=text, content_type="image/svg+xml")


async def assignments(request: web.Request) -> web.Response:
    participant_of(request)
    portal = request.app[PORTAL]

    def read() -> list[dict[str, str]]:
        return [
            {
                "name": a.name,
                "summary": a.summary,
                "program": a.program,
                "usage": a.usage,
                "exercise": a.exercise,
                "lesson": a.lesson.read_text() if a.lesson.is_file() else a.summary,
                "starter": a.starter.read_text() if a.starter.is_file() else "",
            }
            for a in grading.catalogue()
        ]

    if portal.assignment_cache is None:  # package data: read once per process
        portal.assignment_cache = await portal.call(read)
    return web.json_response(portal.assignment_cache)


async def open_terminal(request: web.Request) -> web.Response:
    participant = participant_of(request)
    portal = request.app[PORTAL]
    node = (await body_json(request)).get("node")
    state = await portal.state(participant)
    found = next((n for n in state.nodes if n.name == node), None)
    if not isinstance(node, str) or found is None:
        raise web.HTTPNotFound(text=f"your lab has no node {node!r}")
    if found.state != "running":
        raise web.HTTPConflict(text=f"{node} is {found.state}: reset your lab")
    try:
        term = await portal.terminals.open(
            participant, state.name, node, found.container, portal.engine_of(state.name)
        )
    except TerminalLimit as err:
        raise web.HTTPTooManyRequests(text=str(err)) from None
    return web.json_response(term.info(), status=201)


async def close_terminal(request: web.Request) -> web.Response:
    participant = participant_of(request)
    portal = request.app[PORTAL]
    term = portal.terminals.get(participant, request.match_info["tid"])
    if term is None:
        raise web.HTTPNotFound(text="no such terminal of yours")
    await portal.terminals.close(term, "closed from the page")
    return web.json_response({"closed": term.id})


async def terminal_ws(request: web.Request) -> web.StreamResponse:
    participant = participant_of(request)
    portal = request.app[PORTAL]
    term = portal.terminals.get(participant, request.match_info["tid"])
    if term is None:
        raise web.HTTPNotFound(text="no such terminal of yours")
    ws = web.WebSocketResponse(protocols=(PROTOCOL,), heartbeat=30, max_msg_size=64 * 1024)
    await ws.prepare(request)
    await portal.terminals.attach(term, ws, readonly=False, token=ws_token(request) or "")
    return ws


async def wire_ws(request: web.Request) -> web.StreamResponse:
    """The wire panel (hoplab.portal.wire): only segments of the participant's own lab."""
    participant = participant_of(request)
    portal = request.app[PORTAL]
    state = await portal.state(participant)
    token = ws_token(request) or ""

    async def networks() -> dict[str, str]:
        return (await portal.state(participant)).networks

    ws = web.WebSocketResponse(protocols=(PROTOCOL,), heartbeat=30, max_msg_size=4096)
    await ws.prepare(request)
    await portal.wires.serve(
        ws,
        participant,
        state.name,
        portal.engine_of(state.name),
        networks,
        lambda: portal.tokens.who(token) is not None,
    )
    return ws


async def start_check(request: web.Request) -> web.Response:
    participant = participant_of(request)
    portal = request.app[PORTAL]
    body = await body_json(request)
    assignment, source = body.get("assignment"), body.get("source")
    if not isinstance(assignment, str) or not isinstance(source, str) or not source.strip():
        raise web.HTTPBadRequest(text="send {assignment, source}: the program's text")
    lab = await portal.lab_of(participant)
    if lab in portal.resetting:
        raise web.HTTPConflict(text="your lab is being reset: check again when it is back")
    try:
        run = portal.grades.start(
            participant, lab, assignment, source.encode(), engine=portal.engine_of(lab)
        )
    except Busy as err:
        raise web.HTTPTooManyRequests(text=str(err)) from None
    except (InputError, ValueError) as err:
        raise web.HTTPBadRequest(text=getattr(err, "message", str(err))) from None
    return web.json_response(run, status=202)


async def check_status(request: web.Request) -> web.Response:
    participant = participant_of(request)
    return web.json_response(request.app[PORTAL].grades.status(participant))


async def exercise_list(request: web.Request) -> web.Response:
    participant_of(request)
    return web.json_response(catalogue())


async def start_exercise(request: web.Request) -> web.Response:
    """Run an exercise in the participant's own lab (the one their token names): a lesson shown
    with evidence, never a grade (see hoplab.portal.exercises)."""
    participant = participant_of(request)
    portal = request.app[PORTAL]
    name = (await body_json(request)).get("exercise")
    if not isinstance(name, str):
        raise web.HTTPBadRequest(text="send {exercise: NAME}: GET /api/exercises lists them")
    state = await portal.state(participant)
    if state.name in portal.resetting:
        raise web.HTTPConflict(text="your lab is being reset: run it when the lab is back")
    try:
        run = portal.exercises.start(
            participant,
            state.name,
            name,
            portal.engine_of(state.name),
            portal.grades.lab_lock(state.name),
        )
    except ExerciseBusy as err:
        raise web.HTTPTooManyRequests(text=str(err)) from None
    except InputError as err:
        raise web.HTTPBadRequest(text=f"{err.message}; {err.hint}") from None
    return web.json_response(run, status=202)


async def exercise_status(request: web.Request) -> web.Response:
    participant = participant_of(request)
    return web.json_response(request.app[PORTAL].exercises.status(participant))


async def exercise_run(request: web.Request) -> web.Response:
    participant = participant_of(request)
    run = request.app[PORTAL].exercises.get(participant, request.match_info["rid"])
    if run is None:
        raise web.HTTPNotFound(text="no such exercise run of yours")
    return web.json_response(run)


async def reset(request: web.Request) -> web.Response:
    participant = participant_of(request)
    portal = request.app[PORTAL]
    lab = await portal.lab_of(participant)
    if (await body_json(request)).get("confirm") != lab:
        raise web.HTTPBadRequest(text=f"confirm the reset with {{'confirm': '{lab}'}}")
    return await _reset(portal, participant, lab)


async def _reset(portal: Portal, participant: str, lab: str) -> web.Response:
    """Down and up of this one lab, with the same labels; terminals into it end first."""
    if lab in portal.resetting:
        raise web.HTTPConflict(text="that lab is being reset already")
    since = time.monotonic() - portal.resets.get(lab, -1e9)
    if since < RESET_INTERVAL:
        raise web.HTTPTooManyRequests(text=f"one reset every {RESET_INTERVAL:.0f} s")
    portal.resetting.add(lab)
    portal.resets[lab] = time.monotonic()
    try:
        await portal.terminals.close_participant(participant, "the lab is being reset")
        started = time.monotonic()
        await portal.call(_down_up, portal, participant, lab, who=participant)
    except HoplabError as err:
        raise web.HTTPInternalServerError(text=f"reset failed: {err.message}") from None
    finally:
        portal.resetting.discard(lab)
        portal.resets[lab] = time.monotonic()  # the interval runs from the end of a reset
        portal.state_cache.drop(lab)
    return web.json_response({"reset": lab, "seconds": round(time.monotonic() - started, 1)})


def lab_topology(engine: EngineAPI, lab: str, fallback: Path | None) -> Path:
    """The file a room's lab was made from, when it still exists, else the room's topology."""
    state = engine.state(lab)
    source = Path(state.source) if state.source else None
    return source if source and source.is_file() else resources.topology_file(fallback)


def _down_up(portal: Portal, participant: str, lab: str) -> None:
    """On the lab's own engine, which keeps the lab: its placement label stays as it was."""
    engine = portal.engine_of(lab)
    state = engine.state(lab)
    topo = load(lab_topology(engine, lab, portal.topology))  # a bad file must not leave it gone
    labels = portal.seat_labels(participant, state)
    with portal.grades.lab_lock(lab):  # never under a check run
        engine.down(lab)
        lifecycle.up(engine, topo, lab, lambda *a: None, lambda m: None, labels=labels)


async def lesson_list(request: web.Request) -> web.Response:
    participant = participant_of(request)
    return web.json_response(request.app[PORTAL].learning.listing(participant))


async def _lesson_step(request: web.Request) -> tuple[Portal, str, str, Any, int]:
    """Who asks, their lab, and the lesson and step the body names (400 for an unknown one;
    no step: the participant's current one)."""
    participant = participant_of(request)
    portal = request.app[PORTAL]
    body = await body_json(request)
    try:
        lesson, number = lessonpanel.step_of(body.get("lesson"), body.get("step"))
    except InputError as err:
        raise web.HTTPBadRequest(text=f"{err.message} ({err.hint})") from None
    lab = await portal.lab_of(participant)
    if lab in portal.resetting:
        raise web.HTTPConflict(text="your lab is being reset: try again when it is back")
    return portal, participant, lab, lesson, number or portal.learning.current(participant, lesson)


async def _in_lab(
    portal: Portal, participant: str, lab: str, what: str, fn: Callable[..., Any], *args: Any
) -> Any:
    """fn(engine, lab, *args) in the participant's lane, one show or verify of theirs at a time
    (429 for another), and never on the check workers."""
    try:
        with portal.learning.turn(participant):
            return await portal.call(fn, portal.engine_of(lab), lab, *args, who=participant)
    except lessonpanel.Busy as err:
        raise web.HTTPTooManyRequests(text=str(err)) from None
    except HoplabError as err:
        raise web.HTTPServiceUnavailable(text=f"cannot {what}: {err.message}") from None


async def lesson_show(request: web.Request) -> web.Response:
    """The step, filled with the participant's own lab's names; its captures start now."""
    portal, participant, lab, lesson, number = await _lesson_step(request)
    passed = portal.learning.passed(participant, lesson.name)
    doc = await _in_lab(
        portal, participant, lab, "show the step", lessonpanel.show, lesson, number, passed
    )
    portal.learning.shown(participant, lesson.name, number)
    return web.json_response(doc)


async def lesson_verify(request: web.Request) -> web.Response:
    """The step's verify in the participant's own lab: learning progress, never a grade."""
    portal, participant, lab, lesson, number = await _lesson_step(request)
    failures = portal.learning.failures(participant, lesson.name, number)
    result = await _in_lab(
        portal, participant, lab, "verify", lessonpanel.verify, lesson, number, failures
    )
    portal.learning.record(participant, lesson.name, number, result["passed"])
    result["lesson"], result["step"] = lesson.name, number
    result["progress"] = sorted(portal.learning.passed(participant, lesson.name))
    return web.json_response(result)


# --- instructor ---------------------------------------------------------------------------------


async def room(request: web.Request) -> web.Response:
    instructor_only(request)
    portal = request.app[PORTAL]
    seats = await portal.seats(fresh=True)

    def read(engine: EngineAPI) -> list[LabState]:
        return [s for s in engine.labs() if s.name in set(seats.values())]

    engines = [e for n, e in portal.engines.items() if n not in portal.unreachable]
    states = await asyncio.gather(*(portal.call(read, e) for e in engines))
    by_lab = {s.name: s for part in reversed(states) for s in part}  # the first engine wins
    rows = []
    for participant, lab in sorted(seats.items()):
        state = by_lab.get(lab)
        run = portal.grades.running.get(participant)
        rows.append(
            {
                "participant": participant,
                "lab": lab,
                "engine": portal.where.get(lab, ""),
                "nodes": len(state.nodes) if state else 0,
                "running": sum(n.state == "running" for n in state.nodes) if state else 0,
                "last_activity": portal.activity.get(participant),
                "resetting": lab in portal.resetting,
                "check": run and {"assignment": run["assignment"], "state": run["state"]},
                "terminals": [t.info() for t in portal.terminals.of(participant)],
                "grades": {
                    name: {k: g[k] for k in ("passed", "total", "ok", "when")}
                    for name, g in portal.grades.latest.get(participant, {}).items()
                },
                "lessons": portal.learning.summary(participant),
            }
        )
    names = [a.name for a in grading.catalogue()]
    return web.json_response(
        {
            "room": portal.room,
            "assignments": names,
            "participants": rows,
            "engines": list(portal.engines),
            "unreachable": portal.unreachable,
        }
    )


async def room_reset(request: web.Request) -> web.Response:
    instructor_only(request)
    portal = request.app[PORTAL]
    participant = request.match_info["participant"]
    await body_json(request)
    return await _reset(portal, participant, await portal.lab_of(participant))


# Learning progress beside the grades, in columns of its own: never part of a score.
LESSON_COLUMNS = ("lesson steps passed", "stuck on lesson step", "stuck for (s)")


def lesson_cells(summary: dict[str, Any]) -> list[str]:
    stuck = summary["stuck"]
    where = f"{stuck['lesson']} {stuck['step']}" if stuck else ""
    return [
        f"{summary['passed']}/{summary['total']}",
        where,
        str(stuck["seconds"]) if stuck else "",
    ]


async def export_csv(request: web.Request) -> web.Response:
    instructor_only(request)
    portal = request.app[PORTAL]
    names = [a.name for a in grading.catalogue()]
    seats = await portal.seats(fresh=True)
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["participant", *names, *LESSON_COLUMNS])
    for participant in sorted(set(seats) | set(portal.grades.latest)):
        got = portal.grades.latest.get(participant, {})
        out.writerow(
            [
                participant,
                *(f"{got[n]['passed']}/{got[n]['total']}" if n in got else "" for n in names),
                *lesson_cells(portal.learning.summary(participant)),
            ]
        )
    return web.Response(
        text=buf.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{portal.room}-grades.csv"'},
    )


async def export_results(request: web.Request) -> web.Response:
    """Gradescope's results.json for each participant and assignment, keyed by participant;
    beside them, under "lessons" (no assignment has that name), learning progress, no score."""
    instructor_only(request)
    portal = request.app[PORTAL]
    seats = await portal.seats(fresh=True)
    body = {
        participant: {
            **{
                name: g["gradescope"]
                for name, g in sorted(portal.grades.latest.get(participant, {}).items())
            },
            "lessons": portal.learning.summary(participant),
        }
        for participant in sorted(set(seats) | set(portal.grades.latest))
    }
    return web.Response(
        text=json.dumps(body, indent=2),
        content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{portal.room}-results.json"'},
    )


async def watch_ws(request: web.Request) -> web.StreamResponse:
    instructor_only(request)
    portal = request.app[PORTAL]
    term = portal.terminals.get(request.match_info["participant"], request.match_info["tid"])
    if term is None:
        raise web.HTTPNotFound(text="no such terminal")
    ws = web.WebSocketResponse(protocols=(PROTOCOL,), heartbeat=30, max_msg_size=4096)
    await ws.prepare(request)
    await portal.terminals.attach(term, ws, readonly=True, token=ws_token(request) or "")
    return ws


# --- the application ----------------------------------------------------------------------------


def make_app(portal: Portal) -> web.Application:
    app = web.Application(middlewares=[headers, auth], client_max_size=MAX_BODY)
    app[PORTAL] = portal
    app.router.add_get("/", index)
    app.router.add_get("/{kind:[pi]}/", page)
    app.router.add_get("/static/{name}", asset)
    app.router.add_get("/api/me", me)
    app.router.add_get("/api/assignments", assignments)
    app.router.add_get("/api/topology.svg", topology_svg)
    app.router.add_post("/api/terminals", open_terminal)
    app.router.add_delete("/api/terminals/{tid}", close_terminal)
    app.router.add_get("/ws/terminal/{tid}", terminal_ws)
    app.router.add_get("/ws/wire", wire_ws)
    app.router.add_post("/api/check", start_check)
    app.router.add_get("/api/check", check_status)
    app.router.add_get("/api/exercises", exercise_list)
    app.router.add_post("/api/exercises", start_exercise)
    app.router.add_get("/api/exercises/run", exercise_status)
    app.router.add_get("/api/exercises/runs/{rid}", exercise_run)
    app.router.add_post("/api/reset", reset)
    app.router.add_get("/api/lessons", lesson_list)
    app.router.add_post("/api/lessons/show", lesson_show)
    app.router.add_post("/api/lessons/verify", lesson_verify)
    app.router.add_get("/api/room", room)
    app.router.add_post("/api/room/{participant}/reset", room_reset)
    app.router.add_get("/api/room/grades.csv", export_csv)
    app.router.add_get("/api/room/results.json", export_results)
    app.router.add_get("/ws/watch/{participant}/{tid}", watch_ws)

    async def background(app: web.Application) -> Any:
        reaper = asyncio.create_task(portal.terminals.reap())
        yield
        reaper.cancel()
        await portal.wires.close_all()
        await portal.terminals.close_all()

    app.cleanup_ctx.append(background)
    return app
