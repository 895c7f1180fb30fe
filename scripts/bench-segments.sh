#!/usr/bin/env bash
# Long videos in parts (the ninth section of `make bench`; it also runs alone): the service's
# wall time from upload done to MP3 ready against the ffmpeg CLI on the same file with the same
# settings (`-vn -c:a libmp3lame -q:a 2`), for 1-, 10- and 60-minute sources:
#   - `audiomill dev` as it ships (long sources in parts, one per transcode slot: two on two
#     cores), the same with parts turned off (SEGMENT_MIN_SECONDS=0): the single path, and
#     with no cap on the parts (SEGMENT_MAX_PARTS=0: parts of SEGMENT_SECONDS);
#   - a gateway and 1, 2 (and where the machine has the cores, 4) worker processes, each held
#     to one core by a CPU cgroup of its own, as on separate machines (needs root);
#   - for a 1 GB source in S3, fetching it whole against reading one part's byte range;
#   - how the joins sound: the worst 50 ms window (signal to noise against the source) of the
#     joined MP3 against one pass's, for speech, music and a sine (activities/tests/it/join.rs).
# Prints table rows for docs/benchmarks.md and writes the plot of wall time against length to
# docs/long-videos.png.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/venv/bin:$PATH"
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
cleanup_more() {
  sleep 1
  rmdir /sys/fs/cgroup/cpu/audiomill-segments-* 2>/dev/null || true
  if [ -n "${SERVICES_STARTED:-}" ]; then bash scripts/test-services.sh stop >/dev/null 2>&1; fi
}
bench_begin
python3 -c "import matplotlib" 2>/dev/null ||
  pip install -q --disable-pip-version-check "matplotlib==3.11.2"

now() { date +%s.%N; }
best() { sort -n | head -1; }
MINUTES=(1 10 60)

echo "9/13 long videos in parts..."
for m in "${MINUTES[@]}"; do
  # Music-like stereo 48 kHz AAC behind a tiny picture, as a phone records a concert.
  ff -f lavfi -i "color=size=64x64:rate=1" \
     -f lavfi -i "sine=frequency=440:sample_rate=48000" -f lavfi -i "anoisesrc=color=pink:amplitude=0.2:sample_rate=48000" \
     -filter_complex "[1][2]amix=inputs=2,aformat=channel_layouts=stereo[a]" -map 0:v -map "[a]" \
     -t $((m * 60)) -c:v libx264 -preset ultrafast -c:a aac -b:a 128k -movflags +faststart "$WORK/$m.mp4"
done
# Best of five, three for the hour: one run of a few seconds is at the mercy of this machine's
# noise (the CLI alone varies by a quarter from one minute to the next). The CLI runs right
# before each run of the service, on the same file, so that both meet the same noise; its best
# over all of them is the figure each ratio divides by.
runs() { [ "$1" -ge 60 ] && echo 3 || echo 5; }
declare -A cli halves
since() { python3 -c "print(f'{$(now) - $1:.2f}')"; }
cli_run() { # MINUTES: one CLI run, its seconds kept for the minimum
  local s half=$(($1 * 30))
  s=$(now); ff -i "$WORK/$1.mp4" -vn -c:a libmp3lame -q:a 2 "$WORK/cli.mp3"
  since "$s" >>"$WORK/cli-$1"
  # What two cores can do at best: the CLI on each half at once, no service around it.
  [ "$1" -ge 10 ] || return 0
  s=$(now)
  ff -i "$WORK/$1.mp4" -t "$half" -vn -c:a libmp3lame -q:a 2 "$WORK/first.mp3" &
  ff -ss "$half" -i "$WORK/$1.mp4" -vn -c:a libmp3lame -q:a 2 "$WORK/second.mp3"
  wait $!
  since "$s" >>"$WORK/halves-$1"
}

# Seconds from upload done (the job's row written) to MP3 ready (its `completed_at`), both as
# the service recorded them, best of `runs`. Status is polled once a second, as a client
# would, with curl alone: the figure does not depend on how often, and a poll must take no
# CPU from the conversion it measures. READY_SQL reads the row.
converted() { # API TOKEN FILE MINUTES
  for _ in $(seq "$(runs "$4")"); do
    local job status
    cli_run "$4"
    job=$(curl -sf -H "Authorization: Bearer $2" -F "file=@$3" "$1/upload" | json '["job_id"]')
    until status=$(curl -sf -H "Authorization: Bearer $2" "$1/status/$job" | grep -o '"status":"[a-z]*"') &&
      [[ "$status" =~ completed|failed ]]; do sleep 1; done
    [[ "$status" =~ completed ]] || { echo "a bench job failed" >&2; exit 1; }
    $READY_SQL "SELECT ROUND((completed_at - created_at) / 1000.0, 2) FROM jobs WHERE id = '$job'"
  done | best
}
sqlite() { python3 -c "import sqlite3, sys; print(f'{sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0]:.2f}')" "$@"; }
settings=(MAX_FILE_SIZE=4096 QUOTA_JOBS_PER_DAY=0 QUOTA_STORAGE_MB=0 RUST_LOG=warn
  JWT_SECRET=bench-secret-bench-secret-bench-secret DOWNLOAD_LINK_SECRET=bench-link-secret-bench-link-secret)

# `audiomill dev` with the settings given (NAME=VALUE...) after the lengths to convert
# ("10 60"): "minutes seconds" lines.
dev_run() { # "MINUTES..." [NAME=VALUE...]
  local lengths=$1 data port api token
  shift
  data=$WORK/dev-$(echo "$@" | tr -c 'A-Za-z0-9' '-')
  port=$(free_port); api=http://127.0.0.1:$port
  env "${settings[@]}" DATA_DIR="$data" LISTEN_ADDR="127.0.0.1:$port" MAX_CONCURRENT_TRANSCODES=2 \
    "$@" "$BIN" dev >"$data.log" 2>&1 &
  local pid=$!
  wait_up "$api"
  READY_SQL="sqlite $data/audiomill.db"
  token=$(dev_admin_token "$data" "$api")
  for m in $lengths; do echo "$m $(converted "$api" "$token" "$WORK/$m.mp4" "$m")"; done
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
declare -A single parts
while read -r m s; do parts[$m]=$s; done < <(dev_run "${MINUTES[*]}")
while read -r m s; do single[$m]=$s; done < <(dev_run "${MINUTES[*]}" SEGMENT_MIN_SECONDS=0)
# No cap on the parts: the hour in twelve parts of SEGMENT_SECONDS (300), as a worker takes it
# by default, against dev's one part per transcode slot.
read -r _ uncapped < <(dev_run 60 SEGMENT_MAX_PARTS=0)

# A gateway and N workers on the production backends, each worker held to one core.
declare -A scaled fetched
CORES=$(nproc)
if cpu_cgroups_writable; then
  bash scripts/test-services.sh start >/dev/null
  SERVICES_STARTED=1
  # shellcheck disable=SC1091
  source .tools/run/env
  temporal_port=$(free_port); api_port=$(free_port)
  temporal server start-dev --headless --ip 127.0.0.1 --port "$temporal_port" --log-level error >/dev/null 2>&1 &
  PIDS+=($!)
  mariadb --no-defaults -h127.0.0.1 -P"${TEST_MYSQL_URL##*:}" -uaudiomill -paudiomill -e "DROP DATABASE IF EXISTS segments; CREATE DATABASE segments"
  production=("${settings[@]}" TEMPORAL_ADDRESS="127.0.0.1:$temporal_port" DATA_DIR="$WORK/production"
    LISTEN_ADDR="127.0.0.1:$api_port" DATABASE_URL="$TEST_MYSQL_URL/segments" S3_BUCKET=segments
    S3_CREATE_BUCKET=true AWS_ENDPOINT_URL="$TEST_S3_ENDPOINT" AWS_ACCESS_KEY_ID="$TEST_S3_KEY"
    AWS_SECRET_ACCESS_KEY="$TEST_S3_SECRET" SMTP_URL="$TEST_SMTP_URL" MAX_CONCURRENT_TRANSCODES=1)
  env "${production[@]}" "$BIN" migrate >/dev/null
  env "${production[@]}" "$BIN" user add --email bench@example.com --password bench-password >/dev/null
  env "${production[@]}" "$BIN" gateway >"$WORK/gateway.log" 2>&1 &
  PIDS+=($!)
  api=http://127.0.0.1:$api_port
  wait_up "$api"
  READY_SQL="mariadb --no-defaults -h127.0.0.1 -P${TEST_MYSQL_URL##*:} -uaudiomill -paudiomill -N segments -e"
  token=$(curl -sf -X POST -u bench@example.com:bench-password "$api/login" | json '["access_token"]')
  counts=(1 2)
  [ "$CORES" -ge 4 ] && counts+=(4)
  for n in "${counts[@]}"; do
    workers=()
    for i in $(seq "$n"); do
      (
        enter_cpu_cgroup "audiomill-segments-$n-$i" 100000
        exec env "${production[@]}" WORK_DIR="$WORK/work-$n-$i" "$BIN" worker
      ) >"$WORK/worker-$n-$i.log" 2>&1 &
      workers+=($!); PIDS+=($!)
    done
    sleep 3
    scaled[$n]=$(converted "$api" "$token" "$WORK/10.mp4" 10)
    kill "${workers[@]}"; wait "${workers[@]}" 2>/dev/null || true
  done

  # A 1 GB source in the bucket, as a worker taking parts of a job it does not hold gets it:
  # fetched whole, against reading only one part's byte range (of two parts, of twelve).
  head -c 1G /dev/urandom >"$WORK/gig.bin"
  env "${production[@]}" "$TARGET"/examples/objects put sources/gig.mp4 "$WORK/gig.bin" >/dev/null
  rm -f "$WORK/gig.bin"
  for parts in 2 12; do
    while read -r how seconds; do fetched[$how-$parts]=$seconds; done \
      < <(env "${production[@]}" "$TARGET"/examples/objects fetch sources/gig.mp4 "$parts")
  done
fi

# How the joins sound (the join test prints the worst windows it compares).
quality=$(cargo test --quiet --locked -p audiomill-activities --test it join::joins_are_as_clean -- --nocapture 2>&1 |
  sed -n 's/^\([a-z]*\) \["-q:a", "2"\]: worst 50 ms window \(.*\)$/\1 \2/p' | paste -sd ';' | sed 's/;/; /g')

for m in "${MINUTES[@]}"; do cli[$m]=$(best <"$WORK/cli-$m"); done
for m in 10 60; do halves[$m]=$(best <"$WORK/halves-$m"); done
ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }
echo
for m in "${MINUTES[@]}"; do
  echo "| ${m}-minute source, upload done to MP3 ready: dev in parts / dev single path / ffmpeg CLI | $([ "$m" = 1 ] && echo "single path unchanged" || ([ "$m" = 10 ] && echo "<= 0.6x CLI" || echo "<= 0.55x CLI")) | ${parts[$m]} s ($(ratio "${parts[$m]}" "${cli[$m]}")) / ${single[$m]} s ($(ratio "${single[$m]}" "${cli[$m]}")) / ${cli[$m]} s |"
done
echo "| two cores at best: the CLI on each half of the source at once, no service (x CLI) / dev in parts over it | | 10 minutes: ${halves[10]} s ($(ratio "${halves[10]}" "${cli[10]}")) / +$(python3 -c "print(f'{${parts[10]} - ${halves[10]}:.2f}')") s; 60 minutes: ${halves[60]} s ($(ratio "${halves[60]}" "${cli[60]}")) / +$(python3 -c "print(f'{${parts[60]} - ${halves[60]}:.2f}')") s |"
echo "| 60-minute source, dev with SEGMENT_MAX_PARTS=0 (twelve parts of 300 s) / CLI | | ${uncapped} s ($(ratio "$uncapped" "${cli[60]}")) / ${cli[60]} s |"
if [ ${#scaled[@]} -gt 0 ]; then
  row=""
  for n in 1 2 4; do
    if [ -n "${scaled[$n]:-}" ]; then row+="$n: ${scaled[$n]} s ($(ratio "${scaled[$n]}" "${cli[10]}")); "; else row+="$n: not measured ($CORES cores); "; fi
  done
  echo "| 10-minute source in parts, workers each held to one core, by worker count (x CLI) | scaling shown | ${row%; } |"
else
  echo "| 10-minute source in parts, workers each held to one core | scaling shown | not measured: needs a writable cgroup cpu controller (root) |"
fi
if [ ${#fetched[@]} -gt 0 ]; then
  echo "| 1 GB source from S3 (s3s-fs here): fetched whole / one part's byte range, of 2 / of 12 parts | measured | ${fetched[whole-2]} s / ${fetched[range-2]} s / ${fetched[range-12]} s |"
fi
echo "| joins: worst 50 ms window against the source, one pass vs joined (VBR -q:a 2) | within 3 dB | ${quality} |"

mkdir -p docs
python3 - "$WORK/plot.json" docs/long-videos.png <<PY
import sys, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
minutes = [$(IFS=,; echo "${MINUTES[*]}")]
series = {
    "ffmpeg CLI": [${cli[1]}, ${cli[10]}, ${cli[60]}],
    "Audiomill, single path": [${single[1]}, ${single[10]}, ${single[60]}],
    "Audiomill, in parts (dev, 2 cores)": [${parts[1]}, ${parts[10]}, ${parts[60]}],
}
fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
for (label, seconds), style in zip(series.items(), ["o-", "s--", "^-"]):
    ax.plot(minutes, seconds, style, label=label)
ax.plot([10, 60], [${halves[10]}, ${halves[60]}], "k:", label="two cores at best: the CLI on each half at once")
ax.set_xlabel("source length (minutes)")
ax.set_ylabel("wall time, upload done to MP3 ready (s)")
ax.set_title("Converting long videos: VBR -q:a 2, 48 kHz stereo AAC source")
ax.grid(True, alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(sys.argv[2])
PY
echo
echo "Plot written to docs/long-videos.png"
