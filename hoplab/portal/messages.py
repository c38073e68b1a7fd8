"""What a page sends on a websocket: JSON objects, one a message.

The terminals and the wire panel read their sockets the same way, and a page (or whoever holds
its token) can send anything: a binary frame, text that is not JSON, JSON that is not an object.
Such a message is skipped, never an error, so a bad page cannot end the socket's handler.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import WSMsgType, web


async def objects(ws: web.WebSocketResponse) -> AsyncIterator[dict[str, Any]]:
    """Each JSON object the page sends, until the socket closes."""
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        try:
            body = json.loads(msg.data)
        except ValueError:
            continue
        if isinstance(body, dict):
            yield body
