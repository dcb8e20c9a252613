#!/usr/bin/env python3
"""Namespace workload for test_meta_restart.sh: creates, writes, renames,
hard-links and unlinks files and directories for SECONDS, failing on the
first error, and writes the expected final tree (name -> sha256) as JSON.

usage: namespace_churn.py DIR SECONDS EXPECTED_JSON"""
import hashlib
import json
import os
import random
import sys
import time


def main(root, seconds, out):
    rnd = random.Random(7)
    expected = {}
    end = time.time() + seconds
    i = 0
    while time.time() < end:
        d = os.path.join(root, "d%02d" % (i % 16))
        if not os.path.isdir(d):
            os.mkdir(d)
        name = os.path.join(d, "f%05d" % i)
        data = rnd.randbytes(rnd.choice([0, 10, 3000, 5000, 70000]))
        with open(name + ".tmp", "xb") as f:  # O_EXCL: a duplicate create would fail
            f.write(data)
        os.rename(name + ".tmp", name)
        digest = hashlib.sha256(data).hexdigest()
        expected[os.path.relpath(name, root)] = digest
        if i % 5 == 0:
            os.link(name, name + ".lnk")
            expected[os.path.relpath(name + ".lnk", root)] = digest
        if i % 3 == 0 and i > 0:
            victim = os.path.join(root, "d%02d" % ((i - 3) % 16), "f%05d" % (i - 3))
            os.unlink(victim)
            del expected[os.path.relpath(victim, root)]
        if i % 50 == 49:
            sub = os.path.join(d, "sub%05d" % i)
            os.mkdir(sub)
            os.rmdir(sub)
        i += 1
    json.dump(expected, open(out, "w"))
    print("churn: %d iterations, %d files expected" % (i, len(expected)))


def check(root, path):
    expected = json.load(open(path))
    actual = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            actual[os.path.relpath(p, root)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    if actual != expected:
        missing = sorted(set(expected) - set(actual))[:5]
        extra = sorted(set(actual) - set(expected))[:5]
        wrong = sorted(k for k in expected if k in actual and actual[k] != expected[k])[:5]
        print("tree differs: missing %s extra %s wrong %s" % (missing, extra, wrong))
        return 1
    print("churn check: %d files as expected" % len(expected))
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
    main(sys.argv[1], float(sys.argv[2]), sys.argv[3])
