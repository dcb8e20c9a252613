#!/usr/bin/env bash
# Partial overwrites of a large file rewrite only the affected chunks: 4 KiB overwritten
# in the middle, at offset 0 and at the very end of a 1 GiB file each add one small chunk
# (unique bytes grow by > 0 and < 1 MiB, i.e. far less than one 256 KiB max chunk on
# either side), the file size and logical bytes do not change, and the file reads back
# exactly (after a remount, so from the cluster). A truncate to a mid point followed by
# GC frees the chunks past the new end: unique bytes drop to the new size plus at most
# the chunk that straddles it and the small overwrite chunks.
source "$(dirname "$0")/lib.sh"

SIZE=$((1024 * 1024 * 1024))
CUT=700000001         # truncate target: not chunk- or page-aligned
MAX_CHUNK=262144      # volume default (chunks of 16/64/256 KiB)
OVERWRITE_LIMIT=$((1024 * 1024))

step "compile the data generator"
cc -O2 -o "$CLUSTER_DIR/datagen" "$DFS_SOURCE/tests/e2e/datagen.c" -lcrypto ||
  fail "cannot compile tests/e2e/datagen.c (needs cc and the OpenSSL headers)"

cluster_start 6
mount_volume "$MNT"

FILE=$MNT/big.bin
REF=$CLUSTER_DIR/ref.bin

# snapshot NAME: records the storage accounting as NAME_unique, NAME_raw, NAME_chunks,
# NAME_logical, NAME_unref.
snapshot() {
  local j
  j=$(dfsctl stats --json)
  eval "$(json_field "$j" "'$1_unique=%d $1_raw=%d $1_chunks=%d $1_logical=%d $1_unref=%d' % (j['unique_bytes'], j['raw_bytes'], j['chunks'], j['logical_bytes'], j['unreferenced_chunks'])")"
}

# verify: remounts (nothing can come from the kernel's page cache or the client's
# buffers), then compares the file with the local reference copy.
verify() {
  unmount_volume "$MNT"
  mount_volume "$MNT"
  [ "$(stat -c %s "$FILE")" -eq "$(stat -c %s "$REF")" ] ||
    fail "size $(stat -c %s "$FILE"), expected $(stat -c %s "$REF")"
  cmp "$REF" "$FILE" || fail "the file does not read back as expected"
}

step "write 1 GiB of unique, incompressible data"
"$CLUSTER_DIR/datagen" write random "$SIZE" 7 "$REF" >"$CLUSTER_DIR/ref.sha256"
t0=$SECONDS
"$CLUSTER_DIR/datagen" write random "$SIZE" 7 "$FILE" >/dev/null
sync "$FILE"
echo "written in $((SECONDS - t0)) s"
snapshot s0
echo "after the write: unique $s0_unique, raw $s0_raw, chunks $s0_chunks, logical $s0_logical"
[ "$s0_unique" -ge "$SIZE" ] || fail "unique bytes $s0_unique < file size $SIZE"

# overwrite NAME OFFSET: writes 4 KiB of new random bytes at OFFSET into the file and
# the reference copy, then checks what it cost and that the file reads back exactly.
prev=s0
overwrite() {
  local name=$1 offset=$2
  step "overwrite 4 KiB at offset $offset ($name)"
  head -c 4096 /dev/urandom >"$CLUSTER_DIR/patch"
  dd if="$CLUSTER_DIR/patch" of="$FILE" bs=4096 seek="$offset" oflag=seek_bytes conv=notrunc,fsync status=none
  dd if="$CLUSTER_DIR/patch" of="$REF" bs=4096 seek="$offset" oflag=seek_bytes conv=notrunc status=none
  snapshot "$name"
  local du=$((${name}_unique - ${prev}_unique)) dr=$((${name}_raw - ${prev}_raw))
  local dc=$((${name}_chunks - ${prev}_chunks)) dl=$((${name}_logical - ${prev}_logical))
  echo "$name: unique +$du bytes, raw +$dr bytes, chunks +$dc, logical +$dl"
  echo "RESULT: $TEST_NAME: 4 KiB overwrite ($name) of a 1 GiB file: unique +$du bytes, raw +$dr bytes, chunks +$dc"
  [ "$du" -gt 0 ] || fail "$name: unique bytes did not grow ($du): was the overwrite stored?"
  [ "$du" -lt "$OVERWRITE_LIMIT" ] || fail "$name: a 4 KiB overwrite added $du unique bytes (limit $OVERWRITE_LIMIT)"
  [ "$dc" -ge 1 ] && [ "$dc" -le 3 ] || fail "$name: a 4 KiB overwrite added $dc chunks (expected 1 to 3)"
  [ "$dl" -eq 0 ] || fail "$name: logical bytes changed by $dl on an in-place overwrite"
  verify
  prev=$name
}

overwrite middle $((SIZE / 2 - 2048))
overwrite start 0
overwrite end $((SIZE - 4096))

step "truncate to $CUT bytes, then collect garbage"
truncate -s "$CUT" "$FILE"
truncate -s "$CUT" "$REF"
snapshot cut
dfsctl gc --grace 0 --timeout 120
snapshot gc
echo "truncate: unique $end_unique -> $cut_unique (before GC) -> $gc_unique (after GC);" \
  "chunks $end_chunks -> $gc_chunks; raw $end_raw -> $gc_raw; unreferenced after GC $gc_unref"
[ "$gc_unref" -eq 0 ] || fail "$gc_unref unreferenced chunks remain after GC"
[ "$gc_unique" -ge "$CUT" ] || fail "unique bytes $gc_unique < the file's $CUT bytes after GC"
# Kept: every byte below CUT once, the chunk straddling CUT (< one max chunk), and the
# two overwrite chunks below CUT, which live alongside the chunks they partly cover.
limit=$((CUT + MAX_CHUNK + 2 * OVERWRITE_LIMIT))
[ "$gc_unique" -le "$limit" ] || fail "unique bytes $gc_unique after truncate + GC, expected at most $limit"
[ "$gc_raw" -lt "$end_raw" ] || fail "raw bytes did not drop after truncate + GC ($end_raw -> $gc_raw)"
verify
dfsctl stats
echo "PASS: $TEST_NAME"
