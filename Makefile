# relaynet — every target does its own set-up on a fresh machine (Python 3.11, gcc, node/npm).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
ANVIL_DIR := tools/anvil
ANVIL_STAMP := $(ANVIL_DIR)/node_modules/.relaynet-installed
ETHERS_DIR := tools/ethers
ETHERS_STAMP := $(ETHERS_DIR)/node_modules/.relaynet-installed
VENV_STAMP := $(VENV)/.relaynet-installed

.PHONY: setup venv anvil ethers redis netns promtool bench-tools test lint unit unit-fast fuzz bench devnet contracts vectors clean multihost

PROMTOOL_DIR := tools/prometheus
export PATH := $(CURDIR)/$(PROMTOOL_DIR)/usr/bin:$(PATH)

setup: venv anvil ethers redis netns promtool

venv: $(VENV_STAMP)
$(VENV_STAMP): pyproject.toml setup.py protocol/_trie_accel.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

anvil: $(ANVIL_STAMP)
$(ANVIL_STAMP): $(ANVIL_DIR)/package.json
	cd $(ANVIL_DIR) && npm install --include=optional --no-audit --no-fund --loglevel=error
	test -n "$$(ls $(ANVIL_DIR)/node_modules/@foundry-rs/anvil-*/bin/anvil 2>/dev/null)"
	touch $@

# ethers v6 for the tests' JavaScript dApp (tests/adversarial_gateway/ethers_dapp.cjs)
ethers: $(ETHERS_STAMP)
$(ETHERS_STAMP): $(ETHERS_DIR)/package.json
	cd $(ETHERS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian packages where missing (we are root on CI and dev machines): $(call apt,COMMAND,PACKAGE)
define apt
	@command -v $(1) >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null); \
	  else echo "$(1) is missing: install it (apt-get install $(2))" >&2; exit 1; fi; }
	@command -v $(1) >/dev/null
endef

redis:
	$(call apt,redis-server,redis-server)

# iproute2 for the multi-host tests' network namespaces (tests/support/netns.py)
netns:
	$(call apt,ip,iproute2)

# promtool (Debian's prometheus package) checks the alert rules in deploy/. The package is
# unpacked into tools/ rather than installed, so no Prometheus daemon is started.
promtool:
	@command -v promtool >/dev/null || { \
	  (apt-get update -qq >/dev/null 2>&1 || true) && rm -rf $(PROMTOOL_DIR) && mkdir -p $(PROMTOOL_DIR) \
	  && cd $(PROMTOOL_DIR) && apt-get download -qq prometheus >/dev/null \
	  && dpkg-deb -x prometheus_*.deb . && rm -f prometheus_*.deb; }
	@command -v promtool >/dev/null

# Load generator and the one-hop reference proxy for the benchmarks.
bench-tools:
	$(call apt,wrk,wrk)
	$(call apt,nginx,nginx)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check protocol session
	$(VENV)/bin/mypy

unit: setup
	$(VENV)/bin/pytest

# The fast lane: every test that starts no process (anvil, redis, our servers) — see tests/conftest.py.
unit-fast: setup
	$(VENV)/bin/pytest -m "not slow"

test: setup lint unit

# The multi-host run in Linux network namespaces (root): eight hosts on 10.213.7.0/24, faults one
# after the other under bounded load (tests/multihost/scenario.py). MULTIHOST_REPORT=FILE keeps
# the phases' counts and timings as JSON lines.
multihost: setup
	$(call apt,nft,nftables)
	$(VENV)/bin/pytest tests/multihost/scenario.py -s -p no:cacheprovider

# The fuzzers of tests/adversarial with a long budget (make test runs them for a few seconds).
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz $(VENV)/bin/pytest tests/adversarial -q --timeout=0

bench: setup bench-tools
	$(PY) -m bench

contracts: venv
	$(PY) -m ledger.build

vectors: venv
	$(VENV)/bin/relaynet dev vectors --seed 1 --out vectors.json

devnet: setup
	$(VENV)/bin/relaynet devnet up

clean:
	rm -rf $(VENV) $(ANVIL_DIR)/node_modules $(ETHERS_DIR)/node_modules .pytest_cache .mypy_cache .ruff_cache
