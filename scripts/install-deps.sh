#!/usr/bin/env bash
# Installs the Debian 12 packages DFS needs to build, run and test, if any are missing.
# Runs apt-get only when something is absent, so repeated `make` calls stay fast.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  capnproto libcapnp-dev liblmdb-dev lmdb-utils libfuse3-dev fuse3
  libxxhash-dev libzstd-dev libjerasure-dev libgf-complete-dev libssl-dev
  libspdlog-dev libfmt-dev catch2 libboost-dev libboost-system-dev
  # used by the end-to-end tests
  rsync sqlite3 attr python3 util-linux procps psmisc tar diffutils gcc
  # packaging and operations tests: deb/rpm builds, lintian, unit verification, promtool
  debhelper dpkg-dev fakeroot lintian rpm systemd prometheus
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
