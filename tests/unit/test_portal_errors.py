"""The portal's error answers, through its real middleware: every one carries the security
headers, and an unexpected failure is a plain 500 with one log line, never a traceback."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hoplab.portal.drawings import Drawings
from hoplab.portal.server import body_json, headers


async def _answers() -> list[tuple[int, dict, str]]:
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug with /secret/path in it")

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(await body_json(request))

    app = web.Application(middlewares=[headers])
    app.router.add_get("/broken", broken)
    app.router.add_post("/echo", echo)
    got = []
    async with TestClient(TestServer(app)) as client:
        for method, path, data in (
            ("GET", "/broken", None),
            ("POST", "/echo", "{" * 50_000),
            ("POST", "/echo", '{"a": ' * 100_000 + "1" + "}" * 100_000),
            ("GET", "/nowhere", None),
        ):
            kw = {"data": data, "headers": {"Content-Type": "application/json"}} if data else {}
            async with client.request(method, path, **kw) as r:
                got.append((r.status, dict(r.headers), await r.text()))
    return got


def test_every_error_has_the_headers_and_no_traceback(caplog):
    with caplog.at_level(logging.DEBUG):
        answers = asyncio.run(_answers())
    assert [status for status, _, _ in answers] == [500, 400, 400, 404]
    for _, got, text in answers:
        assert got["X-Frame-Options"] == "DENY" and "Content-Security-Policy" in got
        assert "Traceback" not in text and "/secret/path" not in text
    assert [r for r in caplog.records if r.exc_info] == []
    assert any("RuntimeError" in r.getMessage() for r in caplog.records)  # one line says what


def test_a_drawing_is_kept_per_lab_version():
    drawn = []

    async def go() -> list[str]:
        d = Drawings(per_window=3, window=60)

        async def draw() -> str:
            drawn.append(1)
            await asyncio.sleep(0.05)
            return f"svg{len(drawn)}"

        same = await asyncio.gather(*(d.get("lab", ("v1",), draw) for _ in range(10)))
        newer = await d.get("lab", ("v2",), draw)
        assert [d.allow("p") for _ in range(4)] == [True, True, True, False]
        assert d.allow("q")  # another participant has their own allowance
        return [*same, newer]

    got = asyncio.run(go())
    assert got == ["svg1"] * 10 + ["svg2"] and len(drawn) == 2
