#!/usr/bin/env python3
"""POSIX namespace semantics checked on a mounted DFS volume (issue 2).

usage: posix_semantics.py MOUNTPOINT. Exits non-zero on the first failed check."""
import ctypes
import errno
import os
import subprocess
import sys
import time

MNT = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
AT_FDCWD = -100


def p(*parts):
    return os.path.join(MNT, *parts)


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok -", what)


def expect_errno(err, fn, *args, what=""):
    try:
        fn(*args)
    except OSError as e:
        check(e.errno == err, "%s gives %s (got %s)" % (what, errno.errorcode[err], errno.errorcode.get(e.errno)))
        return
    raise AssertionError("%s: expected %s, it succeeded" % (what, errno.errorcode[err]))


def renameat2(a, b, flags):
    r = libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


os.makedirs(p("sem"), exist_ok=True)

# --- sparse file with data past 4 GiB --------------------------------------------
sparse = p("sem", "sparse")
with open(sparse, "wb") as f:
    f.write(b"head")
    f.seek(5 << 30)
    f.write(b"tail-past-4GiB")
st = os.stat(sparse)
check(st.st_size == (5 << 30) + 14, "sparse file size is 5 GiB + 14")
check(st.st_blocks * 512 < (1 << 30), "sparse file does not allocate its holes")
with open(sparse, "rb") as f:
    check(f.read(4) == b"head", "sparse head reads back")
    f.seek(4 << 30)
    check(f.read(1 << 20) == b"\0" * (1 << 20), "hole at 4 GiB reads as zeros")
    f.seek(5 << 30)
    check(f.read() == b"tail-past-4GiB", "data past 4 GiB reads back")
    data_at = os.lseek(f.fileno(), 4096, os.SEEK_DATA)
    hole_at = os.lseek(f.fileno(), 0, os.SEEK_HOLE)
    if data_at == 4096 and hole_at == st.st_size:
        print("ok - lseek SEEK_DATA/SEEK_HOLE: generic (whole file is data), allowed by POSIX")
    else:
        check(4096 < data_at <= 5 << 30, "SEEK_DATA skips the hole (got %d)" % data_at)
        check(4 <= hole_at < 5 << 30, "SEEK_HOLE finds the hole (got %d)" % hole_at)

# --- unlink while open -----------------------------------------------------------
victim = p("sem", "unlinked")
payload = os.urandom(300000)
write(victim, payload)
fd = os.open(victim, os.O_RDWR)
os.unlink(victim)
check(not os.path.exists(victim), "unlinked name is gone")
check(os.pread(fd, len(payload), 0) == payload, "unlinked-but-open file still readable")
os.pwrite(fd, b"more", len(payload))
check(os.fstat(fd).st_size == len(payload) + 4, "unlinked-but-open file still writable")
os.close(fd)

# --- rename over an existing file, RENAME_NOREPLACE, RENAME_EXCHANGE ---------------
write(p("sem", "a"), b"A" * 5000)
write(p("sem", "b"), b"B" * 7000)
os.rename(p("sem", "a"), p("sem", "b"))
check(read(p("sem", "b")) == b"A" * 5000 and not os.path.exists(p("sem", "a")), "rename over an existing file")
write(p("sem", "c"), b"C")
expect_errno(errno.EEXIST, renameat2, p("sem", "c"), p("sem", "b"), RENAME_NOREPLACE, what="RENAME_NOREPLACE onto existing")
renameat2(p("sem", "c"), p("sem", "b"), RENAME_EXCHANGE)
check(read(p("sem", "b")) == b"C" and read(p("sem", "c")) == b"A" * 5000, "RENAME_EXCHANGE swaps atomically")
os.makedirs(p("sem", "d1", "sub"))
write(p("sem", "d1", "sub", "f"), b"x")
renameat2(p("sem", "d1"), p("sem", "c"), RENAME_EXCHANGE)
check(os.path.isdir(p("sem", "c", "sub")) and os.path.isfile(p("sem", "d1")), "RENAME_EXCHANGE of a directory and a file")
expect_errno(errno.EINVAL, os.rename, p("sem", "c"), p("sem", "c", "sub", "inside"), what="rename a directory into itself")
os.mkdir(p("sem", "full"))
write(p("sem", "full", "x"), b"x")
os.mkdir(p("sem", "empty"))
expect_errno(errno.ENOTEMPTY, os.rename, p("sem", "empty"), p("sem", "full"), what="rename onto a non-empty directory")
os.rename(p("sem", "full"), p("sem", "empty"))
check(os.path.isfile(p("sem", "empty", "x")), "rename a directory onto an empty one")

# --- hard links ----------------------------------------------------------------------
write(p("sem", "h1"), b"hard")
os.link(p("sem", "h1"), p("sem", "h2"))
os.link(p("sem", "h1"), p("sem", "h3"))
check(os.stat(p("sem", "h1")).st_nlink == 3, "hard link count 3")
check(os.stat(p("sem", "h1")).st_ino == os.stat(p("sem", "h3")).st_ino, "hard links share the inode")
os.unlink(p("sem", "h1"))
check(os.stat(p("sem", "h2")).st_nlink == 2 and read(p("sem", "h3")) == b"hard", "unlink one hard link")
expect_errno(errno.EPERM, os.link, p("sem", "c"), p("sem", "dirlink"), what="hard link to a directory")
dnl = os.stat(p("sem")).st_nlink
os.mkdir(p("sem", "newdir"))
check(os.stat(p("sem")).st_nlink == dnl + 1, "mkdir raises the parent's link count")
os.rmdir(p("sem", "newdir"))
expect_errno(errno.ENOTEMPTY, os.rmdir, p("sem", "c"), what="rmdir of a non-empty directory")

# --- symlinks --------------------------------------------------------------------------
os.symlink("loop2", p("sem", "loop1"))
os.symlink("loop1", p("sem", "loop2"))
expect_errno(errno.ELOOP, os.stat, p("sem", "loop1"), what="symlink loop")
os.symlink("h2", p("sem", "sl"))
check(os.readlink(p("sem", "sl")) == "h2" and read(p("sem", "sl")) == b"hard", "symlink resolves")
check(os.lstat(p("sem", "sl")).st_size == 2, "symlink size is the target length")

# --- name length -----------------------------------------------------------------------
write(p("sem", "n" * 255), b"255")
check(read(p("sem", "n" * 255)) == b"255", "a 255-byte name works")
check("n" * 255 in os.listdir(p("sem")), "a 255-byte name is listed")
expect_errno(errno.ENAMETOOLONG, write, p("sem", "n" * 256), b"x", what="a 256-byte name")

# --- special files, times, truncate ----------------------------------------------------------
os.mkfifo(p("sem", "fifo"))
check(os.stat(p("sem", "fifo")).st_mode & 0o170000 == 0o010000, "FIFO kept as metadata")
os.mknod(p("sem", "chr"), 0o600 | 0o020000, os.makedev(1, 3))
check(os.stat(p("sem", "chr")).st_rdev == os.makedev(1, 3), "character device node keeps rdev")
os.utime(p("sem", "h2"), ns=(1234567890123456789, 1500000000987654321))
st = os.stat(p("sem", "h2"))
check(st.st_mtime_ns == 1500000000987654321 and st.st_atime_ns == 1234567890123456789, "nanosecond times")
write(p("sem", "t"), b"0123456789" * 1000)
os.truncate(p("sem", "t"), 15)
check(read(p("sem", "t")) == b"012345678901234", "truncate shrinks")
os.truncate(p("sem", "t"), 20000)
check(read(p("sem", "t")) == b"012345678901234" + b"\0" * (20000 - 15), "truncate grows with zeros")
with open(p("sem", "t"), "r+b") as f:
    f.seek(100)
    f.write(b"mid")
check(read(p("sem", "t"))[95:110] == b"\0" * 5 + b"mid" + b"\0" * 7, "overwrite in the middle")

# --- an explicit mtime outlives the commit of bytes written before it ------------------------------
# The utimens is deferred to the next commit (the file has buffered bytes); the flusher's scan then
# commits the buffer (older than 3 s, last written 0.2 s ago: not final), which sends the change and
# keeps the bytes after the last chunk cut for the commit at close. That later commit must not set
# mtime back to the time of the write.
mt = p("sem", "mtime-tail")
fd = os.open(mt, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, os.urandom(1 << 20))
time.sleep(2.8)
os.write(fd, os.urandom(5000))
EXPLICIT_MTIME = 1638620127796403210
os.utime(fd, ns=(EXPLICIT_MTIME, EXPLICIT_MTIME))
check(os.fstat(fd).st_mtime_ns == EXPLICIT_MTIME, "utimens on a file with buffered bytes")
time.sleep(2.0)
check(os.fstat(fd).st_mtime_ns == EXPLICIT_MTIME, "the mtime stays while the tail is buffered")
os.close(fd)
time.sleep(0.5)
check(os.stat(mt).st_mtime_ns == EXPLICIT_MTIME, "the commit of the tail keeps the explicit mtime")

# --- xattrs ------------------------------------------------------------------------------------
x = p("sem", "h2")
os.setxattr(x, "user.colour", b"blue")
os.setxattr(x, "user.size", b"\0\1\2" * 100)
check(os.getxattr(x, "user.colour") == b"blue", "getxattr")
check(sorted(a for a in os.listxattr(x) if a.startswith("user.")) == ["user.colour", "user.size"], "listxattr")
expect_errno(errno.EEXIST, os.setxattr, x, "user.colour", b"red", os.XATTR_CREATE, what="XATTR_CREATE on existing")
expect_errno(errno.ENODATA, os.setxattr, x, "user.none", b"v", os.XATTR_REPLACE, what="XATTR_REPLACE on absent")
os.removexattr(x, "user.colour")
expect_errno(errno.ENODATA, os.getxattr, x, "user.colour", what="getxattr after removexattr")
# POSIX ACLs are refused (cp -a and setfacl then fall back to the mode bits), none is ever read.
acl = bytes([2, 0, 0, 0, 1, 0, 6, 0, 255, 255, 255, 255, 4, 0, 4, 0, 255, 255, 255, 255, 32, 0, 4, 0, 255, 255, 255, 255])
expect_errno(errno.EOPNOTSUPP, os.setxattr, x, "system.posix_acl_access", acl, what="setting a POSIX ACL")
expect_errno(errno.ENODATA, os.getxattr, x, "system.posix_acl_access", what="reading a POSIX ACL")

# --- permissions for a non-root user -----------------------------------------------------------
os.makedirs(p("perm", "private"), exist_ok=True)
os.chmod(p("perm"), 0o755)
os.chmod(p("perm", "private"), 0o700)
write(p("perm", "secret"), b"s")
os.chmod(p("perm", "secret"), 0o600)
write(p("perm", "public"), b"p")
os.chmod(p("perm", "public"), 0o644)
os.makedirs(p("perm", "shared"), exist_ok=True)
os.chmod(p("perm", "shared"), 0o1777)
write(p("perm", "shared", "roots"), b"r")


def as_nobody(script):
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "python3", "-c", script],
                       capture_output=True, text=True)
    return r.stdout.strip() + r.stderr.strip()


def nobody_errno(code):
    return as_nobody("import os,errno\ntry:\n    %s\n    print('OK')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])" % code)


check(nobody_errno("open(%r).read()" % p("perm", "secret")) == "EACCES", "non-root cannot read a 0600 root file")
check(nobody_errno("open(%r).read()" % p("perm", "public")) == "OK", "non-root can read a 0644 file")
check(nobody_errno("open(%r, 'w')" % p("perm", "public")) == "EACCES", "non-root cannot write a 0644 root file")
check(nobody_errno("os.listdir(%r)" % p("perm", "private")) == "EACCES", "non-root cannot list a 0700 directory")
check(nobody_errno("open(%r, 'w')" % p("perm", "newfile")) == "EACCES", "non-root cannot create in a 0755 root dir")
check(nobody_errno("os.unlink(%r)" % p("perm", "shared", "roots")) in ("EACCES", "EPERM"), "sticky bit protects others' files")
check(nobody_errno("open(%r, 'w').write('mine')" % p("perm", "shared", "nobodys")) == "OK", "non-root creates in a 1777 dir")
check(os.stat(p("perm", "shared", "nobodys")).st_uid == 65534, "new file owned by the caller")
check(nobody_errno("os.chmod(%r, 0o777)" % p("perm", "public")) == "EPERM", "non-root cannot chmod a root file")
print("all semantics checks passed")
