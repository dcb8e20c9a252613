#!/usr/bin/env bash
# stage-source.sh SOURCE_TREE DEST: copies the source files of a DFS tree to DEST — the
# files git knows plus new, not-ignored ones (so a package is built from the working tree
# as it is, without build folders or local state). Without git, copies everything except
# build*/ and .dfs-local/. Used by deb/build-deb.sh and rpm/build-rpm.sh.
set -euo pipefail
src=$1 dest=$2
mkdir -p "$dest"
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # -c also lists tracked files deleted in the working tree; skip those.
  (cd "$src" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf -) | tar -xf - -C "$dest"
else
  tar -C "$src" --exclude='./build*' --exclude=./.dfs-local --exclude=./mnt -cf - . |
    tar -xf - -C "$dest"
fi
