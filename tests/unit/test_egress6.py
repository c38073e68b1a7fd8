"""The IPv6 host rules' script and the refusal when they cannot be put in place (no Docker)."""

from __future__ import annotations

import pytest

from hoplab.engine import egress, egress6
from hoplab.errors import HoplabError


def test_bridged_frames_return_before_the_drops_and_the_host_is_closed() -> None:
    text = egress6.script()
    inserts = [ln for ln in text.split("; ") if " -I " in ln]
    # The RETURN goes in first, at the top: no DROP is ever above it, not even for a moment.
    assert "-I FORWARD 1 " in inserts[0] and "--physdev-is-bridged" in inserts[0]
    assert "-j RETURN" in inserts[0]
    assert any("-I INPUT 1 -i hl-+" in ln and "-j DROP" in ln for ln in inserts)
    assert all(egress6.TAG in ln for ln in inserts)
    assert egress.BRIDGE_PREFIX + "+" in text


def test_an_ipv6_lab_is_refused_when_the_rules_cannot_be_installed(monkeypatch) -> None:
    asked = []

    def fake_apply(client, image, mode, text=None):
        asked.append((mode, text))
        return 3, "no working ip6tables on the engine's host"

    monkeypatch.setattr(egress, "apply", fake_apply)
    with pytest.raises(HoplabError) as info:
        egress6.ensure(object(), "hoplab/node")
    assert "IPv6 labs are refused" in info.value.message
    assert "no working ip6tables" in info.value.message and "nothing was created" in info.value.hint
    assert asked == [("install", egress6.script())]


@pytest.mark.parametrize("module", [egress, egress6])
def test_rules_go_in_at_their_listed_positions_in_order(module) -> None:
    """Inserted in RULES order at positions 1, 2, 3 within each chain (never reversed at 1)."""
    inserts = [ln for ln in module.script().split("; ") if " -I " in ln]
    seen: dict[str, int] = {}
    for line, (chain, rule) in zip(inserts, module.RULES, strict=True):
        seen[chain] = seen.get(chain, 0) + 1
        assert line.strip().endswith(f"-I {chain} {seen[chain]} {rule}"), line
