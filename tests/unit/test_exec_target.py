"""Where an exec goes (issue 22), without Docker: an API stand-in that answers the calls
`inside.exec_target` makes (inspect a container, HEAD of a path in it through the archive URL).
The real engine is in tests/test_node_command.py."""

from __future__ import annotations

from dataclasses import dataclass, field

import docker.errors
import pytest

from hoplab.engine.inside import exec_target, missing_programs


@dataclass
class Answer:
    status_code: int


@dataclass
class FakeAPI:
    files: dict[str, set[str]]  # container -> paths that exist in it
    env: dict[str, list[str]] = field(default_factory=dict)
    running: bool = True
    heads: list[tuple[str, str]] = field(default_factory=list)

    def inspect_container(self, name: str) -> dict:
        if name not in self.files:
            raise docker.errors.NotFound(f"no container {name}")
        return {
            "Name": f"/{name}",
            "State": {"Running": self.running},
            "Config": {"Env": self.env.get(name)},
        }

    base_url = "http+docker://localhost"
    api_version = "1.41"

    def head(self, url: str, params: dict) -> Answer:
        prefix = f"{self.base_url}/v{self.api_version}/containers/"
        assert url.startswith(prefix) and url.endswith("/archive"), url
        container = url.removeprefix(prefix).removesuffix("/archive")
        self.heads.append((container, params["path"]))
        return Answer(200 if params["path"] in self.files[container] else 404)


SCRATCH = {"lab-srv": {"/usr/bin/ss", "/usr/bin/tcpdump"}, "lab-srv-app": {"/udphello"}}


def test_a_node_without_a_program_container_is_its_own_target() -> None:
    api = FakeAPI({"lab-bob": {"/usr/bin/ss"}})
    assert exec_target(api, "lab-bob", ["ss"]) == ("lab-bob", "")
    assert api.heads == []  # nothing to look for


def test_the_program_container_when_its_image_has_the_tool() -> None:
    api = FakeAPI(SCRATCH)
    assert exec_target(api, "lab-srv", ["/udphello"]) == ("lab-srv-app", "")
    assert exec_target(api, "lab-srv", []) == ("lab-srv-app", "")  # a file copy needs nothing


def test_a_missing_tool_falls_back_with_a_note_naming_it() -> None:
    api = FakeAPI(SCRATCH)
    target, note = exec_target(api, "lab-srv", ["env", "timeout", "ss"])
    assert target == "lab-srv"
    assert note.startswith("env, timeout, ss is not in the image of lab-srv-app"), note
    assert "lab-srv instead" in note


def test_a_stopped_program_has_nowhere_to_exec() -> None:
    api = FakeAPI(SCRATCH, running=False)
    assert exec_target(api, "lab-srv", ["/udphello"]) == ("lab-srv", "")


@pytest.mark.parametrize(
    ("env", "looked"),
    [
        (None, "/usr/local/sbin/tool"),  # Docker's default PATH, first entry
        (["PATH=/opt/bin:relative:/bin"], "/opt/bin/tool"),  # the image's own; relative skipped
    ],
)
def test_names_are_looked_up_in_the_containers_path(env: list[str] | None, looked: str) -> None:
    api = FakeAPI({"c": {"/bin/tool"}}, env={"c": env} if env else {})
    assert missing_programs(api, "c", ["tool", "tool", "/bin/tool", "nope"]) == ["nope"]
    assert api.heads[0] == ("c", looked)
    assert ("c", "relative/tool") not in api.heads
