#!/usr/bin/env bash
# Small requests and streaming (the eleventh section of `make bench`; it also runs alone),
# against `audiomill dev` on this machine, small requests with Debian's `wrk`:
#   - `GET /health` at the most the gateway answers: 2 wrk threads, 64 connections, 10 s;
#   - `GET /status/{id}` of a completed job with its owner's token at about 1 000 requests a
#     second (20 connections, each waiting 20 ms between requests): the rate reached, and the
#     median and p99 latency;
#   - a 1 GB upload and download through dev's embedded file store, against curl into a null
#     sink and nginx serving the same file.
# Prints table rows for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/venv/bin:$PATH"
# shellcheck source=scripts/install.sh
source scripts/install.sh
INSTALL_WHO=bench apt_install_missing wrk nginx-light
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bench_begin

echo "11/13 small requests..." >&2
port=$(free_port); api=http://127.0.0.1:$port
# The abuse limits raised: the run measures the service, not the limiter.
RUST_LOG=warn DATA_DIR="$WORK/data" LISTEN_ADDR="127.0.0.1:$port" RATE_LIMIT_PER_MINUTE=10000000 \
  MAX_FILE_SIZE=2048 QUOTA_JOBS_PER_DAY=0 QUOTA_STORAGE_MB=0 \
  "$BIN" dev >"$WORK/dev.log" 2>&1 &
PIDS+=($!)
wait_up "$api"
token=$(dev_admin_token "$WORK/data" "$api")
ff -f lavfi -i "testsrc=size=160x120:rate=10" -f lavfi \
  -i "sine=frequency=440" -t 2 -c:v libx264 -preset ultrafast -c:a aac "$WORK/clip.mp4"
job=$(curl -sf -H "Authorization: Bearer $token" -F "file=@$WORK/clip.mp4" "$api/upload" | json '["job_id"]')
until [ "$(curl -sf -H "Authorization: Bearer $token" "$api/status/$job" | json '["status"]')" = completed ]; do sleep 0.2; done

# wrk's summary: "Requests/sec" and the latency distribution's 50% and 99% lines.
summary() { # WRK-OUTPUT-FILE
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(label):
    value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.M).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"{rate:.0f} {ms('50%'):.2f} {ms('99%'):.2f} {errors.group(1) if errors else 0}")
PY
}

wrk -t2 -c64 -d10s --latency "$api/health" >"$WORK/health.txt"
read -r health_rate health_p50 health_p99 health_errors < <(summary "$WORK/health.txt")
cat >"$WORK/paced.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $token"
function delay() return 20 end
LUA
wrk -t2 -c20 -d10s --latency -s "$WORK/paced.lua" "$api/status/$job" >"$WORK/status.txt"
read -r status_rate status_p50 status_p99 status_errors < <(summary "$WORK/status.txt")
[ "$health_errors" = 0 ] && [ "$status_errors" = 0 ] ||
  { echo "errors: /health $health_errors, /status $status_errors" >&2; exit 1; }

# Streaming through dev's embedded file store, where no S3 server shares the work: a 1 GB
# upload against the same curl into a null sink (scripts/null_sink.py), and a 1 GB download
# against nginx sending the same file from disk; best of 2 each.
python3 - "$WORK/clip.mp4" "$WORK/big.mp4" <<'PY'
import sys
head = open(sys.argv[1], "rb").read()
with open(sys.argv[2], "wb") as out:
    out.write(head)
    out.truncate(1024 ** 3)
PY
sink_port=$(free_port); nginx_port=$(free_port)
python3 scripts/null_sink.py "$sink_port" &
PIDS+=($!)
mkdir -p "$WORK/static" && ln "$WORK/big.mp4" "$WORK/static/big.mp3"
static_server "$WORK/static" "$nginx_port" &
PIDS+=($!)
sleep 1
upload_best_of_2() { # URL [CURL-ARGS...]: seconds, and the last answer in $WORK/answer.json
  for _ in 1 2; do curl -sf -o "$WORK/answer.json" -w '%{time_total}\n' "${@:2}" -F "file=@$WORK/big.mp4" "$1"; done | sort -n | head -1
}
sink_s=$(upload_best_of_2 "http://127.0.0.1:$sink_port/upload")
upload_s=$(upload_best_of_2 "$api/upload" -H "Authorization: Bearer $token")
big_job=$(json '["job_id"]' <"$WORK/answer.json")
until curl -sf -H "Authorization: Bearer $token" "$api/status/$big_job" | json '["status"]' | grep -qE 'completed|failed'; do sleep 0.2; done
# A finished job whose MP3 is then replaced by the gigabyte: what is measured is moving it.
ln -f "$WORK/big.mp4" "$WORK/data/objects/mp3/$big_job.mp3"
read -r download_s download_bytes < <(fetch_best_of_2 "$api/download/$big_job" -H "Authorization: Bearer $token")
read -r static_s static_bytes < <(fetch_best_of_2 "http://127.0.0.1:$nginx_port/big.mp3")
[ "$download_bytes" = $((1024 ** 3)) ] && [ "$static_bytes" = $((1024 ** 3)) ] ||
  { echo "a download was cut short: $download_bytes / $static_bytes bytes" >&2; exit 1; }
mbps() { python3 -c "print(f'{1024 / $1:.0f} MB/s')"; }
of() { python3 -c "print(f'{$2 / $1:.2f}')"; }

echo "| GET /health, 64 connections for 10 s: requests a second (median / p99) | 40 000 a second | $health_rate (${health_p50} ms / ${health_p99} ms) |"
echo "| GET /status/{id} of a completed job with its token, paced to about 1 000 a second: rate reached, median / p99 | p99 under 5 ms | $status_rate a second, ${status_p50} ms / ${status_p99} ms |"
echo "| 1 GB upload into dev (embedded file store), against the same curl into a null sink, best of 2 | 0.9 of the sink | $(mbps "$upload_s") against $(mbps "$sink_s") ($(of "$upload_s" "$sink_s")) |"
echo "| 1 GB download from dev (embedded file store), against nginx sending the same file from disk, best of 2 | 0.9 of nginx | $(mbps "$download_s") against $(mbps "$static_s") ($(of "$download_s" "$static_s")) |"
