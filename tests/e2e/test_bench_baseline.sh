#!/usr/bin/env bash
# The FUSE ceiling baseline: dfs-passthrough under everyday POSIX tools on a real mount,
# then `dfs-bench fs --fuse-baseline` next to a DFS mount — a `fuse-passthrough` column with
# a number for every figure, and nothing (mount, process, directory) left behind.
source "$(dirname "$0")/lib.sh"

# --- dfs-passthrough alone ---------------------------------------------------------------
SRC=$CLUSTER_DIR/pt-source
PT=$CLUSTER_DIR/pt
mkdir -p "$SRC" "$PT"
# Started and recorded like a dfs-fuse mount, so that lib.sh's cleanup (trap on EXIT)
# unmounts it and stops the daemon even when a step below fails.
start_daemon fuse_pt "$CLUSTER_DIR/fuse_pt.log" "$DFS_BIN/dfs-passthrough" "$SRC" "$PT" -f
CLUSTER_MOUNTS+=("$PT")
for _ in $(seq 100); do is_mounted "$PT" && break; sleep 0.1; done
is_mounted "$PT" || { cat "$CLUSTER_DIR/fuse_pt.log" >&2; fail "dfs-passthrough did not mount"; }
grep -q " $PT fuse.dfs-passthrough " /proc/mounts || fail "mount type is not fuse.dfs-passthrough"

step "passthrough: cp -a of a small tree, then diff -r, modes and mtimes"
make_tree "$CLUSTER_DIR/tree" 400
cp -a "$CLUSTER_DIR/tree" "$PT/tree"
diff -r --no-dereference "$CLUSTER_DIR/tree" "$PT/tree" || fail "diff -r after cp -a differs"
(cd "$CLUSTER_DIR/tree" && find . -printf '%p %m %U %G %T@ %y\n' | sort) >"$CLUSTER_DIR/meta.local"
(cd "$PT/tree" && find . -printf '%p %m %U %G %T@ %y\n' | sort) >"$CLUSTER_DIR/meta.pt"
diff "$CLUSTER_DIR/meta.local" "$CLUSTER_DIR/meta.pt" || fail "modes/owners/mtimes differ after cp -a"
diff -r --no-dereference "$CLUSTER_DIR/tree" "$SRC/tree" || fail "the source directory does not hold the copy"

step "passthrough: tar round trip"
tar -C "$PT" -cf "$CLUSTER_DIR/tree.tar" tree
mkdir "$PT/untarred"
tar -C "$PT/untarred" -xf "$CLUSTER_DIR/tree.tar"
diff -r --no-dereference "$CLUSTER_DIR/tree" "$PT/untarred/tree" || fail "tar round trip differs"

step "passthrough: a directory of 3,000 entries (readdir continuation, readdirplus)"
mkdir "$PT/wide"
(cd "$PT/wide" && seq -f 'entry-with-a-longish-name-%05g' 3000 | xargs touch)
[ "$(ls "$PT/wide" | wc -l)" -eq 3000 ] || fail "ls of 3000 entries: $(ls "$PT/wide" | wc -l)"
[ "$(ls -l "$PT/wide" | grep -c entry-with)" -eq 3000 ] || fail "ls -l of 3000 entries"
[ "$(find "$PT/wide" -type f | sort -u | wc -l)" -eq 3000 ] || fail "find of 3000 entries"
# The kernel caches listings (cache_readdir); changes through the mount must show at once.
touch "$PT/wide/late"
ls "$PT/wide" | grep -qx late || fail "a new file is missing from a cached listing"
rm "$PT/wide/late"
! ls "$PT/wide" | grep -qx late || fail "a removed file is still in a cached listing"

step "passthrough: lookups racing forgets (cp -a while the kernel drops its inodes)"
if [ -w /proc/sys/vm/drop_caches ]; then
  (for _ in $(seq 30); do echo 2 >/proc/sys/vm/drop_caches; sleep 0.2; done) &
  dropper=$!
  cp -a "$CLUSTER_DIR/tree" "$PT/tree2"
  diff -r --no-dereference "$CLUSTER_DIR/tree" "$PT/tree2" || fail "diff -r after cp -a under forgets"
  wait "$dropper"
  echo 2 >/proc/sys/vm/drop_caches  # every inode forgotten, then looked up again
  diff -r --no-dereference "$CLUSTER_DIR/tree" "$PT/tree" || fail "diff -r after the kernel forgot"
else
  echo "skipped: /proc/sys/vm/drop_caches not writable"
fi

step "passthrough: rename over an existing file, hard links, symlinks"
echo first >"$PT/a"
echo second >"$PT/b"
exec 3<"$PT/b"  # the replaced file stays readable through an open descriptor
mv -f "$PT/a" "$PT/b"
[ "$(cat "$PT/b")" = first ] && [ ! -e "$PT/a" ] || fail "rename over an existing file"
[ "$(cat <&3)" = second ] || fail "the replaced file is not readable through its descriptor"
exec 3<&-
[ "$(cat "$SRC/b")" = first ] || fail "rename not in the source directory"
ln "$PT/b" "$PT/b-link"
[ "$(stat -c %h "$PT/b")" -eq 2 ] && [ "$(stat -c %h "$SRC/b")" -eq 2 ] || fail "hard link count not 2"
echo appended >>"$PT/b-link"
[ "$(tail -1 "$PT/b")" = appended ] || fail "a write through one hard link is not seen by the other"
rm "$PT/b-link"
[ "$(stat -c %h "$PT/b")" -eq 1 ] || fail "hard link count not 1 after unlink"
ln -s b "$PT/sym"
[ "$(readlink "$PT/sym")" = b ] && [ -L "$PT/sym" ] || fail "symlink target"
[ "$(head -1 "$PT/sym")" = first ] || fail "read through a symlink"
ln "$PT/sym" "$PT/sym-hard"  # a hard link to the symlink itself
[ "$(readlink "$PT/sym-hard")" = b ] || fail "hard link to a symlink"
mkfifo "$PT/fifo"
[ -p "$PT/fifo" ] || fail "mkfifo"
python3 - "$PT" <<'PY' || fail "rename flags (RENAME_NOREPLACE / RENAME_EXCHANGE)"
import ctypes, errno, os, sys
d = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, NOREPLACE, EXCHANGE = -100, 1, 2
open(f"{d}/x", "w").write("x")
open(f"{d}/y", "w").write("y")
r = libc.renameat2(AT_FDCWD, f"{d}/x".encode(), AT_FDCWD, f"{d}/y".encode(), NOREPLACE)
assert r == -1 and ctypes.get_errno() == errno.EEXIST, (r, ctypes.get_errno())
assert libc.renameat2(AT_FDCWD, f"{d}/x".encode(), AT_FDCWD, f"{d}/y".encode(), EXCHANGE) == 0
assert open(f"{d}/x").read() == "y" and open(f"{d}/y").read() == "x"
os.unlink(f"{d}/x"); os.unlink(f"{d}/y")
PY

step "passthrough: chmod, chown, touch -d with nanoseconds"
chmod 640 "$PT/b"
[ "$(stat -c %a "$PT/b")" = 640 ] && [ "$(stat -c %a "$SRC/b")" = 640 ] || fail "chmod"
chown 1234:5678 "$PT/b"
[ "$(stat -c %u:%g "$PT/b")" = 1234:5678 ] || fail "chown"
touch -d "2001-02-03 04:05:06.123456789 UTC" "$PT/b"
[ "$(TZ=UTC stat -c %y "$PT/b")" = "2001-02-03 04:05:06.123456789 +0000" ] ||
  fail "mtime with nanoseconds: $(TZ=UTC stat -c %y "$PT/b")"
[ "$(TZ=UTC stat -c %y "$SRC/b")" = "2001-02-03 04:05:06.123456789 +0000" ] || fail "mtime in the source"
touch -a -d "2002-01-01 00:00:00.5 UTC" "$PT/b"
[ "$(TZ=UTC stat -c %x "$PT/b")" = "2002-01-01 00:00:00.500000000 +0000" ] || fail "atime"
[ "$(TZ=UTC stat -c %y "$PT/b")" = "2001-02-03 04:05:06.123456789 +0000" ] || fail "touch -a changed mtime"
touch "$PT/b"  # UTIME_NOW
[ $(($(date +%s) - $(stat -c %Y "$PT/b"))) -lt 60 ] || fail "touch (now)"
touch -h -d "2003-03-03 03:03:03.000000007 UTC" "$PT/sym"
[ "$(TZ=UTC stat -c %y "$PT/sym")" = "2003-03-03 03:03:03.000000007 +0000" ] || fail "touch -h of a symlink"
[ "$(TZ=UTC stat -c %y "$PT/b")" != "2003-03-03 03:03:03.000000007 +0000" ] ||
  fail "touch -h changed the symlink's target"

if command -v setfattr >/dev/null && command -v getfattr >/dev/null; then
  step "passthrough: extended attributes"
  setfattr -n user.colour -v blue "$PT/b"
  [ "$(getfattr --absolute-names --only-values -n user.colour "$PT/b")" = blue ] || fail "getxattr"
  getfattr --absolute-names -d "$PT/b" | grep -q '^user.colour="blue"' || fail "listxattr"
  [ "$(getfattr --absolute-names --only-values -n user.colour "$SRC/b")" = blue ] || fail "xattr not in the source"
  setfattr -x user.colour "$PT/b"
  ! getfattr --absolute-names -n user.colour "$PT/b" 2>/dev/null || fail "removexattr"
else
  echo "skipped: setfattr/getfattr not installed"
fi

step "passthrough: truncate, fallocate, dd + sha256sum, copy_file_range"
truncate -s 1000 "$PT/b"
[ "$(stat -c %s "$PT/b")" -eq 1000 ] || fail "truncate down"
truncate -s 5M "$PT/b"
[ "$(stat -c %s "$PT/b")" -eq $((5 << 20)) ] || fail "truncate up"
cmp -s -i 1000 -n $(((5 << 20) - 1000)) "$PT/b" /dev/zero || fail "truncate up did not read zeros"
if command -v fallocate >/dev/null; then
  fallocate -l 3M "$PT/falloc"
  [ "$(stat -c %s "$PT/falloc")" -eq $((3 << 20)) ] || fail "fallocate"
fi
head -c $((6 << 20)) /dev/urandom >"$CLUSTER_DIR/random.bin"
dd if="$CLUSTER_DIR/random.bin" of="$PT/random.bin" bs=1M conv=fsync status=none
want=$(sha256sum <"$CLUSTER_DIR/random.bin")
[ "$(sha256sum <"$PT/random.bin")" = "$want" ] || fail "sha256 through the mount"
[ "$(sha256sum <"$SRC/random.bin")" = "$want" ] || fail "sha256 in the source"
dd if="$CLUSTER_DIR/random.bin" of="$PT/random.bin" bs=4096 seek=100 skip=100 count=10 conv=notrunc status=none
[ "$(sha256sum <"$PT/random.bin")" = "$want" ] || fail "partial overwrite changed the file"
python3 - "$PT/random.bin" "$PT/copied.bin" <<'PY' || fail "copy_file_range"
import os, sys
src, dst = (os.open(sys.argv[1], os.O_RDONLY), os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT, 0o644))
left = os.fstat(src).st_size
while left:
    n = os.copy_file_range(src, dst, left)
    assert n > 0
    left -= n
PY
cmp "$PT/random.bin" "$PT/copied.bin" || fail "copy_file_range copy differs"
echo "line" >"$PT/appended"
echo "more" >>"$PT/appended"
[ "$(cat "$PT/appended")" = "$(printf 'line\nmore')" ] || fail "O_APPEND"
df "$PT" >/dev/null || fail "statfs"

step "passthrough: rm -rf, then unmount"
rm -rf "$PT/tree" "$PT/tree2" "$PT/untarred" "$PT/wide"
[ ! -e "$SRC/tree" ] && [ ! -e "$SRC/wide" ] || fail "rm -rf did not reach the source"
pt_pid=$(pid_of fuse_pt)
kill -0 "$pt_pid" || fail "dfs-passthrough died"
fusermount3 -u "$PT"
for _ in $(seq 100); do kill -0 "$pt_pid" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$pt_pid" 2>/dev/null || fail "dfs-passthrough still runs after the unmount"
wait "$pt_pid" || fail "dfs-passthrough exited with $?"
! is_mounted "$PT" || fail "still mounted"
[ "$(cat "$SRC/b" | wc -c)" -eq $((5 << 20)) ] || fail "the source lost a file"

# --- dfs-bench fs --fuse-baseline ----------------------------------------------------------
leftovers() {
  {
    grep dfs-passthrough /proc/mounts || true
    pgrep -af 'dfs-passthrough /var/tmp/dfs-bench-fuse-' || true
    ls -d /var/tmp/dfs-bench-* 2>/dev/null || true  # the work and fuse directories
  } | sort
}
before=$(leftovers)

cluster_start 6
mount_volume "$MNT"

step "dfs-bench fs --fuse-baseline"
"$DFS_BIN/dfs-bench" fs --target "$MNT" --fuse-baseline --only=meta,seq,untar --files=200 \
  --size=32M --tree-files=300 --repeat=1 | tee "$CLUSTER_DIR/bench.txt"
python3 - "$CLUSTER_DIR/bench.txt" <<'PY' || fail "dfs-bench output"
import re, sys
lines = open(sys.argv[1]).read().splitlines()
header = next(i for i, l in enumerate(lines) if l.startswith("figure"))
columns = lines[header].split()
assert columns == ["figure", "dfs", "/var/tmp", "ratio", "fuse-passthrough", "ratio"], columns
rows = {}
runs = [l for l in lines[header + 1:] if l.startswith("runs ")]
for line in lines[header + 1:]:
    if line.startswith("runs "):
        continue
    words = line.split()
    name, values = " ".join(words[:-5]), words[-5:]
    for v in values:
        assert re.fullmatch(r"\d+\.\d+", v), (line, v)
    if name.endswith("/s"):  # rates; a tiny untar may print as 0.0 s
        assert float(values[0]) > 0 and float(values[1]) > 0 and float(values[3]) > 0, line
    rows[name] = values
want = {"create ops/s", "stat ops/s", "rename ops/s", "unlink ops/s", "seq write MB/s",
        "cold read MB/s", "untar s", "untar+sync s"}
assert set(rows) == want, sorted(rows)
# One "runs" line per target and figure, each with --repeat values.
assert len(runs) == 3 * len(want), runs
PY
[ "$(leftovers)" = "$before" ] || fail "left behind: $(leftovers)"

step "dfs-bench fs --source=tmpfs"
"$DFS_BIN/dfs-bench" fs --target "$MNT" --baseline /var/tmp,/dev/shm --only=seq --size=32M \
  --repeat=2 --source=tmpfs | tee "$CLUSTER_DIR/bench-tmpfs.txt"
python3 - "$CLUSTER_DIR/bench-tmpfs.txt" <<'PY' || fail "dfs-bench --source=tmpfs output"
import sys
lines = open(sys.argv[1]).read().splitlines()
header = next(i for i, l in enumerate(lines) if l.startswith("figure"))
assert lines[header].split() == ["figure", "dfs", "/var/tmp", "ratio", "/dev/shm", "ratio"], lines[header]
runs = [l.split() for l in lines if l.startswith("runs ") and "seq write" in l]
assert len(runs) == 3 and all(len(r) == 7 and float(r[5]) > 0 and float(r[6]) > 0 for r in runs), runs
PY
[ -z "$(ls /dev/shm/dfs-bench-source-* 2>/dev/null)" ] || fail "the tmpfs source file was left in /dev/shm"
[ "$(leftovers)" = "$before" ] || fail "left behind: $(leftovers)"

step "dfs-bench fs --fuse-baseline cleans up when it fails"
set +e
"$DFS_BIN/dfs-bench" fs --target "$CLUSTER_DIR/no-such-dir" --fuse-baseline --only=meta \
  --files=10 --repeat=1 >/dev/null 2>"$CLUSTER_DIR/bench-fail.txt"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "dfs-bench on a missing target exited $rc: $(cat "$CLUSTER_DIR/bench-fail.txt")"
grep -q "cannot create" "$CLUSTER_DIR/bench-fail.txt" || fail "$(cat "$CLUSTER_DIR/bench-fail.txt")"
[ "$(leftovers)" = "$before" ] || fail "left behind after die(): $(leftovers)"
echo "PASS: $TEST_NAME"
