#!/usr/bin/env bash
# Shared by the setup scripts (sourced, not run): installs Debian packages that are missing,
# quietly, and nothing when all are there.

# apt_install_missing PACKAGE...: installs those of PACKAGE... that are not installed yet.
apt_install_missing() {
  local missing=() package
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "${INSTALL_WHO:-setup}: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
