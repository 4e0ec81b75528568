# quanta — the two entry points are `make demo` and `make test`; both work on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)
STAMP := $(VENV)/.deps-$(shell cat requirements-dev.txt | md5sum | cut -c1-8)
RUST_SRC := $(shell find rust -name '*.rs' -o -name Cargo.toml) Cargo.toml pyproject.toml
BUILT := $(VENV)/.built

.PHONY: all demo test test-rust test-python lint bench build clean fmt wheel-check

all: test

$(STAMP): requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@rm -f $(VENV)/.deps-*; touch $@

$(BUILT): $(STAMP) $(RUST_SRC)
	$(VENV)/bin/maturin develop --release -q
	@touch $@

build: $(BUILT)

demo: $(BUILT)
	$(PY) -m quanta.demo

fmt:
	cargo fmt --all
	$(VENV)/bin/ruff format python tests benches
	$(VENV)/bin/ruff check --fix python tests benches

lint: $(BUILT)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -q -- -D warnings
	@! grep -n 'allow_threads' rust/quanta-py/src/*.rs | grep -v '^rust/quanta-py/src/gil.rs' \
		|| (echo "allow_threads outside gil.rs" && false)
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/ruff format --check python tests benches
	$(VENV)/bin/mypy --strict python/quanta
	$(VENV)/bin/python -m mypy.stubtest quanta._core --allowlist .stubtest-allowlist

# the wheel must ship the stubs and the PEP 561 marker (maturin has dropped them before)
wheel-check: $(STAMP)
	rm -rf dist && $(VENV)/bin/maturin build --release -q -o dist
	$(PY) -c "import sys, zipfile, glob; n = zipfile.ZipFile(glob.glob('dist/*.whl')[0]).namelist(); \
	missing = [f for f in ('quanta/py.typed', 'quanta/_core.pyi', 'quanta/data/sift_ngt5k.npz', 'quanta/data/sift_ngt5k.LICENSE.txt') if f not in n]; \
	sys.exit(f'wheel lacks {missing}') if missing else print('wheel ok:', len(n), 'files')"

test-rust:
	cargo test --workspace --release -q
	QUANTA_SIMD=scalar cargo test -p quanta-core --release -q --test simd_parity

# The full suite at the CPU's best SIMD level, then the not-slow tests again at every lower level
# the CPU offers (avx2 on an AVX-512 machine, scalar everywhere), so a divergence that only one
# level shows fails CI on the machine that has the level. pytest's exit 5 (no test ran) fails too.
test-python: $(BUILT)
	$(PY) -m pytest -q tests
	@levels="$$($(PY) -c 'import quanta; print(" ".join(reversed(quanta.available_simd_levels()[:-1])))')"; \
	test -n "$$levels" || { echo "no lower SIMD level found"; exit 1; }; \
	for lvl in $$levels; do \
		echo "== again at QUANTA_SIMD=$$lvl =="; \
		QUANTA_SIMD=$$lvl $(PY) -m pytest -q tests -m "not slow" || exit $$?; \
	done

# all checks: format, lint, types, stubs, Rust tests, Python tests (at every SIMD level the CPU has)
test: lint test-rust test-python wheel-check

bench: $(BUILT)
	$(PY) -m pip install -q matplotlib
	$(PY) benches/compare_faiss.py

clean:
	rm -rf target $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
