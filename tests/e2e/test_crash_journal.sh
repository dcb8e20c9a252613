#!/usr/bin/env bash
# Write-back journal (docs/consistency.md): (a) a workload records every write
# that returned; dfs-fuse is killed with SIGKILL mid-workload; the next mount
# with the same cache directory replays the journal and every recorded write is
# there, byte-identical. (b) data fsync'd before a kill -9 is there even when
# the cache directory was deleted before remounting. (c) a clean unmount leaves
# no journal behind; two mounts cannot share one cache directory.
source "$(dirname "$0")/lib.sh"
cluster_start 6
M=$CLUSTER_DIR/m
CACHE=$CLUSTER_DIR/cache-m
mount_volume "$M" default "cache_dir=$CACHE"

# kill_mount: SIGKILL dfs-fuse and clear the dead mount point.
kill_mount() {
  stop_daemon fuse_m KILL
  fusermount3 -u "$M" 2>/dev/null || fusermount3 -u -z "$M" 2>/dev/null || umount -l "$M" || true
}

step "(a) kill -9 during a write workload; remount replays the journal"
mkdir "$M/work"
python3 "$DFS_SOURCE/tests/e2e/crash_workload.py" write "$M/work" "$CLUSTER_DIR/writes.log" 60 \
  2>"$CLUSTER_DIR/workload.err" &
WORKLOAD=$!
sleep 6
kill_mount
wait "$WORKLOAD" || true
recorded=$(wc -l <"$CLUSTER_DIR/writes.log")
echo "writes recorded before the kill: $recorded"
((recorded > 100)) || fail "workload recorded only $recorded writes"
ls "$CACHE"/*.jnl >/dev/null 2>&1 || fail "no journal segment left in $CACHE after kill -9"
mount_volume "$M" default "cache_dir=$CACHE"
grep -q "replayed:" "$CLUSTER_DIR/fuse_m.log" || fail "no journal replay logged"
grep "replayed:" "$CLUSTER_DIR/fuse_m.log" | tail -1
replayed=$(grep -o "replayed: [0-9]* writes" "$CLUSTER_DIR/fuse_m.log" | tail -1 | grep -o "[0-9]*")
((replayed > 0)) || fail "nothing needed replay: the test did not exercise the journal"
python3 "$DFS_SOURCE/tests/e2e/crash_workload.py" check "$M/work" "$CLUSTER_DIR/writes.log" ||
  fail "acknowledged writes lost or different after kill -9 and replay"
# Replay is idempotent: a second remount replays nothing and changes nothing.
unmount_volume "$M"
mount_volume "$M" default "cache_dir=$CACHE"
python3 "$DFS_SOURCE/tests/e2e/crash_workload.py" check "$M/work" "$CLUSTER_DIR/writes.log" ||
  fail "writes differ after a second remount"

step "(b) fsync'd data survives kill -9 plus deletion of the cache directory"
head -c 5000000 /dev/urandom >"$CLUSTER_DIR/synced"
head -c 3000 /dev/urandom >"$CLUSTER_DIR/synced_small"
python3 - "$M" "$CLUSTER_DIR" <<'PY'
import os, sys
m, d = sys.argv[1], sys.argv[2]
for name in ("synced", "synced_small"):
    data = open(os.path.join(d, name), "rb").read()
    fd = os.open(os.path.join(m, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    os.fsync(fd)            # returns once committed in the cluster
    os.write(fd, b"unsynced tail")  # acknowledged, journaled, not fsync'd
    # left open: dfs-fuse is killed with the file open
PY
kill_mount
rm -rf "$CACHE"
mount_volume "$M" default "cache_dir=$CACHE"
for name in synced synced_small; do
  head -c "$(stat -c %s "$CLUSTER_DIR/$name")" "$M/$name" | cmp - "$CLUSTER_DIR/$name" ||
    fail "fsync'd $name lost after kill -9 and cache deletion"
done

step "(c) absorbed namespace changes survive kill -9 while dfs-meta cannot take them"
mkdir "$M/ns"
echo warm >"$M/ns/warm"  # the mount reserves inode numbers while dfs-meta answers
sync "$M"
kill -STOP "$(pid_of meta)"
python3 - "$M/ns" <<'PY'
import os, sys
d = sys.argv[1]
for i in range(30):
    sub = os.path.join(d, f"dir{i}")
    os.mkdir(sub)
    for j in range(4):
        with open(os.path.join(sub, f"f{j}"), "w") as f:
            f.write(f"{i}/{j}\n")
    os.rename(os.path.join(sub, "f0"), os.path.join(sub, "renamed"))
    os.unlink(os.path.join(sub, "f1"))
    os.symlink("renamed", os.path.join(sub, "link"))
    os.chmod(sub, 0o750)
os.mkdir(os.path.join(d, "gone"))
os.rmdir(os.path.join(d, "gone"))
PY
kill_mount
kill -CONT "$(pid_of meta)"
mount_volume "$M" default "cache_dir=$CACHE"
grep "absorbed\|replayed:" "$CLUSTER_DIR/fuse_m.log" | tail -3
python3 - "$M/ns" <<'PY' || fail "absorbed namespace changes lost or wrong after kill -9 and replay"
import os, stat, sys
d = sys.argv[1]
assert sorted(os.listdir(d)) == sorted(["warm"] + [f"dir{i}" for i in range(30)]), os.listdir(d)
for i in range(30):
    sub = os.path.join(d, f"dir{i}")
    assert stat.S_IMODE(os.stat(sub).st_mode) == 0o750, (sub, oct(os.stat(sub).st_mode))
    assert sorted(os.listdir(sub)) == ["f2", "f3", "link", "renamed"], (sub, os.listdir(sub))
    assert open(os.path.join(sub, "renamed")).read() == f"{i}/0\n"
    assert open(os.path.join(sub, "f3")).read() == f"{i}/3\n"
    assert os.readlink(os.path.join(sub, "link")) == "renamed"
print("absorbed changes verified")
PY

step "(d) clean unmount leaves no journal; a cache directory serves one mount"
dd if=/dev/urandom of="$M/last" bs=1M count=3 status=none
mkdir -p "$CLUSTER_DIR/other"
timeout 30 "$DFS_BIN/dfs-fuse" "127.0.0.1:$META_PORT:/default" "$CLUSTER_DIR/other" -f \
  -o "cache_dir=$CACHE" 2>"$CLUSTER_DIR/second.err" && fail "a second mount shared the cache directory"
grep -q "in use by another mount" "$CLUSTER_DIR/second.err" || {
  cat "$CLUSTER_DIR/second.err"
  fail "no clear error for a shared cache directory"
}
unmount_volume "$M"
if ls "$CACHE"/*.jnl >/dev/null 2>&1; then
  ls -l "$CACHE"
  fail "journal segments left after a clean unmount"
fi
step "ok"
