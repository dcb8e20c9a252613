#!/usr/bin/env bash
# Issue 3: global dedup (a second copy costs < 1 % raw bytes; a 5 %-changed second
# version of a tree adds roughly only the changed chunks) and GC back to the start.
source "$(dirname "$0")/lib.sh"
cluster_start 6
mount_volume "$MNT"

raw() { stat_of raw_bytes; }
base=$(raw)
echo "raw bytes at start: $base"

step "the same 100 MB file under a second name"
head -c 100000000 /dev/urandom >"$CLUSTER_DIR/a.bin"
cp "$CLUSTER_DIR/a.bin" "$MNT/a.bin"
sync "$MNT"  # fsync of the mount directory: everything buffered is committed
raw1=$(raw)
cp "$MNT/a.bin" "$MNT/a-copy.bin"
sync "$MNT"  # fsync of the mount directory: everything buffered is committed
raw2=$(raw)
first=$((raw1 - base))
added=$((raw2 - raw1))
echo "first copy added $first raw bytes, second copy $added"
[ "$first" -gt 100000000 ] || fail "first copy added only $first raw bytes (parity missing?)"
[ "$first" -lt 170000000 ] || fail "first copy added $first raw bytes (expected ~1.5x of 100 MB)"
[ $((added * 100)) -lt "$first" ] || fail "second copy added $added raw bytes (>= 1 %)"
cmp "$CLUSTER_DIR/a.bin" "$MNT/a-copy.bin" || fail "the deduplicated copy reads back differently"

step "a second version of a tree with 5 % of files changed"
make_tree "$CLUSTER_DIR/v1" 2000 11
cp -a "$CLUSTER_DIR/v1" "$MNT/v1"
sync "$MNT"  # fsync of the mount directory: everything buffered is committed
raw3=$(raw)
cp -a "$CLUSTER_DIR/v1" "$CLUSTER_DIR/v2"
python3 - "$CLUSTER_DIR/v2" <<'PY'
import os, random, sys
rng = random.Random(5)
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(sys.argv[1]) for f in fs
               if not os.path.islink(os.path.join(d, f)) and os.path.getsize(os.path.join(d, f)) > 0)
for path in rng.sample(files, len(files) // 20):
    data = bytearray(open(path, "rb").read())
    pos = rng.randrange(len(data))
    data[pos:pos] = b"<changed %d>" % rng.getrandbits(32)
    open(path, "wb").write(data)
PY
cp -a "$CLUSTER_DIR/v2" "$MNT/v2"
sync "$MNT"  # fsync of the mount directory: everything buffered is committed
raw4=$(raw)
v1=$((raw3 - raw2))
v2=$((raw4 - raw3))
echo "tree v1 added $v1 raw bytes, v2 (5 % changed) added $v2"
[ $((v2 * 100)) -lt $((v1 * 20)) ] || fail "v2 added $v2 raw bytes, more than 20 % of v1's $v1"
diff -r --no-dereference "$CLUSTER_DIR/v2" "$MNT/v2" || fail "v2 reads back differently"
dfsctl stats

step "delete everything and collect garbage: raw usage returns to the start"
rm -rf "$MNT/v1" "$MNT/v2" "$MNT/a.bin" "$MNT/a-copy.bin"
sync "$MNT"  # fsync of the mount directory: everything buffered is committed
dfsctl gc --grace 0 --timeout 120
final=$(raw)
echo "raw bytes after gc: $final (start: $base)"
[ "$final" -eq "$base" ] || fail "raw usage $final did not return to $base after GC"
[ "$(stat_of unreferenced_chunks)" -eq 0 ] || fail "unreferenced chunks remain after GC"
# Fragment counts reach the metadata node with the storage nodes' heartbeats (1 s).
deadline=$((SECONDS + 15))
while :; do
  used=$(json_field "$(dfsctl node list --json)" "sum(n['fragments'] for n in j['nodes'])")
  [ "$used" -eq 0 ] || ((SECONDS >= deadline)) && break
  sleep 1
done
echo "fragments left on storage nodes: $used"
[ "$used" -eq 0 ] || fail "$used fragments left on storage nodes after GC"
echo "PASS: $TEST_NAME"
