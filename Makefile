# Nova: `make run` starts the daemon with an example function, `make test` runs every test.
# Both create .venv and install what they need; nothing else has to be on PATH but python3.11.
SHELL := /bin/bash
# The distro's python3.11 first: Debian builds it with PGO and LTO, and it ran Nova's invoke path
# on ~25 % less CPU than a plain source build (pyenv's default) on the same host
# (docs/performance.md). Any Python >= 3.11 with the venv module works.
PYTHON_BOOT ?= $(shell for candidate in /usr/bin/python3.11 python3.11 python3; do \
	command -v $$candidate >/dev/null && $$candidate -c 'import ensurepip, venv' 2>/dev/null \
	&& { command -v $$candidate; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_DIR ?= .nova-data

.PHONY: run test lint typecheck bench clean venv system-deps runtimes

# Debian packages the sandboxes need: bwrap, setpriv + nsenter (util-linux), libseccomp, runsc
# (the gvisor backend), slirp4netns and nft (nftables) for functions with network: true, and
# debootstrap for runtime images (`nova image build`), and for the microvm backend QEMU
# (qemu-system-x86), the guest kernel (linux-image-cloud-amd64), busybox-static for the guest's
# initramfs and e2fsprogs for its drives.

venv: $(STAMP)

# Installs the sandbox's system packages when they are missing: with apt as root, otherwise it
# prints the one command to run (the daemon then reports the container backend unavailable).
system-deps:
	@missing=""; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	command -v setpriv >/dev/null || missing="$$missing util-linux"; \
	command -v runsc >/dev/null || missing="$$missing runsc"; \
	ldconfig -p 2>/dev/null | grep -q libseccomp.so.2 || missing="$$missing libseccomp2"; \
	command -v slirp4netns >/dev/null || missing="$$missing slirp4netns"; \
	[ -x /usr/sbin/nft ] || missing="$$missing nftables"; \
	[ -x /usr/sbin/debootstrap ] || missing="$$missing debootstrap"; \
	command -v qemu-system-x86_64 >/dev/null || missing="$$missing qemu-system-x86"; \
	ls /boot/vmlinuz-*-cloud-amd64 >/dev/null 2>&1 || missing="$$missing linux-image-cloud-amd64"; \
	[ -x /bin/busybox ] || missing="$$missing busybox-static"; \
	[ -x /usr/sbin/debugfs ] || missing="$$missing e2fsprogs"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v cc >/dev/null || missing="$$missing gcc"; \
	$(RUNTIME_CHECKS) \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing system packages:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		else \
			echo "the sandboxes need:$$missing — run: sudo apt-get install -y$$missing"; \
		fi; \
	fi

# The language runtimes Nova runs beyond Python (`runtimes`): their interpreters and compilers
# from Debian (Go, Rust and Java are compiled in the background after create/update).
# curl and gcc are for custom runtimes (the Bash and C example bootstraps and their tests).
RUNTIME_CHECKS = command -v node >/dev/null || missing="$$missing nodejs npm"; \
	command -v ruby >/dev/null || missing="$$missing ruby"; \
	command -v php >/dev/null || missing="$$missing php-cli"; \
	[ -x /usr/lib/go/bin/go ] || command -v go >/dev/null || missing="$$missing golang-go"; \
	[ -x /usr/bin/rustc ] || command -v rustc >/dev/null || missing="$$missing rustc"; \
	[ -x /usr/bin/javac ] || command -v javac >/dev/null || missing="$$missing default-jdk-headless";

# Installs every runtime's toolchain this host lacks (GET /runtimes lists what is missing).
runtimes:
	@missing=""; $(RUNTIME_CHECKS) \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else echo "run: sudo apt-get install -y$$missing"; fi; \
	else echo "every runtime Nova can run is installed"; fi

$(STAMP): pyproject.toml
	@test -n "$(PYTHON_BOOT)" || { echo "no Python >= 3.11 with the venv module: apt-get install python3.11-venv"; exit 1; }
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP) system-deps
	$(VENV)/bin/nova daemon --data-dir $(DATA_DIR) --example

test: $(STAMP) system-deps
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: $(STAMP) system-deps
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } || echo "wrk missing: throughput is skipped (apt-get install wrk)"
	$(PY) -m bench.run --out bench/results.json

clean:
	rm -rf $(VENV) $(DATA_DIR) .pytest_cache .mypy_cache .ruff_cache
