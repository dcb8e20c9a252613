#!/usr/bin/env bash
# build-deb.sh OUT_DIR: builds the dfs .deb out of tree. Copies the source to
# OUT_DIR/dfs-VERSION with packaging/deb/debian as its debian/ folder, runs
# `dpkg-buildpackage -us -uc -b` there (at most 2 compile jobs, ccache when installed),
# leaves dfs_VERSION_ARCH.deb in OUT_DIR and prints lintian's verdict.
# The staging path is stable so ccache hits on the next build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
out=${1:-$src/build-deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)

missing=()
for p in debhelper dpkg-dev lintian rsync; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "build-deb: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

version=$(dpkg-parsechangelog -l "$here/debian/changelog" -S Version)
stage=$out/dfs-$version
# Refresh the staged source but keep the CMake build folder (obj-dfs) between runs. Files
# are copied by content (rsync -c, without keeping mtimes), so a changed file is newer
# than its old objects even if it was edited before they were built; unchanged files
# keep their mtime and are not rebuilt.
fresh=$out/.source-$version
rm -rf "$fresh"
"$src/packaging/stage-source.sh" "$src" "$fresh"
cp -a "$here/debian" "$fresh/debian"
mkdir -p "$stage"
rsync -rlc --delete --exclude=/obj-dfs "$fresh/" "$stage/"
rm -rf "$fresh"
rm -f "$out"/dfs_"$version"_*.deb "$out"/dfs-dbgsym_"$version"_*.deb "$out"/dfs_"$version"_*.changes \
  "$out"/dfs_"$version"_*.buildinfo

echo "build-deb: building in $stage"
(cd "$stage" && DEB_BUILD_OPTIONS="nocheck parallel=2 ${DEB_BUILD_OPTIONS:-}" \
  dpkg-buildpackage -us -uc -b -nc)
ls -l "$out"/*.deb
echo "build-deb: lintian"
lintian "$out"/dfs_"$version"_*.changes || true
