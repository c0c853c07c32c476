# mocodec: `make demo` (install + main job on the embedded photos), `make test` (install + tests).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
OUT ?= outputs/demo

.PHONY: install demo lint test test-all bench browser stretch clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,detect,vlm,anchors]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m mocodec.demo --out $(OUT)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install
	$(PY) -m pytest -q

test-all: install
	$(PY) -m pytest -q -m ""

bench: install
	$(PY) benchmarks/run_all.py

# One stretch of a long recipe (the machine codec's training, issue 25): MINUTES of training, every run
# resumable, its state kept in training_state/<recipe>/ (commit that folder after). The same command
# continues on any clone; ACCELERATOR=gpu trains the stretch on a GPU, the runs and their state unchanged.
RECIPE ?= configs/experiments/machine_codec.yaml
MINUTES ?= 60
JOBS ?= 2
stretch: install
	$(VENV)/bin/mocodec experiment --config $(RECIPE) --jobs $(JOBS) --minutes $(MINUTES) \
		--state training_state/$(basename $(notdir $(RECIPE))) $(if $(ACCELERATOR),--accelerator $(ACCELERATOR))

# headless Chromium and its driver (Debian packages) for the report page's browser test, which skips without them
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

clean:
	rm -rf $(VENV) outputs .pytest_cache
