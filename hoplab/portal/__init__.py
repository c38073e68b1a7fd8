"""The workshop portal: one process serves a room, a browser tab per participant.

Layers inside: tokens (who is asking), terminals (TTY execs pumped to websockets), grades (check
runs and their latest results), lessons (the lesson panel's steps, verifies and learning
progress), limits (request rates), server (aiohttp routes that tie a token to its own lab only).
Every Docker call goes through hoplab.engine; aiohttp is imported only here, never by the CLI's
other commands.
"""
