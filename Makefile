# Audiomill. `make run` for the all-in-one service, `make test` for the whole suite.
SHELL := /bin/bash
# The Temporal CLI lives in .tools/venv (see scripts/setup.sh); cargo in ~/.cargo/bin.
export PATH := $(CURDIR)/.tools/venv/bin:$(HOME)/.cargo/bin:$(PATH)

LISTEN ?= 127.0.0.1:8080
DATA_DIR ?= ./data

.PHONY: setup build run test bench fuzz-api openapi fmt lint clean

setup:
	@bash scripts/setup.sh

build: setup
	cargo build --locked --workspace --bins

run: build
	./target/debug/audiomill dev --listen $(LISTEN) --data-dir $(DATA_DIR)

test: setup
	bash scripts/test.sh

bench: setup
	bash scripts/bench.sh

fuzz-api: setup
	bash scripts/fuzz-api.sh

# Regenerates the committed OpenAPI document after an API change, and the Rust client from it.
openapi:
	cargo run --quiet --locked --bin audiomill -- openapi > openapi/openapi.json
	cargo run --quiet --locked -p audiomill-client-codegen

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings

clean:
	cargo clean
