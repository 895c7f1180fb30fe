# Helpers the benchmark scripts share; sourced, not run.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Reads JSON on stdin and prints the part the Python subscript $1 names (`'["job_id"]'`).
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }
wait_up() { for _ in $(seq 300); do curl -sf "$1/health" >/dev/null && return; sleep 0.2; done; echo "$1 never came up" >&2; exit 1; }
# An access token of the admin account `audiomill dev` made in the data directory $1, at $2.
dev_admin_token() {
  curl -sf -X POST -u "admin@audiomill.local:$(awk '/password/ {print $2}' "$1/initial-admin.txt")" "$2/login" | json '["access_token"]'
}
