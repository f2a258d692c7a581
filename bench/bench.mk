# Benchmarks (issue #7), included by the Makefile. `make bench` sets up what it needs (the
# venv, the `bench` extra, Debian's mosquitto) and runs every workload:
# about 19 minutes on the 2-core machine. It prints the Markdown table and writes
# bench/results/<timestamp>.json and bench/results/latest.md. Options go through BENCH_ARGS:
#   make bench BENCH_ARGS=--quick                       # about 2.5 minutes
#   make bench BENCH_ARGS="--workloads storm --targets hub,socketio"
#   make bench BENCH_ARGS="--hub-src /tmp/hub-snapshot" # a frozen tree, while others edit

BENCH_ARGS ?=

.PHONY: bench

# `setup` (the Makefile's) installs the `bench` extra with the dev tools, so that ruff and
# mypy check bench/ in `make test` too; `system-deps` installs Debian's mosquitto.
bench: setup system-deps
	$(BIN)/python -m bench $(BENCH_ARGS)
