# Helpers the benchmark scripts share; sourced, not run.

# The binaries production runs (the Dockerfile's release build), in target/release beside the
# tests' debug build; built once, so every script after the first finds them ready.
TARGET=./target/release
bench_build() { cargo build --release --quiet --locked --workspace --bins --examples; }

# What every bench script starts with: the release build as BIN, a scratch directory WORK, and
# PIDS, the processes it starts. On exit `bench_end` stops them, runs the script's own
# `cleanup_more` when it defines one (cgroups to remove, test services to stop), and removes
# WORK.
bench_begin() {
  bench_build
  BIN=$TARGET/audiomill
  WORK=$(mktemp -d)
  PIDS=()
  trap bench_end EXIT
}
bench_end() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if declare -F cleanup_more >/dev/null; then cleanup_more; fi
  rm -rf "$WORK"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Reads JSON on stdin and prints the part the Python subscript $1 names (`'["job_id"]'`).
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }
wait_up() { for _ in $(seq 300); do curl -sf "$1/health" >/dev/null && return; sleep 0.2; done; echo "$1 never came up" >&2; exit 1; }
# An access token of the admin account `audiomill dev` made in the data directory $1, at $2.
dev_admin_token() {
  curl -sf -X POST -u "admin@audiomill.local:$(awk '/password/ {print $2}' "$1/initial-admin.txt")" "$2/login" | json '["access_token"]'
}
# CPU clock ticks the processes spent: utime and stime, plus those of the children they
# waited for (a worker's converters).
cpu_ticks() { for pid in "$@"; do cat "/proc/$pid/stat"; done | awk '{s += $14 + $15 + $16 + $17} END {print s}'; }
# Stops the processes and waits until each has exited (a zombie counts: it no longer runs).
stop_processes() {
  kill "$@"
  for pid in "$@"; do
    while [[ "$(ps -o stat= -p "$pid")" =~ ^[^Z] ]]; do sleep 0.1; done
  done
}
# Whether CPU cgroups can be made here (a writable cgroup cpu controller: root).
cpu_cgroups_writable() {
  mkdir -p "/sys/fs/cgroup/cpu/audiomill-probe-$$" 2>/dev/null && rmdir "/sys/fs/cgroup/cpu/audiomill-probe-$$"
}
# Moves this (sub)shell, and what it then runs, into the CPU cgroup NAME, held to QUOTA
# microseconds of CPU per 100 ms (100000: one core). Needs a writable cgroup cpu controller.
enter_cpu_cgroup() { # NAME QUOTA
  local group=/sys/fs/cgroup/cpu/$1
  mkdir -p "$group" && echo 100000 >"$group/cpu.cfs_period_us" && echo "$2" >"$group/cpu.cfs_quota_us"
  echo "$BASHPID" >"$group/cgroup.procs"
}
# Clips as phones make them, in DIR: 640x360 video at 30 fps, stereo 48 kHz music-like AAC;
# one of SECONDS, copied under COUNT names.
short_clips() { # DIR SECONDS COUNT
  mkdir -p "$1"
  ff -f lavfi -i "testsrc=size=640x360:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -f lavfi -i "anoisesrc=color=pink:amplitude=0.2:sample_rate=48000" \
    -filter_complex "[1][2]amix=inputs=2[a]" -map 0:v -map "[a]" -t "$2" -ac 2 \
    -c:v libx264 -preset ultrafast -c:a aac -b:a 128k "$1/clip.mp4"
  for i in $(seq -w 1 "$3"); do cp "$1/clip.mp4" "$1/clip-$i.mp4"; done
  rm "$1/clip.mp4"
}
# nginx serving the files of DIR on 127.0.0.1:PORT from disk (sendfile), in the foreground:
# the most loopback carries when only the kernel moves the bytes. Its configuration, pid and
# log go beside DIR. Start it with `&`.
static_server() { # DIR PORT
  cat >"$1.nginx.conf" <<CONF
daemon off; user root; worker_processes 1; pid $1.nginx.pid; error_log $1.nginx.log;
events {}
http {
  access_log off; sendfile on;
  server { listen 127.0.0.1:$2; root $1; }
}
CONF
  exec nginx -c "$1.nginx.conf" -p "$(dirname "$1")"
}
# Seconds (and bytes, best of 2) of a download of URL, with curl's other arguments after it.
fetch_best_of_2() { # URL [CURL-ARGS...]
  for _ in 1 2; do curl -sf -o /dev/null -w '%{time_total} %{size_download}\n' "${@:2}" "$1"; done | sort -n | head -1
}
