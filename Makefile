# hoplab: `make lab` runs the whole catalogue on the default lab; `make test` runs the suite.
# Everything a fresh machine lacks is installed here: the venv, the package, mmdebstrap.

PYTHON  ?= python3
VENV    := .venv
HOPLAB  := $(VENV)/bin/hoplab
NODE    ?= alice
KEEP    ?= 0
ARTIFACTS ?= artifacts
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: lab test unit up down shell status clean setup image sysdeps lint bench

setup: $(VENV)/.installed sysdeps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,portal]'
	touch $@

# No container registry may be reachable: the base image is then bootstrapped with mmdebstrap.
sysdeps:
	@command -v mmdebstrap >/dev/null 2>&1 || { \
	  echo "installing mmdebstrap (bootstraps the Debian base image offline)"; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q mmdebstrap >/dev/null; }
	@command -v chromedriver >/dev/null 2>&1 || { echo "installing chromium-driver (the portal's browser test)"; $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q -o DPkg::Lock::Timeout=600 chromium chromium-driver >/dev/null; }
	@command -v dot >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1 || { echo "installing graphviz (topology pictures) and chromium (report test)"; $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q -o DPkg::Lock::Timeout=600 graphviz chromium >/dev/null; }

image: setup
	$(HOPLAB) build

# Up, every exercise, the report, then down (unless KEEP=1), even after a failure or Ctrl-C.
lab: image
	@mkdir -p $(ARTIFACTS)
	@set -e; \
	if [ "$(KEEP)" != "1" ]; then trap '$(HOPLAB) down' EXIT; fi; \
	$(HOPLAB) up; \
	$(HOPLAB) run --artifacts $(ARTIFACTS) --json $(ARTIFACTS)/report.json --junit $(ARTIFACTS)/junit.xml

test: image
	$(VENV)/bin/ruff check hoplab tests bench hosts examples
	$(VENV)/bin/ruff format --check hoplab tests bench hosts examples
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q --durations=25
	$(VENV)/bin/pytest -q -n 2 examples

# ruff for style; lint-imports for the layer rules in pyproject.toml ([tool.importlinter]); mypy
# for the types ([tool.mypy]: the engine boundary, and the engine and the model strictly).
lint: setup
	$(VENV)/bin/ruff check hoplab tests bench hosts examples
	$(VENV)/bin/ruff format --check hoplab tests bench hosts examples
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# The Docker-free tier, in seconds: tests/unit and the files whose tests need no engine (those
# marked docker are left out). DOCKER_HOST leads nowhere, so a test that reaches for an engine
# fails here rather than passing on the machine's. Two Docker-free files stay in `make test`
# only, for their time: test_topology_fuzz.py (hypothesis) and test_layers.py (lint-imports
# runs per probe; `make lint` checks the contracts themselves).
UNIT_TESTS := tests/unit tests/test_topology.py tests/test_plan.py tests/test_corpus.py \
	tests/test_evidence.py tests/test_image.py tests/test_api.py tests/test_workshop.py \
	tests/test_plugin.py tests/test_portal.py tests/test_draw.py tests/test_portal_wire.py
unit: setup
	DOCKER_HOST=unix:///nonexistent/hoplab-unit.sock \
	  $(VENV)/bin/pytest -q -n 2 -m "not docker and not slow" $(UNIT_TESTS)

up: image
	$(HOPLAB) up

down: setup
	$(HOPLAB) down

status: setup
	$(HOPLAB) status

shell: setup
	$(HOPLAB) shell $(NODE)

clean: setup
	$(HOPLAB) clean

# Bring-up and teardown beside docker-compose and a plain docker-py loop; `hoplab verify` latency
# per lesson step (p95 target 1 s); the portal's wire panel, wire to browser at 100 frames/s and
# /api/me with a room of 20 watching (p95 budget 300 ms); table + JSON.
bench: image
	$(VENV)/bin/python bench/bench.py --out bench-results/bench.json
	$(VENV)/bin/python bench/sizes.py --out bench-results/sizes.json
	$(VENV)/bin/python bench/reuse.py --out bench-results/reuse.json
	$(VENV)/bin/python bench/impair.py --out bench-results/impair.json
	$(VENV)/bin/python bench/draw.py --out bench-results/draw.json
	$(VENV)/bin/python bench/verify.py --out bench-results/verify.json
	$(VENV)/bin/python bench/wire.py --out bench-results/wire.json

# Drawing a generated 100-node topology (SVG, PNG) and a long ladder; no Docker needed.
.PHONY: bench-draw
bench-draw: setup
	$(VENV)/bin/python bench/draw.py --out bench-results/draw.json

# A workshop room: twenty default labs up at once, checked, down with zero leftovers; table + JSON.
.PHONY: bench-room
bench-room: image
	$(VENV)/bin/python bench/room.py --out bench-results/room.json
	$(VENV)/bin/python bench/portal.py --out bench-results/portal.json
	$(VENV)/bin/python bench/engines.py --out bench-results/engines.json

# The figures and counts in README.md and docs/*.md, from bench-results/*.json and the tree.
.PHONY: docs
docs: setup
	$(VENV)/bin/python bench/docs.py
