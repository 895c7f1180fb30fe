#!/usr/bin/env bash
# Many short jobs (the tenth section of `make bench`; it also runs alone): 100 clips of 30 s,
# then 200 of 5 s, uploaded by 8 concurrent clients to `audiomill dev` on this machine, against
# the ffmpeg CLI converting the same files with the same settings (`-vn -c:a libmp3lame
# -q:a 2`) two at a time (`xargs -P2`). For each: the wall time (the CLI's whole run; the
# platform's from the first upload sent to the last MP3 stored), jobs per minute, the ratio,
# and where a job's time went: its upload, the wait for a transcode slot, each step (the step
# metrics' means) and Temporal's own latencies (the SDK's schedule-to-start and end-to-end
# means). Every MP3 is checked with ffprobe, and every job must have sent exactly one e-mail.
# Prints table rows for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/venv/bin:$PATH"
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bench_begin

CLIENTS=8
now_ms() { date +%s%3N; }

# The CLI on every clip, two at a time: seconds.
cli_run() { # SECONDS
  local dir=$WORK/clips-$1 out=$WORK/cli-$1 start
  mkdir -p "$out"
  start=$(now_ms)
  # `times` in the subshell: the CPU its children (every ffmpeg) spent, user then system.
  (
    find "$dir" -name '*.mp4' -print0 | OUT=$out xargs -0 -P2 -I{} sh -c \
      'ffmpeg -hide_banner -loglevel error -y -i "$1" -vn -c:a libmp3lame -q:a 2 "$OUT/$(basename "$1" .mp4).mp3"' _ {}
    times
  ) | tail -1 >"$WORK/cli-cpu-$1"
  echo "$(python3 -c "print(f'{($(now_ms) - $start) / 1000:.1f}')") $(python3 - "$WORK/cli-cpu-$1" <<'PY'
import re, sys
user, system = re.findall(r"(\d+)m([\d.]+)s", open(sys.argv[1]).read())
print(f"{sum(int(m) * 60 + float(s) for m, s in (user, system)):.1f}")
PY
)"
}

# The metrics `dev` exposes (gateway and worker share one registry), as "name{labels} value".
scrape() { curl -sf "$1/metrics"; }

# Means from the metrics scraped after a run: "label=mean-seconds" for every step, the wait
# for a slot, and the Temporal SDK's latencies.
breakdown() { # METRICS-FILE
  python3 - "$1" <<'PY'
import re, sys
sums, counts = {}, {}
for line in open(sys.argv[1]):
    m = re.match(r'^([a-z_]+)_(sum|count)(\{[^}]*\})? ([0-9.e+-]+)$', line.strip())
    if not m:
        continue
    name, kind, labels, value = m.group(1), m.group(2), m.group(3) or "", float(m.group(4))
    step = re.search(r'step="([^"]+)"', labels)
    activity = re.search(r'activity_type="([^"]+)"', labels)
    key = name + (f"[{step.group(1)}]" if step else "") + (f"[{activity.group(1)}]" if activity else "")
    (sums if kind == "sum" else counts)[key] = (sums if kind == "sum" else counts).get(key, 0) + value
wanted = ("audiomill_step_duration_seconds", "audiomill_job_wait_seconds",
          "temporal_activity_schedule_to_start_latency", "temporal_workflow_task_schedule_to_start_latency",
          "temporal_workflow_endtoend_latency", "temporal_activity_execution_latency")
parts = []
for key in sorted(sums):
    if key.startswith(wanted) and counts.get(key):
        parts.append(f"{key.replace('audiomill_', '').replace('_seconds', '').replace('temporal_', 'temporal ')}: {sums[key] / counts[key] * 1000:.0f} ms x{counts[key]:.0f}")
print("; ".join(parts))
PY
}

# `dev` on a fresh data directory; the clips uploaded by CLIENTS clients at once; waits for
# every job. Prints "wall-seconds upload-seconds" and leaves the metrics in $WORK/metrics-N.
platform_run() { # SECONDS COUNT
  local dir=$WORK/clips-$1 data=$WORK/dev-$1 port api token start uploaded
  port=$(free_port); api=http://127.0.0.1:$port
  MAX_FILE_SIZE=100 QUOTA_JOBS_PER_DAY=0 QUOTA_STORAGE_MB=0 RUST_LOG=warn DATA_DIR="$data" \
    LISTEN_ADDR="127.0.0.1:$port" RATE_LIMIT_PER_MINUTE=100000 MAX_CONCURRENT_UPLOADS=$CLIENTS \
    "$BIN" dev >"$data.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_up "$api"
  token=$(dev_admin_token "$data" "$api")
  start=$(now_ms)
  find "$dir" -name '*.mp4' -print0 | xargs -0 -P"$CLIENTS" -I{} curl -sf -o /dev/null \
    -H "Authorization: Bearer $token" -F "file=@{}" "$api/upload"
  uploaded=$(now_ms)
  local db=$data/audiomill.db
  until [ "$(python3 -c "import sqlite3; print(sqlite3.connect('file:$db?mode=ro', uri=True).execute(\"SELECT COUNT(*) FROM jobs WHERE completed_at IS NOT NULL\").fetchone()[0])")" -ge "$2" ]; do sleep 0.2; done
  local last
  last=$(python3 -c "import sqlite3; print(sqlite3.connect('file:$db?mode=ro', uri=True).execute('SELECT MAX(completed_at) FROM jobs').fetchone()[0])")
  scrape "$api" >"$WORK/metrics-$1"
  cpu "$pid" >"$WORK/cpu-$1"
  check "$data" "$2" "$1"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 -c "print(f'{($last - $start) / 1000:.1f} {($uploaded - $start) / 1000:.1f}')"
}

TICKS=$(getconf CLK_TCK)
# The CPU seconds `dev` (gateway and worker), its converter children (waited for, so counted
# to it) and its Temporal server spent: "own children temporal".
cpu() { # DEV-PID
  local temporal
  temporal=$(pgrep -P "$1" temporal | head -1)
  python3 - "$1" "$temporal" "$TICKS" <<'PY'
import sys
def fields(pid):
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
dev, temporal, ticks = sys.argv[1], sys.argv[2], int(sys.argv[3])
own = fields(dev)
# After the ")": state is field 3, so utime (14) is index 11, stime 12, cutime 13, cstime 14.
print(f"{(int(own[11]) + int(own[12])) / ticks:.1f} {(int(own[13]) + int(own[14])) / ticks:.1f}",
      f"{sum(int(f) for f in fields(temporal)[11:15]) / ticks:.1f}" if temporal else "?")
PY
}

# Every job completed with an MP3 of the clip's length, and sent one e-mail.
check() { # DATA-DIR COUNT SECONDS
  local completed mails bad=0
  completed=$(python3 -c "import sqlite3; print(sqlite3.connect('file:$1/audiomill.db?mode=ro', uri=True).execute(\"SELECT COUNT(*) FROM jobs WHERE outcome = 'completed'\").fetchone()[0])")
  [ "$completed" = "$2" ] || { echo "only $completed of $2 jobs completed" >&2; exit 1; }
  for mp3 in "$1"/objects/mp3/*.mp3; do
    local seconds
    seconds=$(ffprobe -v error -select_streams a:0 -show_entries stream=codec_name:format=duration -of csv=p=0 "$mp3" | paste -sd, -)
    python3 -c "c, d = '$seconds'.split(','); assert c == 'mp3' and abs(float(d) - $3) < 0.2" 2>/dev/null || bad=$((bad + 1))
  done
  [ "$bad" = 0 ] || { echo "$bad MP3s are not the clips' ($1/objects/mp3)" >&2; exit 1; }
  # The e-mail follows the MP3: give the last ones a minute.
  for _ in $(seq 300); do
    mails=$(find "$1/mail" -name '*.eml' | wc -l)
    [ "$mails" -ge "$2" ] && break
    sleep 0.2
  done
  [ "$mails" = "$2" ] || { echo "$mails e-mails for $2 jobs" >&2; exit 1; }
}

row() { # SECONDS COUNT GOAL
  local cli cli_cpu platform upload ratio own children temporal
  read -r cli cli_cpu < <(cli_run "$1")
  read -r platform upload < <(platform_run "$1" "$2")
  read -r own children temporal <"$WORK/cpu-$1"
  ratio=$(python3 -c "print(f'{$platform / $cli:.2f}x')")
  echo "| $2 clips of $1 s, $CLIENTS clients, dev against the ffmpeg CLI two at a time: wall time (jobs/min) | within $3 | $platform s ($(python3 -c "print(f'{$2 * 60 / $platform:.0f}')")/min) against $cli s ($(python3 -c "print(f'{$2 * 60 / $cli:.0f}')")/min): $ratio; uploads all answered after $upload s |"
  echo "| CPU seconds ($2 clips of $1 s): the CLI's ffmpeg / dev's converter children, dev itself (gateway and worker), its Temporal server | | $cli_cpu / $children, $own, $temporal |"
  echo "| where a job's time went ($2 clips of $1 s), means | | $(breakdown "$WORK/metrics-$1") |"
}

echo "Preparing clips..." >&2
short_clips "$WORK/clips-30" 30 100
short_clips "$WORK/clips-5" 5 200
echo "10/13 many short jobs..." >&2
row 30 100 1.15x
row 5 200 1.5x
