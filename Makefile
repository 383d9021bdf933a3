# Two commands do everything (see README.md):
#   make demo   create .venv, install, and make flyers from the example brief
#   make test   install the test extras and run the whole suite (what CI runs)

# The first Python 3.11+ on PATH; override with `make demo PYTHON=/path/to/python3.12`.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && echo $$p && break; done)
VENV ?= .venv
PY := $(VENV)/bin/python
BRIEF ?= examples/briefs/bakery.toml

.PHONY: demo test lint format clean browser

$(PY):
	@test -n "$(PYTHON)" || { echo "error: Hyperlocal needs Python 3.11 or newer on PATH (or PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	@touch $@

# torch==2.13.0 is the CPU build (a bare torch requirement pulls a multi-GB CUDA build).
# open-clip-torch only for CLIP's vocabulary file: --no-deps keeps its torchvision out,
# which breaks beside the CPU build of torch.
$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[test,mlx,diffusers,dask]" "torch==2.13.0"
	$(PY) -m pip install --quiet --no-deps "open-clip-torch==3.3.0"
	@touch $@ $(VENV)/.installed

# The browser test of the Prefect UI drives Debian's chromium (Playwright downloads no
# browser). Installed where apt-get can (CI runs as root); elsewhere that test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get install -y -qq chromium >/dev/null 2>&1 || \
			{ apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; \
		else echo "note: no chromium and no root apt-get: the UI browser test will be skipped"; fi; }

demo: $(VENV)/.installed
	$(PY) -m flows.flyer --brief $(BRIEF)

test: $(VENV)/.installed-test browser
	$(PY) -m pytest
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

lint: $(VENV)/.installed-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(VENV)/.installed-test
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf output/flyer_runs .cache/hyperlocal .pytest_cache
