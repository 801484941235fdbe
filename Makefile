# kdbench — `make bench` runs the full default benchmark, `make test` runs the tests.
# Both create the virtual environment first when needed.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.kdbench-installed
# Where `make bench` writes. Not results/: that folder holds the committed leaderboard records,
# which `make test` validates; `make bench BENCH_RESULTS=results` refreshes them.
BENCH_RESULTS ?= .kdbench/bench-results
# The embedded protocols (their data ships with kdbench; bench.protocols.embedded_protocols()):
# mnist5k, and the same with an adversarially trained teacher. tests/test_protocols.py checks the
# list against the registry.
BENCH_PROTOCOLS ?= mnist5k mnist5k-robust

.PHONY: install bench smoke test test-unit test-slow test-all perf perf-gpu doctor clean

install: $(STAMP)

# Idempotent: reruns only when pyproject.toml changes or the venv is missing.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	@# The torchattacks wheel carries a stale copy of robustbench/ that may overwrite the real
	@# one depending on install order: put robustbench's own files back, last.
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall \
		"robustbench==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("robustbench"))')"
	$(BIN)/kdbench doctor
	touch $(STAMP)

bench: install
	for p in $(BENCH_PROTOCOLS); do \
		$(BIN)/kdbench run --protocol $$p --results-dir $(BENCH_RESULTS) || exit 1; \
	done

smoke: install
	$(BIN)/kdbench run --smoke

test: install
	$(BIN)/python -m pytest -m "not slow"

# The inner loop: no CLI runs, no training beyond a few seconds, no browser.
test-unit: install
	$(BIN)/python -m pytest -m "not slow and not integration and not browser"

test-slow: install
	$(BIN)/python -m pytest -m slow

test-all: install
	$(BIN)/python -m pytest

perf: install
	$(BIN)/python -m pytest tests/benchmarks --benchmark-enable --benchmark-only -s

# Throughput of the cifar10 protocol's parts on the GPU, and the estimated wall time of one seed
# of its full benchmark (bench/perf.py); writes perf-gpu.json too.
perf-gpu: install
	$(BIN)/python -m bench.perf --device cuda --protocol cifar10 --json perf-gpu.json

doctor: install
	$(BIN)/kdbench doctor

clean:
	rm -rf $(VENV) .kdbench .pytest_cache .benchmarks
