# tablehub: `make run` sets everything up and runs the hub; `make test` sets everything
# up and runs the whole suite (ruff, mypy --strict, pytest). Both work on a fresh Debian
# machine as root: they install what is missing (python3-venv, mosquitto, Python packages).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
APT    := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get
HUB_ARGS ?=

.PHONY: run test lint typecheck pytest setup system-deps clean

run: setup
	$(BIN)/hub serve $(HUB_ARGS)

test: setup system-deps lint typecheck pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

pytest: setup system-deps
	$(BIN)/pytest $(PYTEST_ARGS)

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "installing python3-venv"; $(APT) update -qq && $(APT) install -y -qq python3-venv python3-pip; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# Debian packages the suite drives for real: mosquitto_sub/mosquitto_pub, and mosquitto for
# the contract tests on an external broker (each test starts its own, on a free port). A
# mosquitto installed here is kept from starting as a system service, which would hold
# port 1883 against `make run`.
system-deps:
	@missing=""; \
	command -v mosquitto_sub >/dev/null || missing="$$missing mosquitto-clients"; \
	test -x /usr/sbin/mosquitto || command -v mosquitto >/dev/null || missing="$$missing mosquitto"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; $(APT) update -qq && $(APT) install -y -qq $$missing; \
	  case "$$missing" in *" mosquitto"|*" mosquitto "*) \
	    (systemctl disable --now mosquitto || service mosquitto stop) >/dev/null 2>&1 || true;; esac; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
