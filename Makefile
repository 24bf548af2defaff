# Hive Lab: two commands on a fresh machine.
#   make lab    set everything up and open JupyterLab on notebooks/HiveOS.ipynb
#               (as root too; more Jupyter flags: make lab LAB_ARGS="--no-browser --port 9000")
#   make test   set everything up and run the whole test suite (lint, types, every test)
#   make test-fast   the quick subset for development: no real Claude, no browser, no load tests
.PHONY: lab test test-fast lint setup setup-test bench clean

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh --test

lab: setup
	.venv/bin/hive-lab lab $(LAB_ARGS)

test: setup-test lint
	.venv/bin/python -m pytest

test-fast: setup-test lint
	.venv/bin/python -m pytest -m "not e2e and not browser and not slow" -q

lint:
	.venv/bin/ruff check hive_lab tests benchmarks scripts
	.venv/bin/mypy

bench: setup-test
	.venv/bin/python benchmarks/run_all.py

clean:
	rm -rf .venv .cache benchmarks/_work .pytest_cache
