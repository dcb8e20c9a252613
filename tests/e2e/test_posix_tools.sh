#!/usr/bin/env bash
# Issue 2: everyday POSIX tools on a real mount behave as on a local disk.
source "$(dirname "$0")/lib.sh"

cluster_start 6
mount_volume "$MNT"

step "cp -a of a 9,000-file tree, then diff -r"
make_tree "$CLUSTER_DIR/src" 9000
cp -a "$CLUSTER_DIR/src" "$MNT/tree"
diff -r --no-dereference "$CLUSTER_DIR/src" "$MNT/tree" || fail "diff -r after cp -a differs"
[ "$(find "$MNT/tree" | wc -l)" -eq "$(find "$CLUSTER_DIR/src" | wc -l)" ] || fail "entry count differs"
# cp -a keeps modes, owners and nanosecond mtimes.
(cd "$CLUSTER_DIR/src" && find . -printf '%p %m %U %G %T@ %y\n' | sort) >"$CLUSTER_DIR/meta.src"
(cd "$MNT/tree" && find . -printf '%p %m %U %G %T@ %y\n' | sort) >"$CLUSTER_DIR/meta.dfs"
diff "$CLUSTER_DIR/meta.src" "$CLUSTER_DIR/meta.dfs" >/dev/null || fail "modes/owners/mtimes not preserved by cp -a"
hard=$(ls "$MNT/tree" | grep hardlink-of- | head -1)
[ "$(stat -c %h "$MNT/tree/$hard")" -eq 2 ] || fail "hard link count not preserved by cp -a"

step "rsync -a twice: the second run transfers nothing"
rsync -a "$CLUSTER_DIR/src/" "$MNT/rsynced/"
diff -r --no-dereference "$CLUSTER_DIR/src" "$MNT/rsynced" || fail "diff -r after rsync differs"
second=$(rsync -a --itemize-changes "$CLUSTER_DIR/src/" "$MNT/rsynced/")
[ -z "$second" ] || fail "second rsync transferred: $(echo "$second" | head -5)"

step "tar c / tar x round trip"
tar -C "$MNT" -cf "$CLUSTER_DIR/tree.tar" tree
mkdir "$MNT/untarred"
tar -C "$MNT/untarred" -xf "$CLUSTER_DIR/tree.tar"
diff -r --no-dereference "$CLUSTER_DIR/src" "$MNT/untarred/tree" || fail "tar round trip differs"

step "git init/add/commit/log/status"
mkdir "$MNT/repo"
cp -a "$CLUSTER_DIR/src/dir000" "$MNT/repo/"
(
  cd "$MNT/repo"
  git init -q
  git -c user.name=t -c user.email=t@example.com add -A
  git -c user.name=t -c user.email=t@example.com commit -qm first
  echo change >> dir000/added.txt
  git -c user.name=t -c user.email=t@example.com add -A
  git -c user.name=t -c user.email=t@example.com commit -qm second
  [ "$(git log --oneline | wc -l)" -eq 2 ] || exit 1
  [ -z "$(git status --porcelain)" ] || exit 1
  git fsck --no-progress >/dev/null
) || fail "git workflow failed"

step "compile and run a C program inside the mount"
mkdir "$MNT/cc"
cat >"$MNT/cc/hello.c" <<'C'
#include <stdio.h>
int main(void) { printf("hello from dfs %d\n", 6 * 7); return 0; }
C
(cd "$MNT/cc" && gcc -O2 -o hello hello.c) || fail "gcc failed"
[ "$("$MNT/cc/hello")" = "hello from dfs 42" ] || fail "compiled program printed the wrong thing"

step "sqlite3 database created and queried inside the mount"
sqlite3 "$MNT/db.sqlite" <<'SQL' || fail "sqlite3 failed"
CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 20000)
INSERT INTO t(v) SELECT printf('row-%d', x) FROM c;
CREATE INDEX tv ON t(v);
SQL
[ "$(sqlite3 "$MNT/db.sqlite" "SELECT count(*) FROM t WHERE v LIKE 'row-1%';")" -eq 11111 ] ||
  fail "sqlite query returned the wrong count"
[ "$(sqlite3 "$MNT/db.sqlite" "PRAGMA integrity_check;")" = ok ] || fail "sqlite integrity check failed"

step "mmap read and write"
python3 - "$MNT/mmap.bin" <<'PY' || fail "mmap read/write failed"
import mmap, os, sys
path = sys.argv[1]
with open(path, "wb") as f:
    f.write(b"\0" * (3 << 20))
with open(path, "r+b") as f:
    m = mmap.mmap(f.fileno(), 0)
    for i in range(0, len(m), 4096):
        m[i:i + 8] = (i // 4096).to_bytes(8, "little")
    m.flush()
    m.close()
with open(path, "rb") as f:
    data = f.read()
    for i in range(0, len(data), 4096):
        assert int.from_bytes(data[i:i + 8], "little") == i // 4096, i
with open(path, "rb") as f:
    m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    assert m[4096 * 5:4096 * 5 + 8] == (5).to_bytes(8, "little")
PY

step "data survives unmount and remount"
before=$(tree_sums "$MNT/tree" | sha256sum)
unmount_volume "$MNT"
mount_volume "$MNT"
after=$(tree_sums "$MNT/tree" | sha256sum)
[ "$before" = "$after" ] || fail "checksums differ after remount"
echo "PASS: $TEST_NAME"
