#!/usr/bin/env python3
"""Write workload for test_crash_journal.sh: appends random data to several
files that stay open, and after every write() that returned records
"name offset length sha256" in a log on the local disk (flushed per line), so
that a checker can verify every acknowledged write after dfs-fuse was killed.
Now and then it also sets a file's mode and times right after writing (as tar
does; dfs-fuse defers these to the file's next commit) and records
"MODE name mode" once fchmod returned and "MTIME name ns" once futimens did.

usage: crash_workload.py write DIR LOG SECONDS
       crash_workload.py check DIR LOG     (exit 1 on any missing/different write)
"""
import hashlib
import os
import random
import sys
import time


def write(directory, log_path, seconds):
    rnd = random.Random(os.getpid())
    files = {}
    sizes = {}
    end = time.time() + seconds
    with open(log_path, "w", buffering=1) as log:
        n = 0
        try:
            while time.time() < end:
                name = "f%02d" % rnd.randrange(12)
                if name not in files:
                    files[name] = os.open(os.path.join(directory, name),
                                          os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    sizes[name] = 0
                length = rnd.choice([100, 4096, 65536, 131072, 300000])
                data = rnd.randbytes(length)
                off = sizes[name]
                if rnd.random() < 0.1 and off > 4096:
                    off = rnd.randrange(off - 4096)  # an overwrite inside the file
                log.write("TRY %s\n" % name)  # an op that may not return (kill)
                written = os.pwrite(files[name], data, off)
                if written != length:
                    break
                sizes[name] = max(sizes[name], off + length)
                log.write("%s %d %d %s\n" % (name, off, length, hashlib.sha256(data).hexdigest()))
                n += 1
                if rnd.random() < 0.1:
                    mode = rnd.choice([0o600, 0o640, 0o644, 0o700, 0o755])
                    mtime = rnd.randrange(10**18, 2 * 10**18)
                    log.write("TRY %s\n" % name)
                    os.fchmod(files[name], mode)
                    log.write("MODE %s %o\n" % (name, mode))
                    os.utime(files[name], ns=(mtime, mtime))
                    log.write("MTIME %s %d\n" % (name, mtime))
                if n % 50 == 0:
                    time.sleep(0.01)
        except OSError as e:  # the mount went away under us (kill -9): expected
            print("workload stopped: %s" % e, file=sys.stderr)
    print("workload: %d writes recorded" % n)


def check(directory, log_path):
    # Later writes may overwrite earlier ones: the expected content of every byte
    # is the last recorded write covering it.
    lines = [line.split() for line in open(log_path) if line.strip()]
    # The op in flight when dfs-fuse died may have been journaled without
    # returning: its file's mode and mtime are not checked.
    inflight = lines[-1][1] if lines and lines[-1][0] == "TRY" else None
    lines = [w for w in lines if w[0] != "TRY"]
    writes = [w for w in lines if w[0] not in ("MODE", "MTIME")]
    expected = {}
    for name, off, length, digest in writes:
        expected.setdefault(name, []).append((int(off), int(length), digest))
    bad = 0
    # The last mode set stays; the last mtime set stays unless a write followed.
    modes, mtimes = {}, {}
    for w in lines:
        if w[0] == "MODE":
            modes[w[1]] = int(w[2], 8)
        elif w[0] == "MTIME":
            mtimes[w[1]] = int(w[2])
        else:
            mtimes.pop(w[0], None)
    for name, mode in modes.items():
        if name == inflight:
            continue
        st = os.stat(os.path.join(directory, name))
        if st.st_mode & 0o7777 != mode:
            print("%s: mode %o, expected %o" % (name, st.st_mode & 0o7777, mode))
            bad += 1
        if name in mtimes and st.st_mtime_ns != mtimes[name]:
            print("%s: mtime %d, expected %d" % (name, st.st_mtime_ns, mtimes[name]))
            bad += 1
    for name, items in expected.items():
        with open(os.path.join(directory, name), "rb") as f:
            content = f.read()
        # Rebuild which write owns each byte range: walk writes newest first and
        # check only the bytes no newer write covers.
        covered = []  # disjoint (start, end) of newer writes
        for off, length, digest in reversed(items):
            end = off + length
            if len(content) < end:
                print("%s: write at %d+%d missing (size %d)" % (name, off, length, len(content)))
                bad += 1
                continue
            if not any(s < end and off < e for s, e in covered):
                if hashlib.sha256(content[off:end]).hexdigest() != digest:
                    print("%s: write at %d+%d differs" % (name, off, length))
                    bad += 1
            covered.append((off, end))
    print("check: %d writes and %d attribute changes in %d files, %d bad" %
          (len(writes), len(lines) - len(writes), len(expected), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        sys.exit(check(sys.argv[2], sys.argv[3]))
