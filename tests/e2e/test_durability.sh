#!/usr/bin/env bash
# Issue 2: a full cluster restart keeps every byte; a storage node killed with SIGKILL
# after acknowledging writes loses nothing.
source "$(dirname "$0")/lib.sh"
cluster_start 6
mount_volume "$MNT"

step "write files and record checksums"
make_tree "$MNT/tree" 600 7
head -c 60000000 /dev/urandom >"$MNT/big.bin"
sync "$MNT"  # fsync of the mount directory: everything buffered is committed
tree_sums "$MNT" >"$CLUSTER_DIR/sums.before"

step "stop the whole cluster and start it again"
cluster_stop
start_meta
for i in 1 2 3 4 5 6; do start_storage "$i"; done
wait_nodes_up 6 30
mount_volume "$MNT"
tree_sums "$MNT" >"$CLUSTER_DIR/sums.after"
diff "$CLUSTER_DIR/sums.before" "$CLUSTER_DIR/sums.after" || fail "checksums changed across a cluster restart"

step "kill -9 a storage node right after acknowledged writes, then restart it"
head -c 40000000 /dev/urandom >"$CLUSTER_DIR/acked.bin"
dd if="$CLUSTER_DIR/acked.bin" of="$MNT/acked.bin" bs=1M conv=fsync status=none
for i in $(seq 1 50); do head -c $((i * 5000)) /dev/urandom >"$MNT/small.$i"; done
sync "$MNT"/small.*
stop_daemon storage1 KILL
start_storage 1
wait_nodes_up 6 30
step "with two other nodes killed, everything must be read using node 1's fragments"
stop_daemon storage2 KILL
stop_daemon storage3 KILL
sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
cmp "$CLUSTER_DIR/acked.bin" "$MNT/acked.bin" || fail "acknowledged file differs after kill -9 and restart"
tree_sums "$MNT/tree" | diff <(grep ' ./tree/' "$CLUSTER_DIR/sums.before" | sed 's| ./tree/| ./|') - ||
  fail "tree differs with nodes 2 and 3 down"
for i in $(seq 1 50); do [ "$(stat -c %s "$MNT/small.$i")" -eq $((i * 5000)) ] || fail "small.$i size"; cat "$MNT/small.$i" >/dev/null || fail "small.$i unreadable"; done
echo "PASS: $TEST_NAME"
