#!/usr/bin/env bash
# Directories delegated to a mount (docs/consistency.md, "Delegated directories"):
# the mount that made a directory is the only one changing it until another
# mount looks, so (a) the kernel keeps the names there past entry_timeout
# (delegated_timeout) and the client keeps its files' attributes past
# attr_timeout: a stat after the timeouts costs no lookup and no RPC; (b) in a
# directory that is not delegated the names still expire with entry_timeout;
# (c) another mount's first look ends the delegation and every change it makes
# afterwards is seen by the first mount, (d) exactly: times, sizes and link
# counts agree between the mounts after absorbed renames, unlinks and writes.
source "$(dirname "$0")/lib.sh"
cluster_start 6
A=$CLUSTER_DIR/a
B=$CLUSTER_DIR/b
PORT=$(free_port)
mount_volume "$A" default "metrics_listen=127.0.0.1:$PORT"
mount_volume "$B" default
wait_port "$PORT" 10 || fail "fuse metrics port not listening"

# lookups_stat_all DIR N: FUSE lookups mount A handled while DIR/f1..fN were
# stat'ed, from inside DIR (so the walk to DIR itself is not counted).
lookups_stat_all() {
  # -I: the directory python runs in is not on sys.path, so imports never list
  # DIR (a listing refreshes the kernel's names there).
  (cd / && python3 -I - "$PORT" "$1" "$2") <<'PY'
import os, re, sys, urllib.request
def lookups():
    url = f"http://127.0.0.1:{sys.argv[1]}/metrics"
    body = urllib.request.urlopen(url, timeout=10).read().decode()
    m = re.search(r'^dfs_fuse_ops_total\{op="lookup"\} (\S+)$', body, re.M)
    return int(float(m.group(1))) if m else 0
names = [f"f{i}" for i in range(1, int(sys.argv[3]) + 1)]
lookups()  # every module is imported before the chdir
os.chdir(sys.argv[2])
before = lookups()
for n in names:
    os.stat(n)
after = lookups()
os.chdir("/")
print(after - before)
PY
}
# stat_all DIR N: stat(1) of DIR/f1..fN by name (no listing).
stat_all() { for i in $(seq "$2"); do stat -c %s "$1/f$i"; done; }
make_files() {  # make_files DIR N
  mkdir "$1"
  for i in $(seq "$2"); do printf '%s' "$i" >"$1/f$i"; done
}

step "(a) names and attributes in a delegated directory outlive the 1 s timeouts"
make_files "$A/own" 200
sleep 4  # past entry_timeout and attr_timeout (1 s each; this kernel expires them after 1.5-3 s)
n=$(lookups_stat_all "$A/own" 200)
[ "$n" -eq 0 ] || fail "stat of 200 names in A's delegated directory cost $n lookups, expected 0"
[ "$(stat -c %s "$A/own/f123")" = 3 ] || fail "wrong size of own/f123"
# Written data: the commit's reply replaces the cached attributes.
printf 'abcdef' >>"$A/own/f7"
sync "$A/own/f7"
sleep 1.5
[ "$(stat -c %s "$A/own/f7")" = 7 ] || fail "A sees size $(stat -c %s "$A/own/f7") of own/f7, expected 7"

step "(b) names in a directory another mount made expire with entry_timeout"
make_files "$B/theirs" 200
stat_all "$A/theirs" 200 >/dev/null  # recalls B's delegation; A caches the names (1 s)
sleep 4
n=$(lookups_stat_all "$A/theirs" 200)
[ "$n" -ge 200 ] || fail "stat of 200 expired names cost only $n lookups"

step "(c) another mount's look ends the delegation; its changes reach A"
mkdir "$A/shared"
for i in $(seq 50); do printf 'x' >"$A/shared/f$i"; done
stat_all "$A/shared" 50 >/dev/null  # A's kernel holds the names (delegated: 60 s)
[ "$(ls "$B/shared" | wc -l)" = 50 ] || fail "B does not see A's 50 files"
mv "$B/shared/f1" "$B/shared/g1"
rm "$B/shared/f2"
printf 'yyyy' >>"$B/shared/f3"
ln "$B/shared/f4" "$B/shared/h4"
deadline=$((SECONDS + 5))
until [ ! -e "$A/shared/f1" ] && [ -e "$A/shared/g1" ] && [ ! -e "$A/shared/f2" ] &&
  [ "$(stat -c %s "$A/shared/f3")" = 5 ] && [ "$(stat -c %h "$A/shared/f4")" = 2 ]; do
  ((SECONDS < deadline)) || fail "A does not see B's changes in the recalled directory after 5 s: $(ls "$A/shared" | head -5 | tr '\n' ' ') f3=$(stat -c %s "$A/shared/f3") f4 links=$(stat -c %h "$A/shared/f4")"
  sleep 0.05
done
# A's own change there is synchronous now and seen by B.
mv "$A/shared/f5" "$A/shared/g5"
deadline=$((SECONDS + 5))
until [ -e "$B/shared/g5" ] && [ ! -e "$B/shared/f5" ]; do
  ((SECONDS < deadline)) || fail "B does not see A's rename after 5 s"
  sleep 0.05
done

step "(d) absorbed renames, unlinks and links agree with dfs-meta exactly"
mkdir "$A/exact"
for i in $(seq 20); do printf '%s' "$i" >"$A/exact/f$i"; done
sleep 1.2
mv "$A/exact/f1" "$A/exact/r1"          # a rename: its ctime changes
mv "$A/exact/f2" "$A/exact/f3"          # over an existing file
rm "$A/exact/f4"
printf 'more' >>"$A/exact/f5"
sleep 1.5
mine=$(cd "$A/exact" && stat -c '%n %s %h %Y.%y %Z.%z %a' r1 f3 f5 f6 | sort)
sync "$A/exact"
theirs=$(cd "$B/exact" && stat -c '%n %s %h %Y.%y %Z.%z %a' r1 f3 f5 f6 | sort)
[ "$mine" = "$theirs" ] || fail "A and B disagree:
A: $mine
B: $theirs"
[ ! -e "$B/exact/f1" ] && [ ! -e "$B/exact/f2" ] && [ ! -e "$B/exact/f4" ] ||
  fail "B still sees removed names"
[ "$(ls "$A/exact" | wc -l)" = 18 ] || fail "A lists $(ls "$A/exact" | wc -l) names, expected 18"
step "(e) files removed before their commit leave no client state behind"
# gauge NAME: a gauge of mount A.
gauge() {
  (cd / && python3 -I - "$PORT" "$1") <<'PY'
import re, sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10).read().decode()
m = re.search(r"^%s (\S+)$" % sys.argv[2], body, re.M)
print(int(float(m.group(1))) if m else -1)
PY
}
sync "$A"
before=$(gauge dfs_fuse_files_tracked)
mkdir "$A/brief"
# Each file is removed right after its close, while its commit has just been
# started: the kernel forgets the inode while its bytes are still buffered.
python3 - "$A/brief" <<'PY'
import os, sys
for i in range(300):
    path = os.path.join(sys.argv[1], f"f{i}")
    with open(path, "wb") as f:
        f.write(os.urandom(5000))
    os.unlink(path)
PY
rmdir "$A/brief"
deadline=$((SECONDS + 20))
while :; do
  now=$(gauge dfs_fuse_files_tracked)
  ((now <= before + 5)) && break
  ((SECONDS < deadline)) || fail "A still tracks $now files 20 s after removing 300 (before: $before)"
  sleep 0.5
done
[ "$(gauge dfs_fuse_cache_dirty_bytes)" = 0 ] || fail "dirty bytes left behind"

kill -0 "$(pid_of fuse_a)" || fail "dfs-fuse A died"
kill -0 "$(pid_of fuse_b)" || fail "dfs-fuse B died"
echo "PASS: $TEST_NAME"
