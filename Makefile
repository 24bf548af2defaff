# Hive Lab: two commands on a fresh machine.
#   make lab    set everything up and open JupyterLab on notebooks/HiveOS.ipynb
#               (as root too; more Jupyter flags: make lab LAB_ARGS="--no-browser --port 9000")
#   make test   set everything up and run the whole test suite (lint, types, every test)
#   make test-fast   the direct tests for development (no server, browser, real Claude or load)
.PHONY: lab test test-fast lint setup setup-test bench clean

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh --test

lab: setup
	.venv/bin/hive-lab lab $(LAB_ARGS)

test: setup-test lint
	.venv/bin/python -m pytest

# The direct tests: no Jupyter server, no browser, no real Claude, no load (about 20 s).
FAST_TESTS = tests/unit tests/orchestrate tests/test_status.py tests/test_render.py \
	tests/test_procs.py tests/test_tmux_env.py tests/test_budgets.py tests/test_usage.py \
	tests/test_gitwatch.py

test-fast: setup-test lint
	.venv/bin/python -m pytest -m "not e2e and not browser and not slow" -q $(FAST_TESTS)

lint:
	.venv/bin/ruff check hive_lab tests benchmarks scripts
	.venv/bin/mypy

bench: setup-test
	.venv/bin/python benchmarks/run_all.py

clean:
	rm -rf .venv .cache benchmarks/_work .pytest_cache
