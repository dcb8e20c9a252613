#!/usr/bin/env bash
# Issue 2: bad input is rejected and logged while the daemons keep serving; a missing
# volume fails the mount clearly; a dead metadata node gives EIO after a bounded
# deadline and the mount works again once it is back.
source "$(dirname "$0")/lib.sh"
cluster_start 6
S1=${STORAGE_PORTS[1]}

send_bytes() {  # send_bytes PORT MODE
  python3 - "$1" "$2" <<'PY'
import os, socket, struct, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
if mode == "garbage":
    s.sendall(os.urandom(64 * 1024))
elif mode == "truncated":
    # A Cap'n Proto frame header announcing one segment of 1000 words, then 16 bytes.
    s.sendall(struct.pack("<II", 0, 1000) + b"\x01" * 16)
elif mode == "huge":
    # A frame header announcing a 2^29-word segment: must hit the size limit.
    s.sendall(struct.pack("<II", 0, 1 << 29) + b"\0" * 4096)
elif mode == "segments":
    s.sendall(struct.pack("<I", 100000) + b"\0" * 64)
try:
    s.shutdown(socket.SHUT_WR)
    s.settimeout(5)
    s.recv(4096)
except OSError:
    pass
s.close()
PY
}

for target in "meta:$META_PORT" "storage:$S1"; do
  kind=${target%%:*}
  port=${target##*:}
  for mode in garbage truncated huge segments; do
    step "$mode bytes to the $kind port"
    send_bytes "$port" "$mode"
  done
done
step "the daemons are alive and serving"
dfsctl ping >/dev/null || fail "metadata node stopped serving after bad input"
dfsctl ping --storage "127.0.0.1:$S1" >/dev/null || fail "storage node stopped serving after bad input"
kill -0 "$(pid_of meta)" && kill -0 "$(pid_of storage1)" || fail "a daemon died"

step "wrong protocol version is refused with a clear error"
out=$(dfsctl ping --protocol-version 99 2>&1) && fail "meta accepted protocol 99"
echo "$out" | grep -qi "protocol version" || fail "unclear refusal: $out"
out=$(dfsctl ping --storage --protocol-version 99 "127.0.0.1:$S1" 2>&1) && fail "storage accepted protocol 99"
echo "$out" | grep -qi "protocol version" || fail "unclear refusal: $out"
grep -qi "protocol version" "$CLUSTER_DIR/meta.log" || fail "meta did not log the refused version"
grep -qi "protocol version" "$CLUSTER_DIR/storage1.log" || fail "storage did not log the refused version"
dfsctl status >/dev/null || fail "meta not serving after a refused handshake"

step "mounting a volume that does not exist fails with a clear message"
mkdir -p "$CLUSTER_DIR/nomnt"
set +e
out=$(timeout 60 "$DFS_BIN/dfs-fuse" "127.0.0.1:$META_PORT:/no-such-volume" "$CLUSTER_DIR/nomnt" 2>&1)
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "mount of a missing volume succeeded"
[ "$rc" -ne 124 ] || fail "mount of a missing volume hung"
echo "$out" | grep -qi "no such volume" || fail "unclear message: $out"
mountpoint -q "$CLUSTER_DIR/nomnt" && fail "a mount was left behind"

step "metadata node down: EIO after a bounded deadline, then recovery"
mount_volume "$MNT" default "op_timeout=3"
echo before >"$MNT/before"
stop_daemon meta KILL
start=$SECONDS
set +e
err=$(timeout 60 stat "$MNT/never-looked-up" 2>&1)
rc=$?
set -e
elapsed=$((SECONDS - start))
[ "$rc" -ne 124 ] || fail "stat hung for 60 s with the metadata node down"
[ "$rc" -ne 0 ] || fail "stat succeeded with the metadata node down"
echo "$err" | grep -qi "input/output error" || fail "expected EIO, got: $err"
echo "metadata node down: stat failed with EIO after ${elapsed}s"
[ "$elapsed" -le 30 ] || fail "EIO took ${elapsed}s (bound 30 s)"
start_meta
wait_nodes_up 6 30
deadline=$((SECONDS + 60))
until echo after >"$MNT/after" 2>/dev/null; do
  ((SECONDS < deadline)) || fail "the mount did not recover after the metadata node came back"
  sleep 1
done
[ "$(cat "$MNT/before")" = before ] && [ "$(cat "$MNT/after")" = after ] || fail "data wrong after recovery"
kill -0 "$(pid_of fuse_mnt)" || fail "dfs-fuse died"
echo "PASS: $TEST_NAME"
