#!/usr/bin/env bash
# Consistency between clients (docs/consistency.md): two dfs-fuse mounts of one
# volume. (a) close-to-open; (b) cache invalidation delay with long kernel
# cache timeouts (only invalidation can refresh B); (c) concurrent writers on
# non-overlapping ranges merge; (d) concurrent writers on the same range: one
# pattern per write range, never a mix, and the conflict is counted; (e) after
# a dfs-meta restart, invalidations reach an idle mount again; (b2) changes A
# absorbed in its new directories are recalled by B's first look.
source "$(dirname "$0")/lib.sh"
cluster_start 6
A=$CLUSTER_DIR/a
B=$CLUSTER_DIR/b
# 30 s kernel caches on both: a change becomes visible on the other mount only
# through the metadata node's invalidations (or a new open: close-to-open).
mount_volume "$A" default "attr_timeout=30,entry_timeout=30"
mount_volume "$B" default "attr_timeout=30,entry_timeout=30"

step "(a) close-to-open: B's next open reads what A wrote and closed"
head -c 3000000 /dev/urandom >"$CLUSTER_DIR/v1"
head -c 3000000 /dev/urandom >"$CLUSTER_DIR/v2"
cp "$CLUSTER_DIR/v1" "$A/f"
cmp "$CLUSTER_DIR/v1" "$B/f" || fail "B does not read A's first version"
cat "$B/f" >/dev/null  # B's kernel now caches the pages
dd if="$CLUSTER_DIR/v2" of="$A/f" conv=notrunc status=none
cmp "$CLUSTER_DIR/v2" "$B/f" || fail "B's next open does not read A's second version"
printf 'small' >"$A/small"
[ "$(cat "$B/small")" = small ] || fail "small file not seen by B"
printf 'SMALL' >"$A/small"
[ "$(cat "$B/small")" = SMALL ] || fail "small file rewrite not seen by B"
# Mode, owner and times set while the written bytes are still buffered (as tar
# does) are deferred to the file's commit: A sees them at once, B after A's close.
for size in 100 300000; do
  python3 - "$A/attrs$size" "$size" <<'PY' || fail "deferred attributes wrong on A (size $size)"
import os, sys
path, size = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, os.urandom(size))
os.fchown(fd, 1234, 5678)
os.fchmod(fd, 0o4751)
os.utime(fd, ns=(1000000000123456789, 1200000000987654321))
st = os.fstat(fd)
assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o4751, 1234, 5678), st
assert (st.st_atime_ns, st.st_mtime_ns, st.st_size) == (1000000000123456789, 1200000000987654321, size), st
os.close(fd)
PY
  got=$(stat -c '%a %u %g %s %X %Y' "$B/attrs$size")
  [ "$got" = "4751 1234 5678 $size 1000000000 1200000000" ] || fail "B sees '$got' for attrs$size"
  [ "$(stat -c '%y' "$B/attrs$size")" = "$(stat -c '%y' "$A/attrs$size")" ] || fail "mtime differs between A and B"
done

# wait_until START CMD...: polls every 10 ms until CMD succeeds; prints the delay
# in ms since START (an $EPOCHREALTIME taken right after the change on A). Pure
# bash, so the measurement costs no interpreter start-up. Fails after 5 s.
wait_until() {
  local start=${1/./} now
  shift
  while :; do
    if "$@" >/dev/null 2>&1; then
      now=${EPOCHREALTIME/./}
      echo $(((now - start) / 1000))
      return 0
    fi
    now=${EPOCHREALTIME/./}
    if ((now - start > 5000000)); then
      echo 5000
      return 1
    fi
    sleep 0.01
  done
}
attrs_are() { [ "$(stat -c %s.%a "$1")" = "$2" ]; }
entries_changed() { [ -e "$1" ] && [ ! -e "$2" ]; }

step "(b) invalidation: B sees A's attribute and namespace changes (20 trials)"
mkdir "$A/dir"
delays=()
for i in $(seq 20); do
  printf 'x' >"$A/dir/f$i"
  chmod 644 "$A/dir/f$i"
  # B caches the attributes and the listing (30 s timeouts).
  [ "$(stat -c %s.%a "$B/dir/f$i")" = 1.644 ] || fail "trial $i: B does not see the new file"
  ls "$B/dir" >/dev/null
  [ -e "$B/dir/gone$i" ] && fail "trial $i: stale entry"  # B may cache this miss (30 s)
  touch "$A/dir/gone$i"
  t0=$EPOCHREALTIME
  d=$(wait_until "$t0" stat "$B/dir/gone$i") || fail "trial $i: B does not see gone$i after 5 s"
  delays+=("$d")
  stat "$B/dir/gone$i" >/dev/null  # B caches the entry and its attributes (30 s)
  # A changes size and mode, creates one entry and removes another.
  printf 'yyyy' >>"$A/dir/f$i"
  chmod 600 "$A/dir/f$i"
  t0=$EPOCHREALTIME
  d=$(wait_until "$t0" attrs_are "$B/dir/f$i" 5.600) ||
    fail "trial $i: B still sees the old attributes after 5 s ($(stat -c %s.%a "$B/dir/f$i"))"
  delays+=("$d")
  touch "$A/dir/new$i"
  rm "$A/dir/gone$i"
  t0=$EPOCHREALTIME
  d=$(wait_until "$t0" entries_changed "$B/dir/new$i" "$B/dir/gone$i") ||
    fail "trial $i: B still sees the old entries after 5 s"
  delays+=("$d")
done
stats=$(printf '%s\n' "${delays[@]}" | sort -n | awk '{a[NR]=$1} END {print "median " a[int((NR+1)/2)] " ms, max " a[NR] " ms over " NR " measurements"}')
echo "invalidation delay: $stats (target <= 1000 ms, limit 5000 ms)"

step "(b2) absorbed changes: B's first look into A's new tree recalls them all"
# A makes a tree in directories it created (absorbed: acknowledged before
# dfs-meta applied them); B looks at once, before A could have sent them all.
mkdir "$A/tree"
python3 - "$A/tree" <<'PY'
import os, sys
d = sys.argv[1]
for i in range(20):
    sub = os.path.join(d, f"d{i}")
    os.mkdir(sub)
    for j in range(10):
        with open(os.path.join(sub, f"f{j}"), "w") as f:
            f.write(f"{i}.{j}")
    os.rename(os.path.join(sub, "f0"), os.path.join(sub, "moved"))
    os.unlink(os.path.join(sub, "f1"))
    os.chmod(sub, 0o751)
PY
names=$(find "$B/tree" | wc -l)
[ "$names" = "$((1 + 20 * 10))" ] || fail "B sees $names names of A's new tree, expected 201"
[ "$(stat -c %a "$B/tree/d19")" = 751 ] || fail "B sees mode $(stat -c %a "$B/tree/d19") of d19, expected 751"
[ "$(cat "$B/tree/d7/moved")" = "7.0" ] || fail "B reads '$(cat "$B/tree/d7/moved")' from d7/moved"
# The delegation ended with the recall: B's own change there is seen by A.
echo from-b >"$B/tree/d3/b"
sleep 2
[ "$(cat "$A/tree/d3/b" 2>/dev/null)" = from-b ] || fail "A does not see B's file in a recalled directory"

step "(c) concurrent writers on non-overlapping 1 MiB ranges of one 4 MiB file"
head -c $((4 << 20)) /dev/zero >"$A/merge"
for r in 0 1 2 3; do head -c $((1 << 20)) /dev/urandom >"$CLUSTER_DIR/r$r"; done
cat "$B/merge" >/dev/null
for round in 1 2 3; do
  dd if="$CLUSTER_DIR/r0" of="$A/merge" bs=64K seek=0 conv=notrunc status=none &
  p1=$!
  dd if="$CLUSTER_DIR/r1" of="$B/merge" bs=64K seek=16 conv=notrunc status=none &
  p2=$!
  dd if="$CLUSTER_DIR/r2" of="$A/merge" bs=64K seek=32 conv=notrunc status=none &
  p3=$!
  dd if="$CLUSTER_DIR/r3" of="$B/merge" bs=64K seek=48 conv=notrunc status=none &
  p4=$!
  wait $p1 $p2 $p3 $p4 || fail "a writer failed"
  cat "$CLUSTER_DIR/r0" "$CLUSTER_DIR/r1" "$CLUSTER_DIR/r2" "$CLUSTER_DIR/r3" >"$CLUSTER_DIR/merged"
  cmp "$CLUSTER_DIR/merged" "$A/merge" || fail "round $round: a range was lost (read on A)"
  cmp "$CLUSTER_DIR/merged" "$B/merge" || fail "round $round: a range was lost (read on B)"
  for r in 0 1 2 3; do head -c $((1 << 20)) /dev/urandom >"$CLUSTER_DIR/r$r"; done
done

step "(d) concurrent writers on the same range: one pattern per write range, conflict counted"
head -c $((1 << 20)) /dev/zero >"$A/same"
cat "$B/same" >/dev/null
conflicts_before=$(stat_of conflicts)
python3 - "$CLUSTER_DIR" <<'PY'
import sys
d = sys.argv[1]
open(d + "/pa", "wb").write(b"A" * (1 << 20))
open(d + "/pb", "wb").write(b"B" * (1 << 20))
PY
for round in 1 2 3 4 5; do
  # Both open the file at the same version, write 1 MiB, and close (one commit each).
  dd if="$CLUSTER_DIR/pa" of="$A/same" bs=1M conv=notrunc status=none &
  p1=$!
  dd if="$CLUSTER_DIR/pb" of="$B/same" bs=1M conv=notrunc status=none &
  p2=$!
  wait $p1 $p2 || fail "a writer failed"
  for m in "$A" "$B"; do
    python3 - "$m/same" <<'PY' || fail "round $round: mixed content in a write range"
import sys
data = open(sys.argv[1], "rb").read()
assert len(data) == 1 << 20, len(data)
step = 64 << 10
for off in range(0, len(data), step):
    piece = data[off:off + step]
    if piece not in (b"A" * len(piece), b"B" * len(piece)):
        sys.exit("mixed bytes in [%d, %d)" % (off, off + step))
# The whole 1 MiB was one write range of each writer: one pattern overall.
if data not in (b"A" * len(data), b"B" * len(data)):
    sys.exit("two patterns in one writer's range")
PY
  done
done
conflicts_after=$(stat_of conflicts)
echo "conflicts: before $conflicts_before, after $conflicts_after"
[ "$conflicts_after" -ge 1 ] || fail "dfsctl stats shows no conflict after 5 rounds of same-range writers"
step "(e) after a dfs-meta restart, invalidations reach an idle mount again"
printf 'restart' >"$A/after"
chmod 644 "$A/after"
[ "$(stat -c %a "$B/after")" = 644 ] || fail "B does not see the file before the restart"
stop_daemon meta
start_meta
sleep 1
chmod 600 "$A/after"  # A reconnects on this call; B (idle) at its next keepalive at the latest
t0=$EPOCHREALTIME
start=${t0/./}
until attrs_are "$B/after" 7.600; do
  now=${EPOCHREALTIME/./}
  ((now - start < 20000000)) || fail "B does not see A's change 20 s after a dfs-meta restart"
  sleep 0.05
done
now=${EPOCHREALTIME/./}
echo "after a dfs-meta restart B saw A's change after $(((now - start) / 1000)) ms (idle mounts reconnect within one keepalive period, 10 s)"
kill -0 "$(pid_of fuse_a)" || fail "dfs-fuse A died"
kill -0 "$(pid_of fuse_b)" || fail "dfs-fuse B died"
echo "PASS: $TEST_NAME"
