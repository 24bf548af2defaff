# Hive Lab: two commands on a fresh machine.
#   make lab    set everything up and open JupyterLab on notebooks/HiveOS.ipynb
#               (as root too; more Jupyter flags: make lab LAB_ARGS="--no-browser --port 9000")
#   make test   set everything up and run the whole test suite
.PHONY: lab test setup setup-test bench clean

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh --test

lab: setup
	.venv/bin/hive-lab lab $(LAB_ARGS)

test: setup-test
	.venv/bin/python -m pytest

bench: setup-test
	.venv/bin/python benchmarks/run_all.py

clean:
	rm -rf .venv .cache benchmarks/_work .pytest_cache
