# Two commands matter: `make demo` and `make test`. Both install everything first, from uv.lock.
# Only Python 3.11+ is needed beforehand: uv itself is installed into .tools/ on first use.

PYTHON ?= python3
UV := .tools/bin/uv
export UV_COMPILE_BYTECODE := 1
# Imports of great_expectations, mlflow and prefect are 2x slower without compiled bytecode.
export PYTHONDONTWRITEBYTECODE :=
export OMP_NUM_THREADS ?= 1

.PHONY: demo test install browser bench bench-web clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv

.venv/.installed: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --quiet
	touch $@

install: .venv/.installed

demo: install
	$(UV) run --frozen tidlig demo

# Browser tests drive the system's Chromium (Debian's package); Playwright's own download is not used.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests ..."; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Two workers: most slow tests wait on subprocesses, servers and the browser, so two at a time
# fit CI's two cores. A test file stays on one worker, so its module fixtures are made once.
test: install browser
	$(UV) run --frozen pytest -n 2 --dist loadfile

clean:
	rm -rf .tidlig .venv .tools .pytest_cache

# Benchmarks print their numbers; each compares against a reference on the same data in the same run.
bench: install
	$(UV) run --frozen python bench/synth_bench.py --persons 650000
	$(UV) run --frozen python bench/ingest_bench.py
	$(UV) run --frozen python bench/features_bench.py --persons 650000
	$(UV) run --frozen python bench/rules_bench.py
	$(UV) run --frozen python bench/pipeline_bench.py --persons 100000 650000 6000000 --prefect
	$(UV) run --frozen python bench/deployed_eval_bench.py --persons 100000

# 50 concurrent caseworkers against the web app on a store of 1,000,000 flags.
bench-web: install
	$(UV) run --frozen python bench/web_load.py
