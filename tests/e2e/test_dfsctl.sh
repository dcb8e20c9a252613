#!/usr/bin/env bash
# Issue 5: every dfsctl command against a running cluster, --json parsed by the test,
# human tables, and the error paths (unreachable cluster, wrong arguments, refusals).
source "$(dirname "$0")/lib.sh"
cluster_start 6
mount_volume "$MNT"
head -c 3000000 /dev/urandom >"$MNT/data.bin"
echo small >"$MNT/small.txt"
sync "$MNT"  # fsync of the mount directory: everything buffered is committed

step "status"
dfsctl status | tee "$CLUSTER_DIR/status.txt"
grep -q "6 of 6 storage nodes up" "$CLUSTER_DIR/status.txt" || fail "status table"
j=$(dfsctl status --json)
[ "$(json_field "$j" "j['health']")" = healthy ] || fail "status --json health"
[ "$(json_field "$j" "j['nodes_up']")" -eq 6 ] || fail "status --json nodes_up"
[ "$(json_field "$j" "len(j['nodes'])")" -eq 6 ] || fail "status --json nodes"

step "node list"
dfsctl node list | grep -c " up " | grep -qx 6 || fail "node list table"
j=$(dfsctl node list --json)
[ "$(json_field "$j" "sorted(n['state'] for n in j['nodes']) == ['up']*6")" = True ] || fail "node list --json"
[ "$(json_field "$j" "all(n['capacity_bytes'] > 0 for n in j['nodes'])")" = True ] || fail "capacity"

step "volume create / list / show / set"
dfsctl volume create archive --k 3 --m 2 --chunk-avg 128K --chunk-min 32K --chunk-max 512K --compression 3
j=$(dfsctl volume show archive --json)
[ "$(json_field "$j" "(j['k'], j['m'], j['chunk_avg'], j['compression_level'])")" = "(3, 2, 131072, 3)" ] ||
  fail "volume show --json: $j"
dfsctl volume set archive --compression 9
[ "$(json_field "$(dfsctl volume show archive --json)" "j['compression_level']")" -eq 9 ] || fail "volume set"
j=$(dfsctl volume list --json)
[ "$(json_field "$j" "sorted(v['name'] for v in j['volumes'])")" = "['archive', 'default']" ] || fail "volume list"
dfsctl volume list | grep -q "^archive *3+2" || fail "volume list table"
mount_volume "$CLUSTER_DIR/archive" archive
echo "in archive" >"$CLUSTER_DIR/archive/f" && [ "$(cat "$CLUSTER_DIR/archive/f")" = "in archive" ] ||
  fail "the new volume is not usable"

step "stats"
j=$(dfsctl stats --json)
[ "$(json_field "$j" "j['logical_bytes'] >= 3000000")" = True ] || fail "stats logical: $j"
[ "$(json_field "$j" "1.4 < j['ec_overhead'] < 1.8")" = True ] || fail "stats EC overhead: $j"
dfsctl stats | grep -q "dedup ratio" || fail "stats table"

step "gc and version"
rm "$MNT/data.bin"
j=$(dfsctl gc --grace 0 --json)
[ "$(json_field "$j" "j['chunks_deleted'] > 0")" = True ] || fail "gc collected nothing: $j"
json_field "$(dfsctl version --json)" "j['protocol']" | grep -qx 1 || fail "version --json"
dfsctl version | grep -q "^dfsctl" || fail "version table"

step "error paths: refusals, wrong arguments, unreachable cluster"
expect_exit() {  # expect_exit CODE PATTERN CMD...
  local code=$1 pattern=$2 out rc
  shift 2
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
  [ "$rc" -eq "$code" ] || fail "'$*' exited $rc, expected $code: $out"
  [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "'$*' printed more than one line: $out"
  echo "$out" | grep -qi "$pattern" || fail "'$*' said: $out"
  echo "ok: $* -> $out"
}
expect_exit 1 "only 6" dfsctl volume create wide --k 5 --m 3
expect_exit 1 "no such volume" dfsctl volume show nope
expect_exit 1 "exists" dfsctl volume create archive
expect_exit 2 "unknown command" dfsctl frobnicate
expect_exit 2 "unknown option" dfsctl status --frobnicate
expect_exit 2 "compression" dfsctl volume set archive --compression 99
expect_exit 1 "cannot reach" "$DFS_BIN/dfsctl" --meta 127.0.0.1:1 --timeout 3 status
expect_exit 1 "cannot reach" env DFS_META=127.0.0.1:1 "$DFS_BIN/dfsctl" --timeout 3 node list
echo "PASS: $TEST_NAME"
