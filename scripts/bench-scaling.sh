#!/usr/bin/env bash
# Many short jobs on more workers (the twelfth section of `make bench`; it also runs alone): the
# 100 clips of 30 s of section 10, uploaded by 8 concurrent clients to one gateway on the
# production backends (MariaDB, the S3 server and the SMTP sink that scripts/test-services.sh
# starts, and a Temporal dev server of its own), converted by 1, 2 and 3 worker processes. Each
# worker is held to half a core by a CPU cgroup of its own (needs root), as a small machine of
# its own would be, so that three of them still leave this 2-core machine's other half core to
# the shared services; without the cgroups they share the cores. For each count: the wall time
# from the first upload sent to the last MP3 stored, jobs per minute, and the CPU each process
# spent per job (the Temporal server, MariaDB, the S3 server, the SMTP sink, the gateway, the
# workers themselves and their converter children). Every job must complete and send one
# e-mail. Prints table rows for docs/benchmarks.md and draws docs/many-jobs.png (jobs per
# minute by worker count, and where each job's CPU went); docs/scaling.md turns these figures
# into what a cluster of N workers needs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/venv/bin:$PATH"
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
cleanup_more() {
  sleep 1
  rmdir /sys/fs/cgroup/cpu/audiomill-scaling-* 2>/dev/null || true
  bash scripts/test-services.sh stop >/dev/null 2>&1 || true
}
bench_begin
python3 -c "import matplotlib" 2>/dev/null ||
  pip install -q --disable-pip-version-check "matplotlib==3.11.2"

CLIENTS=8 COUNT=100 LENGTH=30
# Microseconds of CPU per 100 ms each worker may use: half a core.
QUOTA=50000
CAPPED=false
if cpu_cgroups_writable; then
  CAPPED=true
fi

echo "12/13 many short jobs on 1, 2 and 3 workers, production backends..." >&2
short_clips "$WORK/clips" "$LENGTH" "$COUNT"
bash scripts/test-services.sh start >/dev/null
# shellcheck disable=SC1091
source .tools/run/env
temporal_port=$(free_port)
temporal server start-dev --headless --ip 127.0.0.1 --port "$temporal_port" --log-level error >/dev/null 2>&1 &
TEMPORAL=$!; PIDS+=($TEMPORAL)
sql() { mariadb --no-defaults -h127.0.0.1 -P"${TEST_MYSQL_URL##*:}" -uaudiomill -paudiomill -N "$@"; }

# One database, bucket and gateway per worker count, so each run starts from nothing.
settings() { # NAME
  echo TEMPORAL_ADDRESS="127.0.0.1:$temporal_port" DATA_DIR="$WORK/$1" DATABASE_URL="$TEST_MYSQL_URL/$1" \
    S3_BUCKET="$1" S3_CREATE_BUCKET=true AWS_ENDPOINT_URL="$TEST_S3_ENDPOINT" \
    AWS_ACCESS_KEY_ID="$TEST_S3_KEY" AWS_SECRET_ACCESS_KEY="$TEST_S3_SECRET" SMTP_URL="$TEST_SMTP_URL" \
    JWT_SECRET=bench-secret-bench-secret-bench-secret DOWNLOAD_LINK_SECRET=bench-link-secret-bench-link-secret \
    MAX_FILE_SIZE=100 QUOTA_JOBS_PER_DAY=0 QUOTA_STORAGE_MB=0 RATE_LIMIT_PER_MINUTE=100000 \
    MAX_CONCURRENT_UPLOADS=$CLIENTS MAX_CONCURRENT_TRANSCODES=1 RUST_LOG=warn
}

# A worker, in a CPU cgroup of its own when the machine allows.
start_worker() { # NAME SETTINGS...
  local name=$1
  shift
  (
    if $CAPPED; then enter_cpu_cgroup "audiomill-scaling-$name" "$QUOTA"; fi
    exec env "$@" WORK_DIR="$WORK/work-$name" "$BIN" worker
  ) >"$WORK/$name.log" 2>&1 &
  echo $!
}

# One run with N workers: "wall-seconds" then, per process, "name=cpu-ms-per-job".
run() { # N
  local name=scaling$1 port api token start last workers=() before=() after=()
  read -ra env_settings < <(settings "$name")
  sql -e "DROP DATABASE IF EXISTS $name; CREATE DATABASE $name"
  MAILS_BEFORE=$(mail_count)
  port=$(free_port); api=http://127.0.0.1:$port
  env "${env_settings[@]}" "$BIN" migrate >/dev/null
  env "${env_settings[@]}" "$BIN" user add --email bench@example.com --password bench-password >/dev/null
  env "${env_settings[@]}" LISTEN_ADDR="127.0.0.1:$port" "$BIN" gateway >"$WORK/$name-gateway.log" 2>&1 &
  local gateway=$!
  PIDS+=("$gateway")
  for i in $(seq "$1"); do workers+=("$(start_worker "$name-$i" "${env_settings[@]}")"); done
  PIDS+=("${workers[@]}")
  wait_up "$api"
  sleep 2
  token=$(curl -sf -X POST -u bench@example.com:bench-password "$api/login" | json '["access_token"]')
  local processes=("$TEMPORAL" "$(cat .tools/run/mariadb.pid)" "$(cat .tools/run/s3s.pid)" "$(cat .tools/run/maildev.pid)" "$gateway" "${workers[@]}")
  for pid in "${processes[@]}"; do before+=("$(cpu_split "$pid")"); done
  start=$(date +%s%3N)
  find "$WORK/clips" -name '*.mp4' -print0 | xargs -0 -P"$CLIENTS" -I{} curl -sf -o /dev/null \
    -H "Authorization: Bearer $token" -F "file=@{}" "$api/upload"
  until [ "$(sql "$name" -e "SELECT COUNT(*) FROM jobs WHERE completed_at IS NOT NULL")" -ge "$COUNT" ]; do sleep 0.2; done
  last=$(sql "$name" -e "SELECT MAX(completed_at) FROM jobs")
  check_run "$name"
  # The workers' converter children are counted once the workers have waited for them.
  for pid in "${processes[@]}"; do after+=("$(cpu_split "$pid")"); done
  stop_processes "$gateway" "${workers[@]}"
  python3 - "$last" "$start" "$COUNT" "$TICKS" "${before[*]}" "${after[*]}" <<'PY'
import sys
last, start, count, ticks = (int(x) for x in sys.argv[1:5])
# Per process "own,children" ticks: the services and the gateway, then the workers.
pairs = lambda text: [tuple(int(t) for t in pair.split(",")) for pair in text.split()]
spent = [((a[0] - b[0]) / ticks * 1000 / count, (a[1] - b[1]) / ticks * 1000 / count)
         for a, b in zip(pairs(sys.argv[6]), pairs(sys.argv[5]))]
shown = [own + children for own, children in spent[:5]]
shown += [sum(own for own, _ in spent[5:]), sum(children for _, children in spent[5:])]
print(f"{(last - start) / 1000:.1f}", " / ".join(f"{x:.0f}" for x in shown))
PY
}

mail_count() { curl -sf "$TEST_MAILDEV_URL/api/email" | json '.__len__()'; }

# Every job completed with an MP3 in the bucket, and the sink got one e-mail per job.
check_run() { # NAME
  local completed mails
  completed=$(sql "$1" -e "SELECT COUNT(*) FROM jobs WHERE outcome = 'completed' AND mp3_key IS NOT NULL")
  [ "$completed" = "$COUNT" ] || { echo "only $completed of $COUNT jobs completed" >&2; exit 1; }
  for _ in $(seq 300); do
    mails=$(($(mail_count) - MAILS_BEFORE))
    [ "$mails" -ge "$COUNT" ] && break
    sleep 0.2
  done
  [ "$mails" = "$COUNT" ] || { echo "$mails e-mails for $COUNT jobs" >&2; exit 1; }
}

TICKS=$(getconf CLK_TCK)
# A process's CPU ticks as "own,children" (the children it waited for: a worker's converters).
cpu_split() { awk '{print $14 + $15 "," $16 + $17}' "/proc/$1/stat"; }
declare -A wall spent
for n in 1 2 3; do
  run "$n" >"$WORK/run-$n"
  read -r wall[$n] spent[$n] <"$WORK/run-$n"
done
per_minute() { python3 -c "print(f'{$COUNT * 60 / $1:.0f}')"; }
echo
how=$($CAPPED && echo "each held to half a core" || echo "sharing the cores (no writable cgroup cpu controller)")
row=""
for n in 1 2 3; do row+="$n: ${wall[$n]} s ($(per_minute "${wall[$n]}")/min, $(python3 -c "print(f'{${wall[1]} / ${wall[$n]}:.2f}x')")); "; done
echo "| $COUNT clips of $LENGTH s, $CLIENTS clients, production backends, 1 / 2 / 3 workers $how: wall time (jobs/min, speed-up) | scaling shown | ${row%; } |"
for n in 1 2 3; do
  echo "| CPU ms per job with $n worker(s): Temporal server / MariaDB / S3 server / SMTP sink / gateway / workers / their converters | | ${spent[$n]} |"
done

# The plot: jobs per minute by worker count, and each run's CPU per job by process.
python3 - "$COUNT" "$LENGTH" "${wall[1]}" "${wall[2]}" "${wall[3]}" "${spent[1]}" "${spent[2]}" "${spent[3]}" <<'PY'
import sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
count, length = int(sys.argv[1]), sys.argv[2]
walls = [float(w) for w in sys.argv[3:6]]
spent = [[float(x) for x in run.split(" / ")] for run in sys.argv[6:9]]
names = ["Temporal server", "MariaDB", "S3 server", "SMTP sink", "gateway", "workers", "converters"]
fig, (rate, cpu) = plt.subplots(1, 2, figsize=(11, 4.2))
workers = [1, 2, 3]
rate.plot(workers, [count * 60 / w for w in walls], marker="o", label="measured")
rate.plot(workers, [count * 60 / walls[0] * n for n in workers], linestyle="--", color="grey", label="linear")
rate.set_xticks(workers)
rate.set_xlabel("workers (each held to half a core)")
rate.set_ylabel("jobs per minute")
rate.set_title(f"{count} clips of {length} s, production backends")
rate.legend()
bottom = [0.0, 0.0, 0.0]
for i, name in enumerate(names):
    values = [run[i] for run in spent]
    cpu.bar(workers, values, bottom=bottom, label=name)
    bottom = [b + v for b, v in zip(bottom, values)]
cpu.set_xticks(workers)
cpu.set_xlabel("workers")
cpu.set_ylabel("CPU ms per job")
cpu.set_title("where each job's CPU went")
cpu.legend(fontsize=8, loc="upper right")
fig.tight_layout()
fig.savefig("docs/many-jobs.png", dpi=100)
PY
