#!/usr/bin/env bash
# `make fuzz-api`: schemathesis (from PyPI) against a running gateway's own /swagger.json,
# logged in, every operation: no answer may be a 5xx, and every answer must be one the
# document describes (status, content type, headers, body schema).
#   FUZZ_SECONDS   time budget of the run (default 300); `make test` runs a short one.
# The gateway runs as `audiomill dev` (embedded backends, its own Temporal dev server) with rate
# limits raised, so the generated requests reach the logic behind the limiter.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/venv/bin:$PATH"
BUDGET=${FUZZ_SECONDS:-300}
SCHEMATHESIS_VERSION=4.32.5
VENV=.tools/fuzz

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "fuzz-api: installing schemathesis $SCHEMATHESIS_VERSION"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
cargo build --quiet --locked --workspace --bins

WORK=$(mktemp -d)
GATEWAY=""
cleanup() {
  [ -n "$GATEWAY" ] && kill "$GATEWAY" 2>/dev/null && wait "$GATEWAY" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
API=http://127.0.0.1:$PORT
export RATE_LIMIT_PER_MINUTE=1000000 LOGIN_ATTEMPTS_PER_MINUTE=1000000 REPLAYS_PER_MINUTE=1000000 \
  RUST_LOG=warn
./target/debug/audiomill dev --listen "127.0.0.1:$PORT" --data-dir "$WORK" >"$WORK/gateway.log" 2>&1 &
GATEWAY=$!
for _ in $(seq 150); do curl -sf "$API/health" >/dev/null && break; sleep 0.2; done
./target/debug/audiomill user add --data-dir "$WORK" --email fuzz@example.com \
  --password fuzz-password-123 >/dev/null
token() {
  curl -sf -X POST -u fuzz@example.com:fuzz-password-123 "$API/login" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

# One finished job, so that the job operations are tried on a job that exists, not only 404s.
ffmpeg -hide_banner -loglevel error -f lavfi -i "testsrc=size=64x64:rate=5" -f lavfi -i "sine=frequency=440" \
  -t 1 -c:v libx264 -preset ultrafast -c:a aac "$WORK/clip.mp4"
FIRST_TOKEN=$(token)
JOB=$(curl -sf -H "Authorization: Bearer $FIRST_TOKEN" -F "file=@$WORK/clip.mp4" "$API/upload" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["job_id"])')
for _ in $(seq 150); do
  curl -sf -H "Authorization: Bearer $FIRST_TOKEN" "$API/status/$JOB" | grep -q '"completed"' && break
  sleep 0.2
done
# Every check runs on every operation. Where a request the document allows may still be
# refused for what only the server can know, the refusals it may give are named, each with why:
cat >"$WORK/schemathesis.toml" <<TOML
[parameters]
"path.job_id" = "$JOB"
"query.fid" = "$JOB"

# A range beyond the end of the MP3 is 416: the document cannot know the file's length.
[[operations]]
include-path-regex = "^/download"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", 401, 403, 404, 409, 416, 429]

# A cursor is opaque: only one the service gave names a page.
[[operations]]
include-name = "GET /jobs"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404, 429]

# An endpoint's URL must resolve to public addresses, now: a generated host does not.
[[operations]]
include-name-regex = "^(POST|PATCH) /webhooks"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404, 409, 429]

# A generated file is no video (415), its name's extension may not be an accepted one (415),
# and a callback URL must resolve to public addresses (400).
[[operations]]
include-name = "POST /upload"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 409, 413, 415, 422, 429]

# A key's expiry must be in the future and its name visible, and the credentials scope (or,
# for a user, the admin scope) is never granted: what a schema cannot say.
[[operations]]
include-name = "POST /api-keys"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 409, 429]

# Only the account's own current password changes it.
[[operations]]
include-name = "PUT /me/password"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 429]

# An address the schema takes may still be no e-mail address, only a secret this service
# mailed (and nobody spent) resets a password or makes an account, sign-up may be closed, and
# an address may have an account already.
[[operations]]
include-name-regex = "^POST /(password/|signup|invitations)"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 409, 429]

# An upload token's output choices are checked as an upload's fields are, beside each other,
# and its file size within MAX_FILE_SIZE: what a schema cannot say.
[[operations]]
include-name = "POST /upload-tokens"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 429]

# A link must resolve to public addresses, now (a generated host does not), and a connection
# named must be one of the caller's; a connection's endpoint likewise, and its bucket a name
# S3 allows; a watch's connection must be the caller's.
[[operations]]
include-name-regex = "^POST /(imports|connections|watches)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 409, 413, 422, 429, 503]

# A resumable upload's headers carry what the document cannot check: an upload that exists
# (404, 410), where it stands (409), a body of the right type and size (413, 415), a checksum
# that matches (460), the lease another request may hold (423), the file's name (415).
[[operations]]
include-path-regex = "^/uploads"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404, 409, 410, 412, 413, 415, 422, 423, 429, 460]
TOML

fuzz() { # extra schemathesis arguments...
  PYTHONPATH=scripts SCHEMATHESIS_HOOKS=fuzz_hooks "$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run "$API/swagger.json" \
    --checks all \
    --phases examples,coverage,fuzzing,stateful --workers 1 --no-color "$@"
}

status=0
echo "fuzz-api: every operation but /logout and the deletions, ${BUDGET} s"
# /logout and DELETE /me/logins end the login whose token the others use, and DELETE removes
# the job they look at: each gets a run of its own afterwards.
fuzz -H "Authorization: Bearer $FIRST_TOKEN" --exclude-path /logout --exclude-method DELETE \
  --max-time "$BUDGET" || status=1
echo "fuzz-api: DELETE /jobs/{job_id} and the other deletions"
fuzz -H "Authorization: Bearer $(token)" --include-method DELETE --exclude-path /me/logins \
  --max-time 20 || status=1
echo "fuzz-api: DELETE /me/logins"
fuzz -H "Authorization: Bearer $(token)" --include-path /me/logins --max-time 20 || status=1
echo "fuzz-api: /logout"
fuzz -H "Authorization: Bearer $(token)" --include-path /logout --max-time 20 || status=1
if grep -q '"level":"ERROR"\|panicked' "$WORK/gateway.log"; then
  echo "fuzz-api: the gateway logged errors:"; grep '"level":"ERROR"\|panicked' "$WORK/gateway.log" | head -20
fi
exit $status
