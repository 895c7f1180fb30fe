#!/usr/bin/env bash
# Measures Audiomill on this machine and prints a table (see docs/benchmarks.md):
#   1. transcoding a 10-minute clip in process, against the ffmpeg CLI with the same settings,
#      by default and for each kind of output choice (CBR, rate and channels, trim, loudness,
#      tags with a cover frame);
#   2. the service's own overhead for a 10-second clip: upload done -> MP3 ready, minus the
#      transcode itself;
#   3. the gateway's peak memory (VmHWM, reset just before) while a 1 GB upload streams in,
#      and its upload throughput into the S3 server, against the same client pushing the file
#      into a null sink (scripts/null_sink.py); then the same file as a resumable (tus)
#      upload in 8 MB and 64 MB chunks (scripts/bench_tus.py), against it; and the web app's
#      first load in headless Chromium (scripts/bench_webapp.py): bytes and time to interactive;
#   4. jobs per minute with one worker against two (10 one-minute clips queued while the
#      workers are paused, then timed until all are done; one transcode at a time per worker);
#   5. a load run: 50 clients for 60 s against one gateway, mixing status polls, token
#      validation and small uploads (examples/load.rs); every uploaded job must complete;
#   6. what metrics cost that gateway per request (api/examples/metrics_cost.rs against its
#      CPU time per request in the load run), /metrics latency, and /stats/uploads and /jobs
#      latency with 100 000 jobs in the database;
#   7. 500 event streams at once on that gateway, following 5 jobs as they run
#      (examples/followers.rs): its CPU and memory, and how often it read the jobs' state;
#   8. a 1 GB MP3 downloaded through the gateway, against the same download redirected to a
#      presigned S3 URL (DOWNLOAD_REDIRECT) and the same file served statically by nginx:
#      time, and the gateway's CPU; then a 1 GB import from that nginx (POST /imports) into
#      the bucket, against curl saving the same file to disk;
#   9. long videos in parts against one pass and the CLI (scripts/bench-segments.sh, which
#      prints its own rows and writes docs/long-videos.png);
#  10. many short jobs through dev against the CLI (scripts/bench-many.sh, its own rows);
#  11. small requests: /health at its most, /status paced to 1 000 a second
#      (scripts/bench-requests.sh, with Debian's wrk);
#  12. the many short jobs of section 10 on 1, 2 and 3 workers with the production backends,
#      and each process's CPU per job (scripts/bench-scaling.sh, its own rows);
#  13. a 60-minute source to each output format against the CLI, and to M4A by stream copy
#      against re-encoding (scripts/bench-formats.sh, its own rows).
# Everything runs on 127.0.0.1 with its own Temporal dev server, gateway and worker processes,
# on the production backends (MariaDB, S3, SMTP) that scripts/test-services.sh starts.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/venv/bin:$PATH"

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
# shellcheck source=scripts/install.sh
source scripts/install.sh
INSTALL_WHO=bench apt_install_missing nginx-light
cleanup_more() {
  # Workers started in subshells (section 4) are listed in a file.
  for pid in $(cat "$WORK/worker-pids" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  sleep 1
  rmdir /sys/fs/cgroup/cpu/audiomill-bench-* 2>/dev/null || true
  bash scripts/test-services.sh stop >/dev/null 2>&1 || true
}
bench_begin
EXAMPLE=$TARGET/examples/transcode

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }

echo "Preparing media..."
ff -f lavfi -i "sine=frequency=440:sample_rate=48000" -f lavfi -i "anoisesrc=color=pink:amplitude=0.2:sample_rate=48000" \
   -filter_complex amix=inputs=2 -t 600 -ac 2 -c:a aac -b:a 128k "$WORK/long.m4a"
ff -f lavfi -i "testsrc=size=320x240:rate=5" -i "$WORK/long.m4a" -t 600 -c:v libx264 -preset ultrafast -c:a copy -shortest "$WORK/long.mp4"
ff -f lavfi -i "testsrc=size=320x240:rate=10" -f lavfi -i "sine=frequency=440" -t 10 -c:v libx264 -preset ultrafast -c:a aac "$WORK/short.mp4"

echo "1/13 transcode, 10-minute clip (best of 3 each)..."
best() { sort -n | head -1; }
cli=$(for _ in 1 2 3; do s=$(now); ff -i "$WORK/long.mp4" -vn -c:a libmp3lame -q:a 2 "$WORK/cli.mp3"; e=$(now); elapsed "$s" "$e"; done | best)
ours=$(for _ in 1 2 3; do "$EXAMPLE" "$WORK/long.mp4" "$WORK/ours.mp3" | awk '{print $1}'; done | best)
ratio=$(python3 -c "print(f'{($ours / $cli - 1) * 100:+.1f}%')")
short_transcode=$(for _ in 1 2 3; do "$EXAMPLE" "$WORK/short.mp4" "$WORK/short.mp3" | awk '{print $1}'; done | best)

# Each output choice against the CLI asked for the same (best of 2 each), on the same clip.
timed() { local s; s=$(now); "$@" >/dev/null; elapsed "$s" "$(now)"; }
lufs() { ffmpeg -hide_banner -nostats -i "$1" -af ebur128 -f null - 2>&1 | awk '/Summary:/ {s = 1} s && $1 == "I:" {print $2; exit}'; }
cli_choice() { # NAME: the CLI's command line for that choice, into $WORK/cli.mp3
  local lame=(-vn -c:a libmp3lame)
  case $1 in
    cbr) ff -i "$WORK/long.mp4" "${lame[@]}" -b:a 128k "$WORK/cli.mp3" ;;
    mono) ff -i "$WORK/long.mp4" "${lame[@]}" -q:a 5 -ar 22050 -ac 1 "$WORK/cli.mp3" ;;
    trim) ff -ss 120 -to 300 -i "$WORK/long.mp4" "${lame[@]}" -q:a 2 "$WORK/cli.mp3" ;;
    normalize)
      # Two passes, as the loudnorm documentation says: measure, then apply what was measured.
      local target=I=-16:TP=-1.5:LRA=11 measured
      measured=$(ffmpeg -hide_banner -nostats -i "$WORK/long.mp4" -vn -af "loudnorm=$target:print_format=json" -f null - 2>&1 |
        sed -n '/^{/,/^}/p' | python3 -c "import json, sys; m = json.load(sys.stdin); print(':'.join(f'measured_{k}={m[\"input_\" + k.lower()]}' for k in ('I', 'TP', 'LRA')) + f':measured_thresh={m[\"input_thresh\"]}')")
      ff -i "$WORK/long.mp4" -vn -af "loudnorm=$target:$measured:linear=true" -ar 48000 -c:a libmp3lame -q:a 2 "$WORK/cli.mp3" ;;
    cover)
      # A frame a tenth of the way in, scaled within 800 px, attached as the front cover.
      ff -ss 60 -i "$WORK/long.mp4" -frames:v 1 -vf "scale='min(800,iw)':'min(800,ih)':force_original_aspect_ratio=decrease" "$WORK/cover.jpg"
      ff -i "$WORK/long.mp4" -i "$WORK/cover.jpg" -map 0:a -map 1:v -c:a libmp3lame -q:a 2 -c:v copy \
        -id3v2_version 4 -metadata artist=Bench -metadata:s:v comment="Cover (front)" -disposition:v attached_pic "$WORK/cli.mp3" ;;
  esac
}
declare -A our_fields=([cbr]="bitrate_mode=cbr bitrate=128" [mono]="quality=5 sample_rate=22050 channels=1"
  [trim]="start=120 end=300" [normalize]="normalize=true" [cover]="cover=frame tags[artist]=Bench")
declare -A choice_label=([cbr]="CBR 128 kbit/s (-b:a 128k)" [mono]="VBR 5, 22.05 kHz mono (-q:a 5 -ar 22050 -ac 1)"
  [trim]="trim 2:00-5:00 (-ss 120 -to 300)" [normalize]="normalised to -16 LUFS, two passes (loudnorm twice)"
  [cover]="an artist tag and a cover frame (a frame grab, then -metadata and an attached picture)")
choice_rows=()
for choice in cbr mono trim normalize cover; do
  # shellcheck disable=SC2086
  ours_choice=$(for _ in 1 2; do "$EXAMPLE" "$WORK/long.mp4" "$WORK/ours.mp3" ${our_fields[$choice]} | awk '{print $1}'; done | best)
  cli_choice_s=$(for _ in 1 2; do timed cli_choice "$choice"; done | best)
  row="${ours_choice} s vs ${cli_choice_s} s ($(python3 -c "print(f'{($ours_choice / $cli_choice_s - 1) * 100:+.1f}%')"))"
  [ "$choice" = normalize ] && row="$row; measured by ebur128: $(lufs "$WORK/ours.mp3") vs $(lufs "$WORK/cli.mp3") LUFS"
  choice_rows+=("| transcode of the 10-minute clip, ${choice_label[$choice]}: Audiomill vs ffmpeg CLI | | $row |")
done

echo "2/13 service overhead, 10-second clip..."
bash scripts/test-services.sh start >/dev/null
# shellcheck disable=SC1091
source .tools/run/env
mariadb --no-defaults -h127.0.0.1 -P"${TEST_MYSQL_URL##*:}" -uaudiomill -paudiomill -e "DROP DATABASE IF EXISTS bench; CREATE DATABASE bench"
TEMPORAL_PORT=$(free_port); API_PORT=$(free_port)
temporal server start-dev --headless --ip 127.0.0.1 --port "$TEMPORAL_PORT" --log-level error >/dev/null 2>&1 &
PIDS+=($!)
export TEMPORAL_ADDRESS=127.0.0.1:$TEMPORAL_PORT DATA_DIR=$WORK/data LISTEN_ADDR=127.0.0.1:$API_PORT
export DATABASE_URL=$TEST_MYSQL_URL/bench S3_BUCKET=bench S3_CREATE_BUCKET=true AWS_ENDPOINT_URL=$TEST_S3_ENDPOINT
export AWS_ACCESS_KEY_ID=$TEST_S3_KEY AWS_SECRET_ACCESS_KEY=$TEST_S3_SECRET SMTP_URL=$TEST_SMTP_URL
export JWT_SECRET=bench-secret-bench-secret-bench-secret MAX_FILE_SIZE=2048 RUST_LOG=warn
export DOWNLOAD_LINK_SECRET=bench-link-secret-bench-link-secret
export MAX_CONCURRENT_TRANSCODES=1
# Section 8 imports from an nginx on loopback.
export IMPORT_ALLOW_PRIVATE=true
# The load runs upload more than a user's default day of jobs: no quotas here.
export QUOTA_JOBS_PER_DAY=0 QUOTA_STORAGE_MB=0
"$BIN" migrate >/dev/null
"$BIN" user add --email bench@example.com --password bench-password >/dev/null
"$BIN" gateway >"$WORK/gateway.log" 2>&1 &
GATEWAY=$!; PIDS+=($GATEWAY)
WORKERS=()
"$BIN" worker >"$WORK/worker1.log" 2>&1 &
WORKERS+=($!); PIDS+=($!)
API=http://127.0.0.1:$API_PORT
for _ in $(seq 100); do curl -sf "$API/health" >/dev/null && break; sleep 0.2; done
TOKEN=$(curl -sf -X POST -u bench@example.com:bench-password "$API/login" | json '["access_token"]')
overheads=()
for _ in 1 2 3 4 5; do
  job=$(curl -sf -H "Authorization: Bearer $TOKEN" -F "file=@$WORK/short.mp4" "$API/upload" | json '["job_id"]')
  start=$(now)
  while [ "$(curl -sf -H "Authorization: Bearer $TOKEN" "$API/status/$job" | json '["status"]')" != completed ]; do sleep 0.01; done
  done_at=$(now)
  overheads+=("$(python3 -c "print(f'{$done_at - $start - $short_transcode:.3f}')")")
done
overhead=$(printf '%s\n' "${overheads[@]}" | sort -n | sed -n 3p)

echo "3/13 gateway memory and S3 throughput during a 1 GB upload..."
# A valid MP4 head followed by padding: accepted by the gateway, streamed to storage.
python3 - "$WORK/short.mp4" "$WORK/big.mp4" <<'PY'
import sys
head = open(sys.argv[1], "rb").read()
with open(sys.argv[2], "wb") as out:
    out.write(head)
    out.truncate(1024 ** 3)
PY
# The same client into a sink that throws the bytes away (scripts/null_sink.py): what loopback
# carries when nothing is done with them. Best of 2; the second also finds the file in the cache.
SINK_PORT=$(free_port)
python3 scripts/null_sink.py "$SINK_PORT" &
PIDS+=($!)
sleep 0.5
sink_seconds=$(for _ in 1 2; do curl -sf -o /dev/null -w '%{time_total}\n' -F "file=@$WORK/big.mp4" "http://127.0.0.1:$SINK_PORT/upload"; done | sort -n | head -1)
# The peak is measured over the upload alone: the kernel resets the high-water mark to now.
echo 5 >/proc/$GATEWAY/clear_refs
before=$(awk '/VmRSS/{print $2}' /proc/$GATEWAY/status)
# Of that, the anonymous memory (heap and buffers; the rest is the binary's and libraries' mapped
# code, shared and given back under pressure), sampled every 20 ms: it has no high-water mark.
anon_before=$(awk '/RssAnon/{print $2}' /proc/$GATEWAY/status)
touch "$WORK/sampling"
(
  top=0
  while [ -e "$WORK/sampling" ]; do
    now_kb=$(awk '/RssAnon/{print $2}' /proc/$GATEWAY/status)
    [ "$now_kb" -gt "$top" ] && top=$now_kb
    sleep 0.02
  done
  echo "$top" >"$WORK/anon.peak"
) &
SAMPLER=$!
upload_seconds=$(curl -sf -o "$WORK/big.json" -w '%{time_total}' -H "Authorization: Bearer $TOKEN" -F "file=@$WORK/big.mp4" "$API/upload")
peak=$(awk '/VmHWM/{print $2}' /proc/$GATEWAY/status)
rm "$WORK/sampling"; wait "$SAMPLER"
anon_peak=$(cat "$WORK/anon.peak")
throughput=$(python3 -c "print(f'{1024 / $upload_seconds:.0f}')")

# Let a job finish (FFmpeg reads the clip at its head) so it does not skew what follows.
finish() { until curl -sf -H "Authorization: Bearer $TOKEN" "$API/status/$1" | json '["status"]' | grep -qE 'completed|failed'; do sleep 0.2; done; }
finish "$(json '["job_id"]' <"$WORK/big.json")"

# The same file as a resumable (tus) upload in 8 MB and 64 MB chunks: time and peak memory.
tus_rows=()
for chunk_mb in 8 64; do
  echo 5 >/proc/$GATEWAY/clear_refs
  read -r tus_seconds tus_job < <(python3 scripts/bench_tus.py "$API" "$TOKEN" "$WORK/big.mp4" $((chunk_mb * 1024 * 1024)))
  tus_peak=$(awk '/VmHWM/{print $2}' /proc/$GATEWAY/status)
  finish "$tus_job"
  tus_rows+=("| resumable (tus) upload of the same 1 GB in ${chunk_mb} MB chunks (S3): throughput against the multipart request, gateway peak memory above idle | 64 MB chunks: >= 0.9x, under 64 MB above idle | $(python3 -c "print(f'{1024 / $tus_seconds:.0f} MB/s ({$upload_seconds / $tus_seconds:.2f}x)')"), $(((tus_peak - before) / 1024)) MB above idle |")
done

# The web app's first load over loopback, in Debian's Chromium driven by Playwright.
read -r web_kb web_ms < <("$TEST_PLAYWRIGHT_PYTHON" scripts/bench_webapp.py "$API" "$TEST_CHROMIUM")

echo "4/13 jobs per minute, one worker against two..."
# One-minute clips as phones make them, small: 640x360 video, stereo 48 kHz music-like audio.
for n in $(seq 10); do
  ff -f lavfi -i "testsrc2=size=640x360:rate=25" -f lavfi -i "sine=frequency=$((200 + n * 50)):sample_rate=48000" \
     -f lavfi -i "anoisesrc=color=pink:amplitude=0.2:sample_rate=48000:seed=$n" \
     -filter_complex "[1][2]amix=inputs=2,aformat=channel_layouts=stereo[a]" -map 0:v -map "[a]" \
     -t 60 -c:v libx264 -preset ultrafast -crf 35 -c:a aac -b:a 128k "$WORK/minute$n.mp4"
done
SERVICES=("${PIDS[0]}" "$(cat .tools/run/mariadb.pid)" "$(cat .tools/run/s3s.pid)" "$(cat .tools/run/maildev.pid)" "$GATEWAY")
TICKS=$(getconf CLK_TCK); CORES=$(nproc)
# Queues the ten clips while the given workers are paused, then lets them drain the queue.
# Prints the seconds from resuming to the last MP3 stored (the jobs' own completed_at, polled
# without touching the service) and the CPU seconds every process spent meanwhile.
batch() {
  local ids=() start cpu_before last
  kill -STOP "$@"
  for n in $(seq 10); do
    ids+=("'$(curl -sf -H "Authorization: Bearer $TOKEN" -F "file=@$WORK/minute$n.mp4" "$API/upload" | json '["job_id"]')'")
  done
  local in_batch="id IN ($(IFS=,; echo "${ids[*]}"))"
  cpu_before=$(cpu_ticks "${SERVICES[@]}" "$@")
  start=$(date +%s%3N)
  kill -CONT "$@"
  until [ "$(sql "SELECT COUNT(*) FROM jobs WHERE completed_at IS NULL AND $in_batch")" = 0 ]; do sleep 0.5; done
  last=$(sql "SELECT MAX(completed_at) FROM jobs WHERE $in_batch")
  python3 -c "print(f'{($last - $start) / 1000:.3f} {($(cpu_ticks "${SERVICES[@]}" "$@") - $cpu_before) / $TICKS:.2f}')"
}
sql() { mariadb --no-defaults -h127.0.0.1 -P"${TEST_MYSQL_URL##*:}" -uaudiomill -paudiomill -N bench -e "$1"; }
# A worker in a CPU cgroup of its own with QUOTA (microseconds per 100 ms), or unconstrained.
start_worker() { # name [quota]
  (
    if [ -n "${2:-}" ]; then enter_cpu_cgroup "audiomill-bench-$1" "$2"; fi
    exec "$BIN" worker
  ) >"$WORK/$1.log" 2>&1 &
  echo $! | tee -a "$WORK/worker-pids"
}
scaling() { # [quota]: prints seconds and CPU seconds for one worker, then for two
  local first second
  first=$(start_worker "one${1:+-capped}" "${1:-}")
  sleep 2
  batch "$first"
  second=$(start_worker "two${1:+-capped}" "${1:-}")
  sleep 2
  batch "$first" "$second"
  stop_processes "$first" "$second"
}
stop_processes "${WORKERS[@]}"
# Like separate worker machines: each worker gets half a core, so the shared services (Temporal,
# MariaDB, S3, SMTP, on their own machines in production) never compete with the workers.
capped=()
if cpu_cgroups_writable; then
  mapfile -t capped < <(scaling 50000)
fi
# Then as they are: both workers and every service sharing this machine's cores.
mapfile -t shared < <(scaling)
WORKERS=("$(start_worker worker1)" "$(start_worker worker2)")
sleep 2

echo "5/13 load: 50 clients for 60 s against one gateway..."
LOAD_PORT=$(free_port)
# Its own gateway, with the abuse limits raised: the run measures the service, not the limiter.
RATE_LIMIT_PER_MINUTE=100000000 MAX_CONCURRENT_UPLOADS=1000 MAX_EVENT_STREAMS_PER_USER=1000 \
  LISTEN_ADDR=127.0.0.1:$LOAD_PORT "$BIN" gateway >"$WORK/load-gateway.log" 2>&1 &
LOAD_GATEWAY=$!; PIDS+=($LOAD_GATEWAY)
LOAD=http://127.0.0.1:$LOAD_PORT
for _ in $(seq 100); do curl -sf "$LOAD/health" >/dev/null && break; sleep 0.2; done
ff -f lavfi -i "color=size=64x64:rate=5" -f lavfi -i "sine=frequency=440" -t 1 -c:v libx264 -preset ultrafast -c:a aac "$WORK/tiny.mp4"
load_cpu_before=$(cpu_ticks "$LOAD_GATEWAY")
"$TARGET"/examples/load "$LOAD" bench@example.com bench-password "$WORK/tiny.mp4" 50 60 100 >"$WORK/load.txt"
load_cpu=$(python3 -c "print(($(cpu_ticks "$LOAD_GATEWAY") - $load_cpu_before) / $TICKS)")

echo "6/13 metrics and statistics..."
# The gateway's CPU per answered request in the load run, against what its metrics middleware
# costs per request measured alone: the share of the gateway's capacity that metrics take.
requests=$(awk -F'|' 'NR > 2 {s += $3} END {print s}' "$WORK/load.txt")
metrics_ns=$("$TARGET"/examples/metrics_cost)
cpu_us=$(python3 -c "print(f'{$load_cpu / $requests * 1e6:.0f}')")
metrics_share=$(python3 -c "print(f'{$metrics_ns / ($load_cpu / $requests * 1e9) * 100:.2f}%')")
# Median and 95th percentile of 20 requests, in milliseconds; any answer but 200 is reported
# instead, so a fast refusal never passes for a fast answer.
timed() { # URL [curl options...]
  local url=$1; shift
  for _ in $(seq 20); do curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$@" "$url"; done |
    python3 -c "
import sys
rows = [line.split() for line in sys.stdin]
refused = [code for code, _ in rows if code != '200']
t = sorted(float(took) * 1000 for _, took in rows)
print(f'HTTP {refused[0]}, not measured' if refused else f'{t[9]:.1f} ms / {t[18]:.1f} ms')"
}
metrics_latency=$(timed "$LOAD/metrics")
metrics_kb=$(( $(curl -sf "$LOAD/metrics" | wc -c) / 1024 ))
# 100 000 jobs over 60 days, 1% of them the bench user's: 80% completed, 10% failed, 10% cancelled.
bench_user=$(sql "SELECT id FROM users WHERE email = 'bench@example.com'")
sql "SET @owner = '$bench_user', @now = UNIX_TIMESTAMP(NOW(3)) * 1000;
INSERT INTO jobs (id, user_id, original_filename, source_key, source_size, created_at, mp3_key,
                  mp3_size, duration_ms, completed_at, conversion_ms, outcome, failure_type, ended_at)
SELECT UUID(), IF(seq % 100 = 0, @owner, CONCAT('00000000-0000-4000-8000-', LPAD(seq % 97, 12, '0'))), 'seeded.mp4',
       CONCAT('sources/seeded-', seq, '.mp4'), 100000 + (seq * 7919) % 200000000, @now - seq * 51840,
       IF(seq % 10 < 8, CONCAT('mp3/seeded-', seq, '.mp3'), NULL), IF(seq % 10 < 8, 10000 + seq % 5000000, NULL),
       IF(seq % 10 < 8, 1000 + seq % 3600000, NULL), IF(seq % 10 < 8, @now - seq * 51840 + 2000 + (seq * 31) % 120000, NULL),
       IF(seq % 10 < 8, 2000 + (seq * 31) % 120000, NULL),
       CASE seq % 10 WHEN 8 THEN 'failed' WHEN 9 THEN 'cancelled' ELSE 'completed' END,
       IF(seq % 10 = 8, 'CorruptMedia', NULL), @now - seq * 51840 + 3000
FROM seq_1_to_100000"
"$BIN" user add --email admin@example.com --password admin-password --admin >/dev/null
ADMIN_TOKEN=$(curl -sf -X POST -u admin@example.com:admin-password "$LOAD/login" | json '["access_token"]')
stats_mine=$(timed "$LOAD/stats/uploads" -H "Authorization: Bearer $TOKEN")
stats_all=$(timed "$LOAD/stats/uploads?scope=all" -H "Authorization: Bearer $ADMIN_TOKEN")
# Listing: the user's first page, everyone's first page of failed jobs, and a page deep in
# everyone's list (its cursor from 50 000 jobs in).
jobs_mine=$(timed "$LOAD/jobs?limit=100" -H "Authorization: Bearer $TOKEN")
jobs_failed=$(timed "$LOAD/jobs?limit=100&status=failed" -H "Authorization: Bearer $ADMIN_TOKEN")
deep=$(sql "SELECT CONCAT(created_at, '.', id) FROM jobs ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET 50000")
deep_cursor=$(python3 -c "import base64, sys; print(base64.urlsafe_b64encode(sys.argv[1].encode()).decode().rstrip('='))" "$deep")
jobs_deep=$(timed "$LOAD/jobs?limit=100&cursor=$deep_cursor" -H "Authorization: Bearer $ADMIN_TOKEN")
jobs_in_db=$(sql "SELECT COUNT(*) FROM jobs")
echo "7/13 500 event streams on one gateway while jobs run..."
watch_reads() { curl -sf "$LOAD/metrics" | awk '$1 == "audiomill_job_watch_reads_total" {print $2}' | grep . || echo 0; }
echo 5 >/proc/$LOAD_GATEWAY/clear_refs
streams_rss_before=$(awk '/VmRSS/{print $2}' /proc/$LOAD_GATEWAY/status)
streams_reads_before=$(watch_reads)
streams_cpu_before=$(cpu_ticks "$LOAD_GATEWAY")
fds() { find "/proc/$LOAD_GATEWAY/fd" -mindepth 1 -maxdepth 1 | wc -l; }
streams_fds_before=$(fds)
# The most descriptors the gateway held while the streams were open, sampled every 0.2 s.
(peak=0; while kill -0 "$LOAD_GATEWAY" 2>/dev/null && [ ! -e "$WORK/followers.done" ]; do
   n=$(fds); [ "$n" -gt "$peak" ] && peak=$n && echo "$peak" >"$WORK/fds.peak"; sleep 0.2
 done) &
"$TARGET"/examples/followers "$LOAD" bench@example.com bench-password "$WORK/long.mp4" 500 5 >"$WORK/followers.txt"
touch "$WORK/followers.done"; wait $! 2>/dev/null || true
streams_fds_peak=$(cat "$WORK/fds.peak" 2>/dev/null || echo "$streams_fds_before")
streams_cpu=$(python3 -c "print(f'{($(cpu_ticks "$LOAD_GATEWAY") - $streams_cpu_before) / $TICKS:.1f}')")
streams_peak=$(awk '/VmHWM/{print $2}' /proc/$LOAD_GATEWAY/status)
streams_reads=$(( $(watch_reads) - streams_reads_before ))
read -r _ streams _ ended _ events _ failed _ streams_seconds <"$WORK/followers.txt"
per_stream_kb=$(( (streams_peak - streams_rss_before) / streams ))
per_stream_fds=$(python3 -c "print(f'{($streams_fds_peak - $streams_fds_before) / $streams:.2f}')")
streams_row="$ended of $streams streams saw their job complete ($events events); gateway CPU ${streams_cpu} s over ${streams_seconds} s, memory peak $((streams_peak / 1024)) MB (before: $((streams_rss_before / 1024)) MB; ${per_stream_kb} KB a stream), descriptors ${streams_fds_before} -> ${streams_fds_peak} (${per_stream_fds} a stream); ${streams_reads} reads of the jobs' state (Temporal calls), against $(python3 -c "print(round($streams * $streams_seconds))") if each stream polled once a second"

echo "8/13 a 1 GB download, through the gateway and redirected to the bucket..."
REDIRECT_PORT=$(free_port)
DOWNLOAD_REDIRECT=true LISTEN_ADDR=127.0.0.1:$REDIRECT_PORT "$BIN" gateway >"$WORK/redirect-gateway.log" 2>&1 &
REDIRECT_GATEWAY=$!; PIDS+=($REDIRECT_GATEWAY)
REDIRECT=http://127.0.0.1:$REDIRECT_PORT
for _ in $(seq 100); do curl -sf "$REDIRECT/health" >/dev/null && break; sleep 0.2; done
TOKEN=$(curl -sf -X POST -u bench@example.com:bench-password "$API/login" | json '["access_token"]')
# A finished job whose MP3 is then replaced by 1 GB of bytes: what is measured is moving them.
download_job=$(curl -sf -H "Authorization: Bearer $TOKEN" -F "file=@$WORK/short.mp4" "$API/upload" | json '["job_id"]')
until [ "$(curl -sf -H "Authorization: Bearer $TOKEN" "$API/status/$download_job" | json '["status"]')" = completed ]; do sleep 0.2; done
"$TARGET"/examples/objects put "mp3/$download_job.mp3" "$WORK/big.mp4" >/dev/null
# Best of 2: "seconds gateway-CPU-seconds bytes" (curl follows the redirect, and like any
# client does not send the token to another host).
download() { # GATEWAY-PID BASE-URL
  for _ in 1 2; do
    local before took
    before=$(cpu_ticks "$1")
    took=$(curl -sfL -o /dev/null -w '%{time_total} %{size_download}' -H "Authorization: Bearer $TOKEN" "$2/download/$download_job")
    echo "$(python3 -c "print(f'{${took% *}:.2f} {($(cpu_ticks "$1") - $before) / $TICKS:.2f}')") ${took#* }"
  done | sort -n | head -1
}
read -r streamed_s streamed_cpu streamed_bytes < <(download "$GATEWAY" "$API")
read -r redirected_s redirected_cpu redirected_bytes < <(download "$REDIRECT_GATEWAY" "$REDIRECT")
[ "$streamed_bytes" = $((1024 ** 3)) ] && [ "$redirected_bytes" = $((1024 ** 3)) ] ||
  { echo "a download was cut short: $streamed_bytes / $redirected_bytes bytes" >&2; exit 1; }
# The same file served statically by nginx, from disk.
mkdir -p "$WORK/static" && ln "$WORK/big.mp4" "$WORK/static/big.mp3"
NGINX_PORT=$(free_port)
static_server "$WORK/static" "$NGINX_PORT" &
PIDS+=($!)
for _ in $(seq 50); do curl -sf -o /dev/null -r 0-0 "http://127.0.0.1:$NGINX_PORT/big.mp3" && break; sleep 0.1; done
read -r static_s static_bytes < <(fetch_best_of_2 "http://127.0.0.1:$NGINX_PORT/big.mp3")
[ "$static_bytes" = $((1024 ** 3)) ] || { echo "the static download was cut short: $static_bytes bytes" >&2; exit 1; }
# A 1 GB import from that nginx, timed from the request until the video is in the bucket (the
# job's step moves past import_source), against curl saving the same file to disk.
ln "$WORK/big.mp4" "$WORK/static/big.mp4"
curl_disk_s=$(for _ in 1 2; do curl -sf -o "$WORK/fetched.mp4" -w '%{time_total}\n' "http://127.0.0.1:$NGINX_PORT/big.mp4"; done | sort -n | head -1)
rm -f "$WORK/fetched.mp4"
import_start=$(now)
import_job=$(curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d "{\"urls\": [\"http://127.0.0.1:$NGINX_PORT/big.mp4\"]}" "$API/imports" | json '["job_id"]')
while curl -sf -H "Authorization: Bearer $TOKEN" "$API/status/$import_job" | json '["step"]' | grep -qxE 'None|validate_token|import_source'; do sleep 0.05; done
import_s=$(python3 -c "print(f'{$(now) - $import_start:.2f}')")
finish "$import_job"
rate() { python3 -c "print(f'{1024 / $1:.0f}')"; }
import_row="${import_s} s ($(rate "$import_s") MB/s) against curl to disk ${curl_disk_s} s ($(rate "$curl_disk_s") MB/s): $(python3 -c "print(f'{$curl_disk_s / $import_s:.2f}x')")"
download_row="${streamed_s} s, gateway CPU ${streamed_cpu} s ($(rate "$streamed_s") MB/s, $(python3 -c "print(f'{$static_s / $streamed_s:.2f}')") of nginx) / ${redirected_s} s, gateway CPU ${redirected_cpu} s ($(rate "$redirected_s") MB/s) / nginx ${static_s} s ($(rate "$static_s") MB/s)"

per_minute() { python3 -c "print(f'{10 * 60 / $1:.0f}')"; }
# "seconds cpu" pairs -> "jobs/min one / jobs/min two (speed-up)"
scaling_row() {
  local one=${1% *} two=${2% *}
  echo "$(per_minute "$one") / $(per_minute "$two") ($(python3 -c "print(f'{$one / $two:.2f}x')"))"
}
# How busy the cores were while two workers drained, and the best speed-up that CPU allows:
# the one-worker drain against the two-worker run's CPU spread perfectly over every core.
busy=$(python3 -c "s, c = '${shared[1]}'.split(); print(f'{float(c) / float(s) / $CORES * 100:.0f}%')")
ceiling=$(python3 -c "one = float('${shared[0]}'.split()[0]); c = float('${shared[1]}'.split()[1]); print(f'{one / (c / $CORES):.2f}x')")

echo
echo "| measure | target | result |"
echo "| --- | --- | --- |"
echo "| transcode of a 10-minute clip: Audiomill vs ffmpeg CLI | within 5% | ${ours} s vs ${cli} s (${ratio}) |"
printf '%s\n' "${choice_rows[@]}"
echo "| upload done to MP3 ready, minus transcode (10 s clip, median of 5) | under 0.5 s | ${overhead} s |"
echo "| gateway peak memory during a 1 GB upload (S3): resident (VmHWM) / of it anonymous (heap and buffers) | under 64 MB | $((peak / 1024)) MB (before: $((before / 1024)) MB) / $((anon_peak / 1024)) MB (before: $((anon_before / 1024)) MB) |"
echo "| upload throughput into the S3 server (1 GB), against the same client into a null sink | 0.9 of the sink | ${throughput} MB/s against $(python3 -c "print(f'{1024 / $sink_seconds:.0f}')") MB/s ($(python3 -c "print(f'{$sink_seconds / $upload_seconds:.2f}x')")) |"
printf '%s\n' "${tus_rows[@]}"
echo "| the web app's first load in headless Chromium over loopback, empty cache: bytes transferred, time to the sign-in form (median of 5) | under 200 KB | ${web_kb} KB, ${web_ms} ms |"
if [ ${#capped[@]} = 2 ]; then
  echo "| jobs per minute, 10 one-minute clips, each worker held to half a core: 1 worker / 2 workers | 2 workers >= 1.8x | $(scaling_row "${capped[@]}") |"
else
  echo "| jobs per minute, each worker held to half a core | 2 workers >= 1.8x | not measured: needs a writable cgroup cpu controller (root) |"
fi
echo "| jobs per minute, 10 one-minute clips, all sharing the machine's cores: 1 worker / 2 workers | | $(scaling_row "${shared[@]}"); cores ${busy} busy with two, CPU allows at most ${ceiling} |"
echo "| metrics middleware per request, against the gateway's CPU per request in the load run | under 2% | ${metrics_ns} ns of ${cpu_us} us (${metrics_share}) |"
echo "| GET /metrics after the load run (${metrics_kb} KiB), median / p95 of 20 | | ${metrics_latency} |"
echo "| GET /stats/uploads, ${jobs_in_db} jobs in the database: the bench user's (about 1 000), median / p95 of 20 | | ${stats_mine} |"
echo "| GET /stats/uploads?scope=all, the same jobs, everyone's, median / p95 of 20 | | ${stats_all} |"
echo "| GET /jobs?limit=100, the bench user's first page, median / p95 of 20 | | ${jobs_mine} |"
echo "| GET /jobs?limit=100&status=failed, everyone's (admin), median / p95 of 20 | | ${jobs_failed} |"
echo "| GET /jobs?limit=100 from 50 000 jobs deep (admin), median / p95 of 20 | | ${jobs_deep} |"
echo "| 500 event streams on one gateway, 100 on each of 5 running jobs (10-minute clips, two workers) | | ${streams_row} |"
echo "| a 1 GB MP3 downloaded (S3): streamed through the gateway / redirected to a presigned URL / the same file served statically by nginx, best of 2 | gateway at 0.9 of nginx | ${download_row} |"
echo "| a 1 GB import from nginx on loopback into the S3 bucket (POST /imports, until the video is stored), against curl saving it to disk | 0.8 of curl | ${import_row} |"
echo
echo "Load, 50 clients for 60 s against one gateway (target: 0 errors, 0 lost jobs, p99 under 50 ms for status and validate):"
echo
cat "$WORK/load.txt"

# Its own processes and backends: after this run's have stopped, and without its settings.
bench_end
trap - EXIT
unset TEMPORAL_ADDRESS DATA_DIR LISTEN_ADDR DATABASE_URL S3_BUCKET S3_CREATE_BUCKET \
  AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY SMTP_URL JWT_SECRET MAX_FILE_SIZE \
  RUST_LOG DOWNLOAD_LINK_SECRET MAX_CONCURRENT_TRANSCODES QUOTA_JOBS_PER_DAY QUOTA_STORAGE_MB \
  IMPORT_ALLOW_PRIVATE
bash scripts/bench-segments.sh
bash scripts/bench-many.sh
bash scripts/bench-requests.sh
bash scripts/bench-scaling.sh
bash scripts/bench-formats.sh
