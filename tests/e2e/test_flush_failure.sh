#!/usr/bin/env bash
# A streaming writer's flushes overlap (docs/architecture.md, step 2): one commits
# on its own thread while the next one cuts. Here dfs-meta is frozen (SIGSTOP)
# past the mount's op_timeout in the middle of a 160 MiB burst, so that whatever
# of those flushes is under way fails: a handed-off commit, the flush after it
# (which must then fail too), or both. Their bytes go back into the buffer, newer over
# older. Once dfs-meta runs again, fsync reports the failure once, then commits
# everything, and the file must read back byte-identical from this mount, from a
# second mount and after a remount.
source "$(dirname "$0")/lib.sh"
cluster_start 6
mount_volume "$MNT" default op_timeout=2

SRC=$CLUSTER_DIR/stream.src
head -c 192M /dev/urandom >"$SRC"

step "a 160 MiB burst; dfs-meta frozen for 5 s from its 96th MiB, while its flushes are under way"
python3 - "$SRC" "$MNT/stream" "$CLUSTER_DIR" 2>"$CLUSTER_DIR/writer.err" <<'PY' &
import os, sys, time
src, dst, work = sys.argv[1], sys.argv[2], sys.argv[3]
errors = 0
def retried(what, fn):
    # A write past twice the file's bound commits by itself after a failed
    # background flush and may report EIO (DataPath::write); the bytes are
    # journaled and buffered anyway. Like an application that handles EIO, retry.
    global errors
    for attempt in range(40):
        try:
            return fn()
        except OSError as e:
            errors += 1
            print(f"{what}: {e}", file=sys.stderr)
            time.sleep(0.25)
    sys.exit(f"{what} kept failing after dfs-meta came back")
with open(src, "rb") as s:
    data = s.read()
fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
MiB = 1 << 20
for i in range(160):
    if i == 96:  # dfs-meta is frozen now, while the flushes of the first 96 MiB are under way
        open(os.path.join(work, "burst.mid"), "w").close()
    retried(f"write {i}", lambda: os.pwrite(fd, data[i * MiB:(i + 1) * MiB], i * MiB))
while not os.path.exists(os.path.join(work, "meta.back")):
    time.sleep(0.05)
for i in range(160, len(data) // MiB):  # the rest once dfs-meta is back
    retried(f"write {i}", lambda: os.pwrite(fd, data[i * MiB:(i + 1) * MiB], i * MiB))
retried("fsync", lambda: os.fsync(fd))  # an earlier background failure is reported once
os.close(fd)
print(f"errors reported to the writer: {errors}", file=sys.stderr)
PY
WRITER=$!
for _ in $(seq 1000); do [ -e "$CLUSTER_DIR/burst.mid" ] && break; sleep 0.01; done
[ -e "$CLUSTER_DIR/burst.mid" ] || fail "the writer did not get through its burst"
META_PID=$(pid_of meta)
kill -STOP "$META_PID"
sleep 5
kill -CONT "$META_PID"
echo "dfs-meta runs again at $(date +%T.%N)"
touch "$CLUSTER_DIR/meta.back"
wait "$WRITER" || { cat "$CLUSTER_DIR/writer.err"; fail "the writer failed after dfs-meta came back"; }
cat "$CLUSTER_DIR/writer.err"
failed=$(grep -c "background flush of inode .* failed" "$CLUSTER_DIR/fuse_mnt.log" || true)
echo "background flushes that failed while dfs-meta was frozen: $failed"
[ "$failed" -gt 0 ] || fail "no flush failed while dfs-meta was frozen: the test did not test anything"

step "the file reads back byte-identical: this mount, a second mount, after a remount"
cmp "$SRC" "$MNT/stream" || fail "streamed file differs on the writer's mount"
B=$CLUSTER_DIR/b
mount_volume "$B"
cmp "$SRC" "$B/stream" || fail "streamed file differs on a second mount"
unmount_volume "$B"
unmount_volume "$MNT"
mount_volume "$MNT"
cmp "$SRC" "$MNT/stream" || fail "streamed file differs after a remount"
step "ok"
