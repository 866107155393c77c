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
	fi; \
	$(NPM_INSTALL)

# The language runtimes Nova runs beyond Python (`runtimes`): their interpreters and compilers
# from Debian (Go, Rust and Java are compiled in the background after create/update). Zig's
# compiler and WebAssembly's engine are PyPI wheels pinned in pyproject.toml: `make venv`.
# curl and gcc are for custom runtimes (the Bash and C example bootstraps and their tests).
# Rust: Debian's /usr/bin/rustc, the one Nova runs first; a rustup shim on PATH is not enough
# (without a default toolchain it fails every build).
RUNTIME_CHECKS = command -v node >/dev/null || missing="$$missing nodejs npm"; \
	command -v ruby >/dev/null || missing="$$missing ruby"; \
	command -v php >/dev/null || missing="$$missing php-cli"; \
	[ -x /usr/lib/go/bin/go ] || command -v go >/dev/null || missing="$$missing golang-go"; \
	[ -x /usr/bin/rustc ] || missing="$$missing rustc"; \
	[ -x /usr/bin/javac ] || command -v javac >/dev/null || missing="$$missing default-jdk-headless"; \
	command -v lua5.4 >/dev/null || missing="$$missing lua5.4"; \
	lua5.4 -e 'require "socket.http"' 2>/dev/null || missing="$$missing lua-socket"; \
	lua5.4 -e 'require "cjson"' 2>/dev/null || missing="$$missing lua-cjson";
# Deno and Bun come from the npm registry (their packages carry the binaries), pinned.
DENO_NPM = deno@2.9.6
BUN_NPM = bun@1.4.4
NPM_RUNTIME_CHECKS = npm_missing=""; \
	command -v deno >/dev/null || npm_missing="$$npm_missing $(DENO_NPM)"; \
	command -v bun >/dev/null || npm_missing="$$npm_missing $(BUN_NPM)";
# Installs the npm ones after apt (npm itself is one of the apt packages).
NPM_INSTALL = $(NPM_RUNTIME_CHECKS) \
	if [ -n "$$npm_missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v npm >/dev/null; then \
			echo "installing from npm:$$npm_missing"; \
			npm install -g --no-audit --no-fund --loglevel=error $$npm_missing; \
		else echo "run: sudo npm install -g$$npm_missing"; fi; \
	fi;

# Installs every runtime's toolchain this host lacks (GET /runtimes lists what is missing).
runtimes:
	@missing=""; $(RUNTIME_CHECKS) \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else echo "run: sudo apt-get install -y$$missing"; fi; \
	fi; \
	$(NPM_INSTALL) \
	echo "GET /runtimes (nova runtimes) lists what is available"

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
