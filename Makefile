# Persys: `make run` starts a local cluster with the example manifests; `make test` lints, then runs the tests.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PERSYS := $(VENV)/bin/persys
APT_PACKAGES := etcd-server etcd-client docker.io docker-compose busybox-static git curl chromium
PYTEST_ARGS ?=

.PHONY: setup apt venv dockerd image test run bench lint clean

setup: apt venv dockerd image

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	python3 -m venv --help >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

dockerd:
	@scripts/ensure-dockerd.sh

image: dockerd
	@scripts/ensure-image.sh

# lint first: a tree that does not type-check or breaks a layer fails before the slow tests start
test: setup lint
	$(PY) -m pytest $(PYTEST_ARGS)

run: setup
	@scripts/run.sh

bench: setup
	$(PY) bench/run.py

# ruff everywhere, mypy --strict on persys/, and import-linter's layer contracts (pyproject.toml)
lint: venv
	$(VENV)/bin/ruff check persys tests bench examples
	$(VENV)/bin/mypy persys
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
