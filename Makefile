# tablehub: `make run` sets everything up and runs the hub; `make test` sets everything
# up and runs the whole suite (ruff, mypy --strict, pytest). Both work on a fresh Debian
# machine as root: they install what is missing (python3-venv, Python packages, npm packages
# for the pages, mosquitto and Debian's chromium for the tests).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
APT    := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get
# quiet (errors still show), and only what is asked for: chromium's recommends would pull in
# ~160 more packages (avahi-daemon, udev, cups helpers...) that headless tests do not use
APT_INSTALL := $(APT) install -y -qq --no-install-recommends -o=Dpkg::Use-Pty=0
NODE_STAMP := node_modules/.installed-$(shell cksum < package-lock.json | cut -d' ' -f1)
HUB_ARGS ?=

.PHONY: run test lint typecheck pytest setup assets system-deps clean

run: setup assets
	$(BIN)/hub serve $(HUB_ARGS)

test: setup assets system-deps lint typecheck pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

# pytest under coverage: the hubs, bridges and Pi nodes the tests start are measured too
# ([tool.coverage.run] in pyproject.toml), and so are pytest-xdist's workers (subprocesses
# as well); the floor is checked on full runs only. The suite runs on PYTEST_WORKERS workers
# (most tests wait on brokers and subprocesses, not on the CPU); the CPU hogs listed in
# tests/support/scheduling.py run on one worker, one at a time (`--dist loadgroup`).
# Targeted runs: `make pytest PYTEST_ARGS=tests/state`, in one process with PYTEST_WORKERS=0.
COV_DIR := .coverage-data
PYTEST_WORKERS ?= 4
pytest: setup assets system-deps
	@rm -rf $(COV_DIR)
	$(BIN)/coverage run -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=15 $(PYTEST_ARGS)
	@$(BIN)/coverage combine -q
	@$(BIN)/coverage json -q --fail-under=0 -o $(COV_DIR)/coverage.json
	@$(BIN)/python -m tests.support.coverage_summary $(COV_DIR)/coverage.json \
	  $(if $(PYTEST_ARGS),,--check-floor)

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "installing python3-venv"; $(APT) update -qq && $(APT_INSTALL) python3-venv python3-pip >/dev/null; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,bench,nats]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# The pages' browser packages (MQTT.js, a QR encoder), exactly as package-lock.json pins
# them; the web bridge serves them from node_modules, so phones need no internet.
assets: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { \
	  echo "installing nodejs and npm"; $(APT) update -qq && $(APT_INSTALL) nodejs npm >/dev/null; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian packages the suite drives for real: mosquitto_sub/mosquitto_pub, mosquitto for the
# contract tests on an external broker (each test starts its own, on a free port), and
# chromium for the pages' tests (driven by Playwright). A mosquitto installed here is kept
# from starting as a system service, which would hold port 1883 against `make run`.
system-deps:
	@missing=""; \
	command -v mosquitto_sub >/dev/null || missing="$$missing mosquitto-clients"; \
	test -x /usr/sbin/mosquitto || command -v mosquitto >/dev/null || missing="$$missing mosquitto"; \
	test -x /usr/bin/chromium || missing="$$missing chromium fonts-liberation"; \
	command -v tmux >/dev/null || missing="$$missing tmux"; \
	command -v jq >/dev/null || missing="$$missing jq"; \
	command -v zbarimg >/dev/null || missing="$$missing zbar-tools"; \
	test -f /usr/share/consolefonts/Lat15-Fixed16.psf.gz || missing="$$missing console-setup-linux"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; $(APT) update -qq && $(APT_INSTALL) $$missing >/dev/null; \
	  case "$$missing" in *" mosquitto"|*" mosquitto "*) \
	    (systemctl disable --now mosquitto || service mosquitto stop) >/dev/null 2>&1 || true;; esac; \
	fi

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis $(COV_DIR)

-include bench/bench.mk
