#!/usr/bin/env bash
# `make test`: the style checks (formatting, clippy), then every test, twice for the integration
# suites: once on the embedded backends
# (SQLite, files, .eml files) and once on the production backends (MariaDB, S3, SMTP), which
# scripts/test-services.sh starts on 127.0.0.1 and stops again at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/venv/bin:$PATH"
# One build from scratch: incremental caches would only cost disk (gigabytes, per test binary).
export CARGO_INCREMENTAL=0
LOG=$(mktemp)
trap 'bash scripts/test-services.sh stop >/dev/null 2>&1; rm -f "$LOG"' EXIT
STARTED=$SECONDS
# Each phase says when it starts, in minutes since the start, so a slow phase shows itself.
phase() { printf '== [%dm%02ds] %s\n' $(((SECONDS - STARTED) / 60)) $(((SECONDS - STARTED) % 60)) "$*"; }

set -e
# cargo-nextest comes with these machines; where it does not, it is installed once.
if ! cargo nextest --version >/dev/null 2>&1; then
  phase "installing cargo-nextest 0.9.143 (crates.io, once)"
  cargo install cargo-nextest --version 0.9.143 --locked
fi
phase "style: cargo fmt --check, cargo clippy -D warnings"
cargo fmt --all --check
cargo clippy --locked --workspace --all-targets --quiet -- -D warnings
phase "test services"
bash scripts/test-services.sh start
# shellcheck disable=SC1091
source .tools/run/env
phase "web app: eslint, unit tests (node --test)"
node web/check.mjs >"$LOG.web" 2>&1 || { cat "$LOG.web"; rm -f "$LOG.web"; exit 1; }
grep -E '^# (pass|fail) ' "$LOG.web" | tr '\n' ' '; echo; rm -f "$LOG.web"
phase "build"
cargo build --locked --workspace --all-targets
set +e

status=0
# cargo-nextest runs every test in a process of its own under a deadline (.config/nextest.toml).
phase "embedded backends: SQLite, files, .eml files"
# The outage tests run their own production services: once, in the production pass.
# The compose stack's test runs in its own phase, below, with a Docker engine.
cargo nextest run --locked --workspace --all-targets -E 'not test(outage_) and not test(compose_stack)' 2>&1 | tee -a "$LOG" || status=1
phase "production backends: MariaDB, S3 (s3s-fs), SMTP (maildev)"
# The whole workspace is selected and filtered, so that it is the build above, not another.
AUDIOMILL_TEST_BACKENDS=production cargo nextest run --locked --workspace --all-targets \
  -E '(package(audiomill) | package(audiomill-store)) and not test(compose_stack)' 2>&1 | tee -a "$LOG" || status=1

phase "generated requests against the gateway's own OpenAPI document (schemathesis)"
if FUZZ_SECONDS=30 bash scripts/fuzz-api.sh >"$LOG.fuzz" 2>&1; then
  echo "fuzz-api: no 5xx, every answer as documented"
else
  status=1; cat "$LOG.fuzz"; echo "fuzz-api: FAILED"
fi
rm -f "$LOG.fuzz"

phase "the compose stack, for real (Docker, deploy/compose)"
bash scripts/compose-test.sh 2>&1 | tee -a "$LOG" || status=1

echo
# nextest's last line of each pass: "Summary [ 1.234s] N tests run: P passed, F failed, ..."
awk '/^ *Summary \[/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^timed/) f += $i } }
     END { printf "all suites: %d passed, %d failed\n", p, f }' "$LOG"
phase "done"
exit $status
