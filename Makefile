# nexus-o: `make run` (whole local pipeline), `make test` (test suite). Both set the machine up first.
SHELL := /bin/bash
PY_SYS ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= tiny
APT_PACKAGES := espeak-ng sox libcodec2-dev codec2 fortunes fortunes-zh fonts-dejavu-core fonts-wqy-microhei

# Offline by construction: nothing at run time may reach a model hub or phone home.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export DS_ACCELERATOR := cpu
export TOKENIZERS_PARALLELISM := false

.PHONY: setup system-deps run test test-fast test-slow lint bench compile lock clean

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing system packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

$(VENV)/.installed: requirements.lock pyproject.toml | system-deps
	test -x $(PY) || $(PY_SYS) -m venv $(VENV)
	$(PY) -m pip install -q -U pip wheel setuptools
	$(PY) -m pip install -q torch==2.13.0
	echo "torch==2.13.0" > $(VENV)/constraints.txt
	$(PY) -m pip install -q -c $(VENV)/constraints.txt -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m pip check
	touch $@

setup: system-deps $(VENV)/.installed

run: setup
	$(VENV)/bin/nexus-o run --profile $(PROFILE)

test: setup
	$(PY) -m pytest -m "not slow" -q
	$(PY) -m pytest -m slow -q

test-fast: setup
	$(PY) -m pytest -m "not slow" -q

test-slow: setup
	$(PY) -m pytest -m slow -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: setup
	$(PY) -m benchmarks.run

compile: setup
	$(VENV)/bin/nexus-o compile --profile cluster --out build/nexus-o-cluster.yaml

lock:
	$(PY) -m pip freeze --exclude-editable | grep -v '^torch==' > /tmp/nexus-freeze.txt
	{ head -4 requirements.lock; cat /tmp/nexus-freeze.txt; } > requirements.lock.new && mv requirements.lock.new requirements.lock

clean:
	rm -rf .nexus build
