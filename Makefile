# Audiomill. `make run` for the all-in-one service, `make test` for the whole suite.
SHELL := /bin/bash
# The Temporal CLI lives in .tools/venv (see scripts/setup.sh); cargo in ~/.cargo/bin.
export PATH := $(CURDIR)/.tools/venv/bin:$(HOME)/.cargo/bin:$(PATH)

LISTEN ?= 127.0.0.1:8080
DATA_DIR ?= ./data

.PHONY: setup build run test compose-test bench fuzz-api openapi web histories fmt lint clean

setup:
	@bash scripts/setup.sh

build: setup
	cargo build --locked --workspace --bins

run: build
	./target/debug/audiomill dev --listen $(LISTEN) --data-dir $(DATA_DIR)

test: setup
	bash scripts/test.sh

# The compose stack (deploy/compose) brought up for real and sent a job; FULL=1 builds
# Audiomill's image with the whole Dockerfile (about 25 minutes) instead of on the tests' binary.
compose-test: setup
	bash scripts/compose-test.sh

bench: setup
	bash scripts/bench.sh

fuzz-api: setup
	bash scripts/fuzz-api.sh

# Rebuilds the web app into web/dist (committed, and embedded in the binary), with its API
# types regenerated from the committed document: after changing web/ or the API.
web:
	@bash scripts/test-services.sh install-web
	node web/build.mjs

# Regenerates the committed OpenAPI document after an API change, and the Rust client from it.
# Built with the whole workspace's features, as `make build` and the tests build them (one
# package alone would build its dependencies again with other features).
openapi:
	cargo build --quiet --locked --workspace --bins
	./target/debug/audiomill openapi > openapi/openapi.json.new
	mv openapi/openapi.json.new openapi/openapi.json
	./target/debug/audiomill-client-codegen

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings

clean:
	cargo clean

# Records runs of every workflow into tests/histories/<patch set>/ (never overwriting one), which
# `make test` replays through the workflows as they are (workflows/tests/replay.rs): run it after
# adding a patch to a workflow (and to LIVE_PATCHES).
histories: setup
	AUDIOMILL_RECORD_HISTORIES=1 cargo nextest run --locked --workspace --all-targets \
	  -E 'test(runs_of_every_kind_replay_as_they_are_recorded)'
