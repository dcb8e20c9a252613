#!/usr/bin/env bash
# Issue 3 / DESIGN §8: cold tiering. `dfsctl tier` recompresses chunks that were not
# read for a while at a high zstd level under a new fragment generation; the
# metadata node swaps the chunk records; `dfsctl gc` deletes the replaced fragments.
# Data must read back identical throughout: through a reader that still holds the old
# chunk records, after a remount, and with 2 of 6 storage nodes killed.
source "$(dirname "$0")/lib.sh"
cluster_start 6
mount_volume "$MNT"

step "write compressible text, incompressible bytes and a small tree"
python3 - "$CLUSTER_DIR/src" <<'PY'
import os, random, sys
root = sys.argv[1]
os.makedirs(root)
rng = random.Random(7)
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
         for _ in range(3000)]
def text(n):
    out, size = [], 0
    while size < n:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) + ".\n"
        out.append(line)
        size += len(line)
    return "".join(out)[:n].encode()
open(os.path.join(root, "text.txt"), "wb").write(text(24 << 20))
open(os.path.join(root, "random.bin"), "wb").write(os.urandom(4 << 20))
for i in range(40):
    open(os.path.join(root, "small-%02d.txt" % i), "wb").write(text(rng.randint(20000, 200000)))
PY
cp -a "$CLUSTER_DIR/src" "$MNT/data"
sync "$MNT"
sums=$(tree_sums "$CLUSTER_DIR/src")
raw1=$(stat_of raw_bytes)
comp1=$(stat_of compressed_bytes)
echo "before tiering: raw $raw1, compressed $comp1"

step "nothing is cold yet with --cold-after 3600"
out=$(dfsctl tier --cold-after 3600 --json)
echo "$out"
[ "$(json_field "$out" "j['examined']")" -eq 0 ] || fail "fresh chunks counted as cold"

step "a reader holds the old chunk records while the chunks are tiered and collected"
python3 - "$MNT/data/text.txt" "$CLUSTER_DIR/go" "$CLUSTER_DIR/reader.out" <<'PY' &
import hashlib, os, sys, time
path, go, out = sys.argv[1:]
h = hashlib.sha256()
with open(path, "rb", buffering=0) as f:
    h.update(f.read(1 << 20))        # the client now holds this file's extent window
    open(out + ".ready", "w").close()
    while not os.path.exists(go):
        time.sleep(0.05)
    while True:
        b = f.read(1 << 20)
        if not b:
            break
        h.update(b)
open(out, "w").write(h.hexdigest())
PY
reader=$!
for _ in $(seq 300); do [ -e "$CLUSTER_DIR/reader.out.ready" ] && break; sleep 0.1; done
[ -e "$CLUSTER_DIR/reader.out.ready" ] || fail "reader did not start"

out=$(dfsctl tier --cold-after 0 --level 19 --json)
echo "$out"
examined=$(json_field "$out" "j['examined']")
recompressed=$(json_field "$out" "j['recompressed']")
unchanged=$(json_field "$out" "j['unchanged']")
[ "$(json_field "$out" "j['failed']")" -eq 0 ] || fail "tier failed for some chunks"
[ "$recompressed" -gt 0 ] || fail "no chunk was recompressed"
[ "$unchanged" -gt 0 ] || fail "the incompressible chunks were not marked as tried"
[ $((recompressed + unchanged)) -eq "$examined" ] || fail "examined $examined != $recompressed + $unchanged"
raw2=$(stat_of raw_bytes)
comp2=$(stat_of compressed_bytes)
saved=$(json_field "$out" "j['raw_bytes_before'] - j['raw_bytes_after']")
echo "after tiering: raw $raw2 (-$((raw1 - raw2))), compressed $comp2 (-$((comp1 - comp2)))"
[ $((raw1 - raw2)) -eq "$saved" ] || fail "raw bytes fell by $((raw1 - raw2)), tier reported $saved"
[ $((comp1 - comp2)) -gt 0 ] || fail "compressed bytes did not fall"
# The text must gain clearly over zstd 1 (about 15-25 % for this kind of text).
[ $((saved * 100)) -gt $((raw1 * 5)) ] || fail "tiering saved only $saved of $raw1 raw bytes"

gc=$(dfsctl gc --grace 0 --json --timeout 120)
echo "$gc"
orphans=$(json_field "$gc" "j['orphan_fragments_deleted']")
[ "$orphans" -eq $((recompressed * 6)) ] || fail "gc deleted $orphans orphan fragments, expected $((recompressed * 6))"
touch "$CLUSTER_DIR/go"
wait "$reader" || fail "the reader failed"
want=$(sha256sum "$CLUSTER_DIR/src/text.txt" | cut -d' ' -f1)
[ "$(cat "$CLUSTER_DIR/reader.out")" = "$want" ] || fail "the reader that held old chunk records read wrong data"

step "everything reads back identical after a remount"
unmount_volume "$MNT"
mount_volume "$MNT"
[ "$(tree_sums "$MNT/data")" = "$sums" ] || fail "tiered data reads back differently"

step "and with 2 of 6 storage nodes killed (parity of the new generation)"
unmount_volume "$MNT"
stop_daemon storage2 KILL
stop_daemon storage5 KILL
mount_volume "$MNT"
[ "$(tree_sums "$MNT/data")" = "$sums" ] || fail "tiered data reads back differently with 2 nodes down"
unmount_volume "$MNT"
start_storage 2
start_storage 5
wait_nodes_up 6 30
mount_volume "$MNT"

step "a second run finds nothing new to do; a higher level tries again"
out=$(dfsctl tier --cold-after 0 --level 19 --json)
echo "$out"
[ "$(json_field "$out" "j['examined']")" -eq 0 ] || fail "chunks tiered at 19 were examined again at 19"
out=$(dfsctl tier --cold-after 0 --level 22 --max-chunks 5 --json)
echo "$out"
[ "$(json_field "$out" "j['examined']")" -eq 5 ] || fail "--level 22 --max-chunks 5 did not examine 5 chunks"
[ "$(json_field "$out" "j['failed']")" -eq 0 ] || fail "tier at 22 failed"
dfsctl gc --grace 0 --timeout 120 >/dev/null
[ "$(tree_sums "$MNT/data")" = "$sums" ] || fail "data reads back differently after a second tiering"

step "new writes after tiering still deduplicate against tiered chunks"
cp "$MNT/data/text.txt" "$MNT/text-copy.txt"
sync "$MNT"
[ "$(stat_of raw_bytes)" -eq "$raw2" ] || fail "a copy of a tiered file added raw bytes"
cmp "$CLUSTER_DIR/src/text.txt" "$MNT/text-copy.txt" || fail "copy of a tiered file differs"

step "delete everything: gc returns raw usage to 0"
rm -rf "$MNT/data" "$MNT/text-copy.txt"
sync "$MNT"
dfsctl gc --grace 0 --timeout 120
[ "$(stat_of raw_bytes)" -eq 0 ] || fail "raw bytes $(stat_of raw_bytes) left after deleting everything"
echo "PASS: $TEST_NAME"
