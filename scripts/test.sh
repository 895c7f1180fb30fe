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

set -e
echo "== style: cargo fmt --check, cargo clippy -D warnings"
cargo fmt --all --check
cargo clippy --locked --workspace --all-targets --quiet -- -D warnings
bash scripts/test-services.sh start
# shellcheck disable=SC1091
source .tools/run/env
cargo build --locked --workspace --all-targets
set +e

status=0
echo "== embedded backends: SQLite, files, .eml files"
# The outage tests run their own production services: once, in the production pass.
cargo test --locked --workspace --all-targets --no-fail-fast -- --skip outage_ 2>&1 | tee -a "$LOG" || status=1
echo "== production backends: MariaDB, S3 (s3s-fs), SMTP (maildev)"
AUDIOMILL_TEST_BACKENDS=production cargo test --locked --all-targets --no-fail-fast \
  -p audiomill -p audiomill-store 2>&1 | tee -a "$LOG" || status=1

echo "== generated requests against the gateway's own OpenAPI document (schemathesis)"
if FUZZ_SECONDS=30 bash scripts/fuzz-api.sh >"$LOG.fuzz" 2>&1; then
  echo "fuzz-api: no 5xx, every answer as documented"
else
  status=1; cat "$LOG.fuzz"; echo "fuzz-api: FAILED"
fi
rm -f "$LOG.fuzz"

echo
awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "all suites: %d passed, %d failed\n", p, f }' "$LOG"
exit $status
