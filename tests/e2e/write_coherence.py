#!/usr/bin/env python3
"""Writes through write-only opens (direct I/O, fuse/fuse_ops.h) stay coherent
with every other open of the file on the same mount.

usage: write_coherence.py MOUNTPOINT. Exits non-zero on the first failed check."""
import errno
import hashlib
import mmap
import os
import random
import sys

MNT = sys.argv[1]
D = os.path.join(MNT, "coherence")
os.makedirs(D, exist_ok=True)
PAGE = 4096


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok -", what)


def contents(path):
    with open(path, "rb") as f:
        return f.read()


# A file with committed content, cached by a reader before the writer comes.
path = os.path.join(D, "f")
base = random.Random(1).randbytes(3 * 1048576 + 123)
with open(path, "wb") as f:
    f.write(base)
    f.flush()
    os.fsync(f.fileno())
model = bytearray(base)
reader = os.open(path, os.O_RDONLY)
check(os.pread(reader, len(base), 0) == base, "a reader reads (and caches) the committed bytes")
rw = os.open(path, os.O_RDWR)
mapped = mmap.mmap(rw, len(base), mmap.MAP_SHARED, mmap.PROT_READ)
check(mapped[:PAGE] == base[:PAGE], "a shared mapping of an O_RDWR open sees the committed bytes")

writer = os.open(path, os.O_WRONLY)
rng = random.Random(2)
for i in range(40):
    # Unaligned offsets and sizes, some crossing page boundaries, some 1 MiB.
    size = rng.choice([1, 17, PAGE - 1, PAGE + 3, 65537, 1048576])
    off = rng.randrange(0, len(base) - size)
    data = rng.randbytes(size)
    if os.pwrite(writer, data, off) != size:
        raise AssertionError("short write %d (%d bytes at %d)" % (i, size, off))
    model[off:off + size] = data
    got = os.pread(reader, size + 8, max(0, off - 4))
    if got != bytes(model[max(0, off - 4):off + size + 4]):
        raise AssertionError("the caching reader misses write %d (%d bytes at %d)" % (i, size, off))
check(True, "the caching reader sees each of 40 writes right after it returns")
check(os.pread(reader, len(model), 0) == bytes(model), "the caching reader sees the whole new content")
check(mapped[:] == bytes(model), "the shared mapping sees the new content")
with open(path, "rb") as again:
    check(again.read() == bytes(model), "a new open sees the new content while the writer is open")
check(os.fstat(reader).st_size == len(model), "size unchanged by overwrites")

# Writes past the end through the write-only open extend what readers see.
tail = os.urandom(200000)
os.pwrite(writer, tail, len(model) + 5000)
model += b"\0" * 5000 + tail
check(os.fstat(reader).st_size == len(model), "a write past the end grows the size other opens see")
check(os.pread(reader, 5000 + len(tail), len(model) - len(tail) - 5000) == b"\0" * 5000 + tail,
      "the hole reads as zeros and the appended bytes as written")

# A write-only file descriptor cannot be mapped (so the page cache is never needed for it).
try:
    mmap.mmap(writer, PAGE, mmap.MAP_SHARED, mmap.PROT_WRITE)
    raise AssertionError("mapping a write-only open should fail")
except OSError as e:
    check(e.errno == errno.EACCES, "mapping a write-only open fails with EACCES")
os.close(writer)
mapped.close()
os.close(rw)

# O_APPEND through a write-only open appends after bytes another open wrote.
appender = os.open(path, os.O_WRONLY | os.O_APPEND)
with open(path, "r+b") as other:
    other.seek(0, os.SEEK_END)
    other.write(b"from-other")
    other.flush()
model += b"from-other"
os.write(appender, b"appended")
model += b"appended"
os.close(appender)
check(os.pread(reader, 64, len(model) - 64) == bytes(model[-64:]), "O_APPEND lands after another open's bytes")
os.close(reader)
check(contents(path) == bytes(model), "the file holds exactly the writes, in order, after every close")

# What cp/dd do: a new file written through a write-only open, read back at once.
new = os.path.join(D, "new")
blob = os.urandom(5 * 1048576 + 7)
fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for off in range(0, len(blob), 1048576):
    os.write(fd, blob[off:off + 1048576])
with open(new, "rb") as f:
    check(f.read() == blob, "a new file reads back while its write-only open is still open")
os.close(fd)
check(contents(new) == blob, "and after its close")

with open(os.path.join(D, "expected.sha"), "w") as f:
    f.write(hashlib.sha256(bytes(model)).hexdigest() + "  f\n" + hashlib.sha256(blob).hexdigest() + "  new\n")
print("all write coherence checks passed")
