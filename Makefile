# Two commands matter: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_BIN := $(firstword $(wildcard /usr/lib/postgresql/*/bin))
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Everything by default; `make test MARKERS="not slow"` for the quick loop.
MARKERS ?= slow or not slow

.PHONY: demo test lint services screenshots install clean

demo: install
	$(BIN)/ddm demo

test: install services lint
	$(BIN)/python -m pytest -m "$(MARKERS)"

lint: install
	$(BIN)/ruff check ddm model tasks cli web migrations tests bench
	$(BIN)/lint-imports

install: $(STAMP)

$(STAMP): pyproject.toml
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch and torchvision are pinned in pyproject.toml and lie on the build machines' disk.
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The tests start their own throwaway PostgreSQL cluster and Redis server, and drive Debian's
# chromium through chromium-driver; this target only makes sure those binaries are installed
# (the browser test uses them at their system paths and downloads nothing).
services:
	@missing="$$([ -n "$(PG_BIN)" ] || echo postgresql; \
		command -v redis-server >/dev/null || echo redis-server; \
		[ -x /usr/bin/chromium ] || echo chromium; \
		[ -x /usr/bin/chromedriver ] || echo chromium-driver)"; \
	if [ -n "$$missing" ]; then \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null && command -v redis-server >/dev/null
	@[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]

# The README's screenshots of `ddm serve`, taken by the browser test on its real catalog.
screenshots: install services
	DDM_SCREENSHOT_DIR=docs/screenshots $(BIN)/python -m pytest -q -m browser tests/web/test_browser.py

clean:
	rm -rf $(VENV) .ddm .pytest_cache
