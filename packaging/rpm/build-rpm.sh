#!/usr/bin/env bash
# build-rpm.sh OUT_DIR: builds the dfs binary RPM with rpmbuild from a tarball of the
# source tree (see packaging/stage-source.sh). Result: OUT_DIR/RPMS/<arch>/dfs-*.rpm.
# On a Debian builder the RPM database knows none of the build dependencies, so they are
# not checked (--nodeps); the Debian equivalents come from scripts/install-deps.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
out=${1:-$src/build-rpm}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if ! command -v rpmbuild >/dev/null; then
  echo "build-rpm: installing rpm"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends rpm
fi

version=$(sed -n 's/^Version:[[:space:]]*//p' "$here/dfs.spec")
mkdir -p "$out"/{SOURCES,SPECS,BUILD,RPMS,SRPMS}
stage=$out/stage/dfs-$version
rm -rf "$out/stage"
"$src/packaging/stage-source.sh" "$src" "$stage"
tar -C "$out/stage" -czf "$out/SOURCES/dfs-$version.tar.gz" "dfs-$version"
rm -rf "$out/stage"
cp "$here/dfs.spec" "$out/SPECS/dfs.spec"
rpmbuild --define "_topdir $out" --nodeps -bb "$out/SPECS/dfs.spec"
find "$out/RPMS" -name '*.rpm' -exec ls -l {} +
