#!/usr/bin/env bash
# The Debian package works on its own: `make deb` (or the .deb in $DEB_DIR), lintian
# without errors, `dpkg -i`, the dfs user, files, conffiles and units (`systemd-analyze
# verify`), then — from the installed files alone (binaries on PATH, /etc/dfs configs
# copied with free ports) — one dfs-meta and six dfs-storage as user dfs on loopback,
# a mount through `mount -t fuse.dfs-fuse` (mount.fuse3 runs /usr/bin/dfs-fuse, which
# must return once the mount is live), data written and read back across a remount,
# `umount`, and `dpkg -r` / `dpkg -P` removing everything cleanly.
#
# Needs root (dpkg, mount). Leaves the dfs package purged, even if it was installed
# before. Reuses build-deb/ (incremental build, ccache); set DEB_DIR to skip building.
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: test_packaging needs root (dpkg -i, mount -t fuse.dfs-fuse)"
  exit 0
fi
: "${DFS_SOURCE:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${DFS_BIN:=/usr/bin}"
export DFS_SOURCE DFS_BIN
source "$(dirname "$0")/lib.sh"

PACKAGE_INSTALLED=0
FSTAB_CHANGED=0
_packaging_cleanup() {
  local rc=$?
  set +e
  if [ "$FSTAB_CHANGED" -eq 1 ]; then
    mountpoint -q "$MNT" && umount "$MNT"
    cp "$CLUSTER_DIR/fstab.orig" /etc/fstab
  fi
  # Unmount and stop daemons before the binaries disappear.
  cluster_stop
  if [ "$PACKAGE_INSTALLED" -eq 1 ]; then dpkg -P dfs >/dev/null 2>&1 || true; fi
  (exit "$rc")
  _e2e_cleanup
}
trap _packaging_cleanup EXIT

step "build the package (or use \$DEB_DIR)"
if [ -n "${DEB_DIR:-}" ]; then
  deb_dir=$DEB_DIR
else
  deb_dir=$DFS_SOURCE/build-deb
  # Reuse a package newer than every source file; otherwise `make deb` (incremental:
  # it keeps its CMake build folder and uses ccache).
  previous=$(ls -t "$deb_dir"/dfs_*.deb 2>/dev/null | head -1 || true)
  if [ -z "$previous" ] || [ -n "$(cd "$DFS_SOURCE" && find CMakeLists.txt cmake protocol backend \
    fuse tools packaging docs -type f -newer "$previous" 2>/dev/null | head -1)" ]; then
    make -C "$DFS_SOURCE" deb >"$CLUSTER_DIR/make-deb.log" 2>&1 ||
      { tail -40 "$CLUSTER_DIR/make-deb.log" >&2; fail "make deb failed"; }
  else
    echo "reusing $previous (newer than every source file)"
  fi
fi
deb=$(ls -t "$deb_dir"/dfs_*.deb 2>/dev/null | head -1 || true)
[ -f "$deb" ] || fail "no dfs_*.deb in $deb_dir"
echo "package: $deb"

step "lintian reports no errors"
command -v lintian >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian >/dev/null
lintian "$deb" >"$CLUSTER_DIR/lintian.txt" 2>&1 || true
cat "$CLUSTER_DIR/lintian.txt"
if grep -q '^E:' "$CLUSTER_DIR/lintian.txt"; then fail "lintian errors"; fi

step "dpkg -i"
dpkg -P dfs >/dev/null 2>&1 || true
PACKAGE_INSTALLED=1
dpkg -i "$deb" || fail "dpkg -i failed"
[ "$(dpkg-query -W -f='${Status}' dfs)" = "install ok installed" ] || fail "dfs not installed"

step "the dfs system user and state directories"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd dfs) || fail "no dfs user"
getent group dfs >/dev/null || fail "no dfs group"
[ "$uid" -lt 1000 ] || fail "dfs is not a system user (uid $uid)"
[ "$home" = /var/lib/dfs ] || fail "dfs home is $home"
case "$shell" in */nologin | */false) ;; *) fail "dfs has a login shell: $shell" ;; esac
for d in /var/lib/dfs /var/lib/dfs/meta /var/lib/dfs/storage; do
  [ "$(stat -c %U:%G "$d")" = dfs:dfs ] || fail "$d not owned by dfs"
done

step "installed files, conffiles, mount helper"
for b in dfs-meta dfs-storage dfs-fuse dfsctl dfs-bench; do
  [ -x "/usr/bin/$b" ] || fail "/usr/bin/$b missing"
done
# mount(8) runs helpers with PATH=/usr/local/sbin:...:/usr/bin:/sbin:/bin; mount.fuse3
# (fuse3, a dependency) then runs `dfs-fuse` from that PATH.
[ -x /sbin/mount.fuse3 ] || fail "mount.fuse3 missing (fuse3 not installed?)"
[ "$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v dfs-fuse)" = /usr/bin/dfs-fuse ] ||
  fail "dfs-fuse not on the mount helper's PATH"
for f in /lib/systemd/system/dfs-meta.service /lib/systemd/system/dfs-storage@.service \
  /lib/systemd/system/dfs-tier.service /lib/systemd/system/dfs-tier.timer \
  /usr/share/doc/dfs/examples/mnt-dfs.mount /usr/share/dfs/grafana/dfs-dashboard.json \
  /usr/share/doc/dfs/operations.md /usr/share/man/man8/dfs-meta.8.gz; do
  [ -f "$f" ] || fail "$f missing"
done
python3 -m json.tool /usr/share/dfs/grafana/dfs-dashboard.json >/dev/null || fail "dashboard JSON"
conffiles=$(dpkg-query -W -f='${Conffiles}' dfs)
for f in /etc/dfs/meta.conf /etc/dfs/storage.conf.example /etc/dfs/dfsctl.conf; do
  [ -f "$f" ] || fail "$f missing"
  grep -q " $f " <<<"$conffiles " || fail "$f is not a conffile"
done

step "systemd-analyze verify accepts the units"
command -v systemd-analyze >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
mkdir -p "$CLUSTER_DIR/units"
cp /lib/systemd/system/dfs-storage@.service "$CLUSTER_DIR/units/dfs-storage@disk1.service"
cp /usr/share/doc/dfs/examples/mnt-dfs.mount "$CLUSTER_DIR/units/"
for unit in /lib/systemd/system/dfs-meta.service /lib/systemd/system/dfs-storage@.service \
  /lib/systemd/system/dfs-tier.service /lib/systemd/system/dfs-tier.timer \
  "$CLUSTER_DIR/units/dfs-storage@disk1.service" "$CLUSTER_DIR/units/mnt-dfs.mount"; do
  systemd-analyze verify "$unit" >"$CLUSTER_DIR/verify.txt" 2>&1 ||
    { cat "$CLUSTER_DIR/verify.txt" >&2; fail "systemd-analyze verify $unit"; }
  [ -s "$CLUSTER_DIR/verify.txt" ] && { cat "$CLUSTER_DIR/verify.txt"; fail "warnings for $unit"; }
done

step "a cluster from the installed binaries and /etc/dfs configs, as user dfs"
DFS_BIN=/usr/bin
chmod 0755 "$CLUSTER_DIR"
META_PORT=$(free_port)
mkdir -p "$CLUSTER_DIR/etc" "$CLUSTER_DIR/meta"
sed -e "s|^data-dir *=.*|data-dir = $CLUSTER_DIR/meta|" \
  -e "s|^listen *=.*|listen = 127.0.0.1:$META_PORT|" /etc/dfs/meta.conf >"$CLUSTER_DIR/etc/meta.conf"
chown dfs:dfs "$CLUSTER_DIR/meta"
# An external command (not a function) so that the recorded pid is the daemon itself.
as_dfs=(setpriv --reuid=dfs --regid=dfs --init-groups)
start_daemon meta "$CLUSTER_DIR/meta.log" "${as_dfs[@]}" dfs-meta --config "$CLUSTER_DIR/etc/meta.conf"
wait_port "$META_PORT" 30 || fail "dfs-meta did not start"
for i in 1 2 3 4 5 6; do
  port=$(free_port)
  STORAGE_PORTS[$i]=$port
  mkdir -p "$CLUSTER_DIR/storage$i"
  chown dfs:dfs "$CLUSTER_DIR/storage$i"
  sed -e "s|^data-dir *=.*|data-dir = $CLUSTER_DIR/storage$i|" \
    -e "s|^listen *=.*|listen = 127.0.0.1:$port|" \
    -e "s|^advertise *=.*|advertise = 127.0.0.1:$port|" \
    -e "s|^meta *=.*|meta = 127.0.0.1:$META_PORT|" \
    /etc/dfs/storage.conf.example >"$CLUSTER_DIR/etc/storage-$i.conf"
  start_daemon "storage$i" "$CLUSTER_DIR/storage$i.log" \
    "${as_dfs[@]}" dfs-storage --config "$CLUSTER_DIR/etc/storage-$i.conf"
  wait_port "$port" 30 || fail "dfs-storage $i did not start"
done
wait_nodes_up 6 30 || fail "storage nodes did not register"
# dfsctl finds the cluster through $DFS_META like an operator's shell would.
DFS_META=127.0.0.1:$META_PORT dfsctl status >/dev/null || fail "dfsctl status"

step "mount -t fuse.dfs-fuse, write, read back, remount"
mkdir -p "$MNT"
CLUSTER_MOUNTS+=("$MNT")
mount -t fuse.dfs-fuse "127.0.0.1:$META_PORT:/default" "$MNT" || fail "mount -t fuse.dfs-fuse failed"
mountpoint -q "$MNT" || fail "mount returned but $MNT is not mounted (dfs-fuse must return after the mount is live)"
head -c 20000000 /dev/urandom >"$CLUSTER_DIR/big.bin"
make_tree "$CLUSTER_DIR/src" 200 7
cp "$CLUSTER_DIR/big.bin" "$MNT/big.bin"
cp -a "$CLUSTER_DIR/src" "$MNT/tree"
sync "$MNT"  # fsync of the mount directory: everything buffered is committed
cmp "$CLUSTER_DIR/big.bin" "$MNT/big.bin" || fail "big.bin differs"
[ "$(tree_sums "$MNT/tree")" = "$(tree_sums "$CLUSTER_DIR/src")" ] || fail "tree differs"
umount "$MNT" || fail "umount failed"
mountpoint -q "$MNT" && fail "still mounted after umount"
mount -t fuse.dfs-fuse "127.0.0.1:$META_PORT:/default" "$MNT" || fail "second mount failed"
cmp "$CLUSTER_DIR/big.bin" "$MNT/big.bin" || fail "big.bin differs after remount"
[ "$(tree_sums "$MNT/tree")" = "$(tree_sums "$CLUSTER_DIR/src")" ] || fail "tree differs after remount"
umount "$MNT" || fail "umount failed"

step "an /etc/fstab line (_netdev) mounts with plain 'mount MOUNTPOINT'"
cp /etc/fstab "$CLUSTER_DIR/fstab.orig"
FSTAB_CHANGED=1
echo "127.0.0.1:$META_PORT:/default $MNT fuse.dfs-fuse _netdev,op_timeout=20 0 0" >>/etc/fstab
mount "$MNT" || fail "mount via /etc/fstab failed"
cmp "$CLUSTER_DIR/big.bin" "$MNT/big.bin" || fail "big.bin differs through the fstab mount"
umount "$MNT" || fail "umount of the fstab mount failed"
cp "$CLUSTER_DIR/fstab.orig" /etc/fstab
FSTAB_CHANGED=0

step "daemons stop on SIGTERM"
for name in storage1 storage2 storage3 storage4 storage5 storage6 meta; do
  pid=$(pid_of "$name")
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && fail "$name ignored SIGTERM for 10 s"
  wait "$pid" 2>/dev/null || echo "note: $name exited with status $?"
done
CLUSTER_PIDS=()

step "dpkg -r keeps conffiles and the user; dpkg -P removes everything"
dpkg -r dfs || fail "dpkg -r failed"
for b in dfs-meta dfs-storage dfs-fuse dfsctl dfs-bench; do
  [ ! -e "/usr/bin/$b" ] || fail "/usr/bin/$b left after dpkg -r"
done
[ ! -e /lib/systemd/system/dfs-meta.service ] || fail "unit left after dpkg -r"
[ -f /etc/dfs/meta.conf ] || fail "dpkg -r removed a conffile"
dpkg -P dfs || fail "dpkg -P failed"
PACKAGE_INSTALLED=0
[ ! -e /etc/dfs ] || fail "/etc/dfs left after purge: $(ls -A /etc/dfs)"
[ ! -e /var/lib/dfs ] || fail "/var/lib/dfs left after purge"
getent passwd dfs >/dev/null && fail "dfs user left after purge"
dpkg-query -W -f='${Status}' dfs 2>/dev/null | grep -q "ok installed" && fail "dfs still known to dpkg"

step "make rpm builds an rpm with the binaries, units and configs"
rpm_dir=$CLUSTER_DIR/rpm
# ccache may reuse the main build's objects: same CMake flags, paths made relative.
CCACHE_BASEDIR=/ CCACHE_NOHASHDIR=1 make -C "$DFS_SOURCE" rpm RPM_DIR="$rpm_dir" >"$CLUSTER_DIR/make-rpm.log" 2>&1 ||
  { tail -40 "$CLUSTER_DIR/make-rpm.log" >&2; fail "make rpm failed"; }
rpm_file=$(find "$rpm_dir/RPMS" -name 'dfs-*.rpm' | head -1)
[ -n "$rpm_file" ] || fail "make rpm produced no rpm"
rpm -qpl "$rpm_file" >"$CLUSTER_DIR/rpm-files.txt" 2>/dev/null || fail "rpm -qpl cannot read $rpm_file"
for f in /usr/bin/dfs-meta /usr/bin/dfs-storage /usr/bin/dfs-fuse /usr/bin/dfsctl \
  /usr/lib/systemd/system/dfs-meta.service /usr/lib/systemd/system/dfs-tier.timer /etc/dfs/meta.conf; do
  grep -qx "$f" "$CLUSTER_DIR/rpm-files.txt" || fail "$f missing from $(basename "$rpm_file")"
done
echo "built $(basename "$rpm_file")"
echo "PASS: $TEST_NAME"
