#!/usr/bin/env bash
# Issue 2: POSIX namespace semantics on a real mount (sparse files, unlink while open,
# atomic rename/exchange, links, ELOOP, name length, xattrs, permissions); writes through
# write-only (direct-I/O) opens coherent with every other open, and the same with
# direct_writes=0.
source "$(dirname "$0")/lib.sh"
cluster_start 6
mount_volume "$MNT"
step "POSIX semantics"
python3 "$DFS_SOURCE/tests/e2e/posix_semantics.py" "$MNT" || fail "a semantics check failed"
step "writes through write-only opens are coherent with other opens"
grep -q "direct writes on" "$CLUSTER_DIR/fuse_$(basename "$MNT").log" ||
  cluster_log "note: this kernel has no coherent direct writes; they go through the page cache"
python3 "$DFS_SOURCE/tests/e2e/write_coherence.py" "$MNT" || fail "a write coherence check failed"
step "the semantics survive a remount"
unmount_volume "$MNT"
mount_volume "$MNT"
[ "$(cat "$MNT/sem/b")" = C ] || fail "renamed file content after remount"
[ "$(stat -c %h "$MNT/sem/h2")" -eq 2 ] || fail "link count after remount"
[ "$(getfattr --only-values -n user.size "$MNT/sem/h2" | wc -c)" -eq 300 ] || fail "xattr after remount"
(cd "$MNT/coherence" && sha256sum --quiet -c expected.sha) || fail "directly written files after remount"
[ "$(stat -c %Y "$MNT/sem/mtime-tail")" = 1638620127 ] || fail "explicit mtime after remount"
step "the same with direct_writes=0 (through the page cache)"
unmount_volume "$MNT"
mount_volume "$MNT" default direct_writes=0
grep -q "direct writes off" "$CLUSTER_DIR/fuse_$(basename "$MNT").log" || fail "direct_writes=0 not in effect"
python3 "$DFS_SOURCE/tests/e2e/write_coherence.py" "$MNT" || fail "a write coherence check failed (direct_writes=0)"
echo "PASS: $TEST_NAME"
