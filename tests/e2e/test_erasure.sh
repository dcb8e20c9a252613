#!/usr/bin/env bash
# Issue 3: with 2 of 6 storage nodes killed every file reads back byte-identical; with 3
# down reads fail with EIO, never wrong data; a flipped byte inside a fragment file is
# detected and repaired from parity; a volume wider than the live cluster is refused.
source "$(dirname "$0")/lib.sh"
cluster_start 6
mount_volume "$MNT"

step "write data"
head -c 30000000 /dev/urandom >"$CLUSTER_DIR/r.bin"
cp "$CLUSTER_DIR/r.bin" "$MNT/r.bin"
make_tree "$CLUSTER_DIR/src" 400 21
cp -a "$CLUSTER_DIR/src" "$MNT/tree"
sync "$MNT"  # fsync of the mount directory: everything buffered is committed
sums=$(tree_sums "$MNT" )

remount() { unmount_volume "$MNT"; mount_volume "$MNT" default "op_timeout=10"; }

step "2 storage nodes killed (SIGKILL): every file byte-identical"
stop_daemon storage2 KILL
stop_daemon storage5 KILL
remount
[ "$(tree_sums "$MNT")" = "$sums" ] || fail "degraded read returned different data"

step "3 nodes down: EIO for affected reads, never wrong data"
stop_daemon storage6 KILL
remount
eio=0
good=0
while read -r sum path; do
  if got=$(sha256sum "$MNT/${path#./}" 2>"$CLUSTER_DIR/err"); then
    [ "${got%% *}" = "$sum" ] || fail "WRONG DATA for $path with 3 nodes down"
    good=$((good + 1))
  else
    grep -qi "input/output error" "$CLUSTER_DIR/err" || fail "unexpected error for $path: $(cat "$CLUSTER_DIR/err")"
    eio=$((eio + 1))
  fi
done <<<"$sums"
echo "with 3 nodes down: $good files readable, $eio failed with EIO"
[ "$eio" -gt 0 ] || fail "no read failed with 3 of 6 nodes down"
kill -0 "$(pid_of fuse_mnt)" || fail "dfs-fuse died"

step "bring the nodes back; flip bytes inside fragment files of one node"
for i in 2 5 6; do start_storage "$i"; done
wait_nodes_up 6 30
unmount_volume "$MNT"
stop_daemon storage4 TERM
python3 - "$CLUSTER_DIR/storage4" <<'PY'
import os, sys
flipped = 0
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        path = os.path.join(d, f)
        if "index" in path or f in ("uuid",) or os.path.getsize(path) < 4096:
            continue
        with open(path, "r+b") as fh:
            size = os.path.getsize(path)
            for off in range(2048, size, 16384):
                fh.seek(off)
                b = fh.read(1)
                fh.seek(off)
                fh.write(bytes([b[0] ^ 0x5A]))
                flipped += 1
print("flipped", flipped, "bytes")
assert flipped > 0
PY
start_storage 4
wait_nodes_up 6 30
mount_volume "$MNT"
[ "$(tree_sums "$MNT")" = "$sums" ] || fail "corrupted fragments produced wrong data"
grep -Eqi "checksum|corrupt" "$CLUSTER_DIR/storage4.log" "$CLUSTER_DIR/fuse_mnt.log" ||
  fail "the corruption was not logged"
info=$(dfsctl ping --storage "127.0.0.1:${STORAGE_PORTS[4]}")
echo "$info"

step "a volume needing more nodes than are up is refused"
out=$(dfsctl volume create wide --k 6 --m 3 2>&1) && fail "a 6+3 volume was created on 6 nodes"
echo "$out"
echo "$out" | grep -q "9" || fail "refusal does not say how many nodes are needed: $out"
dfsctl volume create narrow --k 2 --m 1 || fail "a 2+1 volume was refused"
mount_volume "$CLUSTER_DIR/narrow" narrow
echo hi >"$CLUSTER_DIR/narrow/x" && [ "$(cat "$CLUSTER_DIR/narrow/x")" = hi ] || fail "narrow volume unusable"
echo "PASS: $TEST_NAME"
