# mocodec: `make demo` (install + main job on the embedded photos), `make test` (install + tests).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
OUT ?= outputs/demo

.PHONY: install demo lint test test-all bench browser clean

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

# headless Chromium and its driver (Debian packages) for the report page's browser test, which skips without them
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

clean:
	rm -rf $(VENV) outputs .pytest_cache
