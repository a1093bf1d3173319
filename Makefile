# The two README commands. Both create the environment first (tools/setup_env.sh: a no-op once it is complete).
VENV ?= .venv
PY := $(VENV)/bin/python
export FEATQUANT_VENV := $(abspath $(VENV))

.PHONY: env demo test bench

env:
	bash tools/setup_env.sh

demo: env
	$(PY) tools/demo.py $(DEMO_ARGS)

# pytest exits 5 when it collected no test: that is a failure here, like any other non-zero exit.
# -n auto: one pytest worker per core (pytest-xdist); much of the suite is single-threaded (imports, codecs).
# --dist loadfile: a file's tests run on one worker, so a module fixture (a shared study, demo or training run) runs
# once, not once per worker.
test: env
	$(PY) -m pytest tests -n auto --dist loadfile $(PYTEST_ARGS)

bench: env
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done
