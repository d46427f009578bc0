# The one place that says how to install, check, test and demo wgfleet.
# `make demo` and `make test` are the README's two commands; both are safe to run twice.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
APT_PACKAGES := python3 python3-venv iproute2 wireguard-tools wireguard-go bird2 \
	openssh-server openssh-client fping iputils-ping nftables procps util-linux sudo chromium
STAMP_APT := $(VENV)/.apt-done
STAMP_VENV := $(VENV)/.install-done

.PHONY: help deps venv lint typecheck unit test demo bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

deps: $(STAMP_APT)  ## install the Debian packages the lab and the product need (root)

$(STAMP_APT): Makefile
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@mkdir -p $(VENV) && touch $@

venv: $(STAMP_VENV)  ## create the virtualenv with wgfleet and its dev tools

$(STAMP_VENV): pyproject.toml | $(STAMP_APT)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

lint: venv  ## ruff (lint + format check)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: venv  ## mypy --strict on the package
	$(BIN)/mypy

unit: venv  ## unit tests only (seconds)
	$(BIN)/pytest -q -m 'not lab'

test: deps venv lint typecheck  ## the whole suite: lint, types, unit and lab end-to-end tests
	$(BIN)/pytest -q

demo: deps venv  ## lab up, roll the article's VPN out, verify it, ping across sites
	$(BIN)/wgfleet lab up
	$(BIN)/wgfleet inventory check
	$(BIN)/wgfleet apply
	$(BIN)/wgfleet verify --wait 90
	ip netns exec wgl-main-s1 ping -c 3 2001:db8:a3::1
	ip netns exec wgl-main-s1 ping -c 3 10.0.3.1
	@echo "The lab stays up: try '.venv/bin/wgfleet verify', '.venv/bin/wgfleet lab status';"
	@echo "remove it with '.venv/bin/wgfleet lab down'."

bench: deps venv  ## print benchmark figures (ratios against baselines measured in the same run)
	$(BIN)/python bench/lab_updown.py
	$(BIN)/python bench/plan_render.py
	$(BIN)/python bench/apply.py
	$(BIN)/python bench/verify.py
	$(BIN)/python bench/runbook.py

clean:  ## remove the virtualenv and caches (the lab is left alone: `wgfleet lab down`)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist src/*.egg-info
