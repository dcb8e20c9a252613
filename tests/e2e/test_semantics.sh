#!/usr/bin/env bash
# Issue 2: POSIX namespace semantics on a real mount (sparse files, unlink while open,
# atomic rename/exchange, links, ELOOP, name length, xattrs, permissions).
source "$(dirname "$0")/lib.sh"
cluster_start 6
mount_volume "$MNT"
step "POSIX semantics"
python3 "$DFS_SOURCE/tests/e2e/posix_semantics.py" "$MNT" || fail "a semantics check failed"
step "the semantics survive a remount"
unmount_volume "$MNT"
mount_volume "$MNT"
[ "$(cat "$MNT/sem/b")" = C ] || fail "renamed file content after remount"
[ "$(stat -c %h "$MNT/sem/h2")" -eq 2 ] || fail "link count after remount"
[ "$(getfattr --only-values -n user.size "$MNT/sem/h2" | wc -c)" -eq 300 ] || fail "xattr after remount"
echo "PASS: $TEST_NAME"
