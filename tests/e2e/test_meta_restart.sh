#!/usr/bin/env bash
# dfs-meta restarted under a running write workload (docs/consistency.md,
# "Metadata node restart"): a cp -a of a tree, a data workload that records
# every write, and a namespace workload (O_EXCL creates, renames, links,
# unlinks, mkdir/rmdir) run while dfs-meta is stopped and started twice (once
# SIGTERM, once SIGKILL). Every workload must finish without an error, and
# everything verifies afterwards: the tree, every recorded write, the exact set
# of names the namespace workload expects (a retried create/unlink that was
# applied twice would show up as an error or a wrong tree). A streaming writer
# (bursts of 64 MiB, whose flushes overlap: one commits while the next is cut)
# runs across both restarts too, and its file must read back byte-identical.
source "$(dirname "$0")/lib.sh"
cluster_start 6
mount_volume "$MNT"

make_tree "$CLUSTER_DIR/src" 1500 3
head -c 512M /dev/urandom >"$CLUSTER_DIR/stream.src"
step "workloads start; dfs-meta restarted twice under them"
cp -a "$CLUSTER_DIR/src" "$MNT/tree" 2>"$CLUSTER_DIR/cp.err" &
CP=$!
mkdir "$MNT/data" "$MNT/ns"
python3 "$DFS_SOURCE/tests/e2e/crash_workload.py" write "$MNT/data" "$CLUSTER_DIR/writes.log" 30 \
  2>"$CLUSTER_DIR/data.err" &
DATA=$!
python3 "$DFS_SOURCE/tests/e2e/namespace_churn.py" "$MNT/ns" 30 "$CLUSTER_DIR/ns.json" \
  2>"$CLUSTER_DIR/ns.err" &
NS=$!
python3 - "$CLUSTER_DIR/stream.src" "$MNT/stream" 2>"$CLUSTER_DIR/stream.err" <<'PY' &
import sys, time
with open(sys.argv[1], "rb") as src, open(sys.argv[2], "wb") as dst:
    for burst in range(8):
        for _ in range(64):
            dst.write(src.read(1 << 20))
        dst.flush()
        time.sleep(2)
PY
STREAM=$!
sleep 5
stop_daemon meta TERM
start_meta
echo "dfs-meta restarted after SIGTERM"
sleep 8
stop_daemon meta KILL
start_meta
echo "dfs-meta restarted after SIGKILL"

wait "$CP" || { cat "$CLUSTER_DIR/cp.err"; fail "cp -a failed across dfs-meta restarts"; }
wait "$DATA" || fail "data workload failed"
wait "$STREAM" || { cat "$CLUSTER_DIR/stream.err"; fail "streaming writer failed across dfs-meta restarts"; }
wait "$NS" || { cat "$CLUSTER_DIR/ns.err"; fail "namespace workload failed across dfs-meta restarts"; }
if [ -s "$CLUSTER_DIR/data.err" ]; then
  cat "$CLUSTER_DIR/data.err"
  fail "data workload saw an error"
fi
# The data workload keeps its files open to the end; closing them commits.
step "verify from a second mount (what is committed), then from the writer's mount"
B=$CLUSTER_DIR/b
mount_volume "$B"
for m in "$B" "$MNT"; do
  diff -r "$CLUSTER_DIR/src" "$m/tree" || fail "copied tree differs on $m"
  python3 "$DFS_SOURCE/tests/e2e/crash_workload.py" check "$m/data" "$CLUSTER_DIR/writes.log" ||
    fail "recorded writes differ on $m"
  python3 "$DFS_SOURCE/tests/e2e/namespace_churn.py" check "$m/ns" "$CLUSTER_DIR/ns.json" ||
    fail "namespace workload's tree differs on $m"
  cmp "$CLUSTER_DIR/stream.src" "$m/stream" || fail "streamed file differs on $m"
done
unmount_volume "$B"
grep -c "retried: answered with the stored reply" "$CLUSTER_DIR/meta.log" || true
step "verify again after a remount (what was acknowledged is committed)"
unmount_volume "$MNT"
mount_volume "$MNT"
diff -r "$CLUSTER_DIR/src" "$MNT/tree" || fail "copied tree differs after remount"
python3 "$DFS_SOURCE/tests/e2e/crash_workload.py" check "$MNT/data" "$CLUSTER_DIR/writes.log" ||
  fail "recorded writes differ after remount"
python3 "$DFS_SOURCE/tests/e2e/namespace_churn.py" check "$MNT/ns" "$CLUSTER_DIR/ns.json" ||
  fail "namespace tree differs after remount"
cmp "$CLUSTER_DIR/stream.src" "$MNT/stream" || fail "streamed file differs after remount"
step "ok"
