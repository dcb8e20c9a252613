#!/usr/bin/env python3
"""Builds a deterministic tree that looks like a source tree: FILES files in nested
directories, mostly small text-like files with some larger and some binary ones,
plus symlinks, a hard link, empty files, varied permission bits and mtimes.

usage: make_tree.py DIR FILES [SEED]"""
import os
import random
import sys

WORDS = ("static int void struct return const char uint64_t include define if else for while "
         "buffer offset length chunk inode extent fragment node cluster error status result "
         "the of and to in is that for it with as on be by this an").split()


CORPUS = None


def text(rng, size):
    """A window of a 4 MiB text corpus, with a unique header so files differ."""
    global CORPUS
    if CORPUS is None:
        crng = random.Random(42)
        lines = []
        n = 0
        while n < (4 << 20):
            line = " ".join(crng.choice(WORDS) for _ in range(crng.randint(3, 12))) + ";\n"
            lines.append(line)
            n += len(line)
        CORPUS = "".join(lines).encode()
    size = min(size, len(CORPUS))
    start = rng.randint(0, len(CORPUS) - size)
    header = b"/* %d */\n" % rng.getrandbits(48)
    return (header + CORPUS[start:start + size])[:size]


def main():
    root, files = sys.argv[1], int(sys.argv[2])
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    rng = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    dirs = [root]
    for i in range(max(1, files // 25)):
        parent = rng.choice(dirs)
        if parent.count(os.sep) - root.count(os.sep) > 5:
            parent = root
        d = os.path.join(parent, "dir%03d" % i)
        os.makedirs(d, exist_ok=True)
        dirs.append(d)
    paths = []
    for i in range(files):
        d = rng.choice(dirs)
        p = os.path.join(d, "file%05d.%s" % (i, rng.choice(["c", "h", "txt", "py", "bin", "md"])))
        r = rng.random()
        if r < 0.03:
            data = b""
        elif r < 0.85:
            data = text(rng, int(rng.lognormvariate(8.2, 1.2)) % 200000 + 1)
        elif r < 0.99:
            data = rng.randbytes(int(rng.lognormvariate(9, 1.3)) % 400000 + 1)
        else:
            data = text(rng, rng.randint(100000, 600000))
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, rng.choice([0o644, 0o600, 0o755, 0o640]))
        t = 1600000000 + rng.randint(0, 10**8)
        os.utime(p, ns=(t * 10**9 + rng.randint(0, 10**9 - 1),) * 2)
        paths.append(p)
    for i in range(min(20, files // 10)):
        target = rng.choice(paths)
        link = os.path.join(rng.choice(dirs), "link%02d" % i)
        if not os.path.lexists(link):
            os.symlink(os.path.relpath(target, os.path.dirname(link)), link)
    if len(paths) > 2:
        hard = os.path.join(root, "hardlink-of-" + os.path.basename(paths[1]))
        if not os.path.exists(hard):
            os.link(paths[1], hard)


if __name__ == "__main__":
    main()
