#!/usr/bin/env bash
# Issue 2: several cp -a and find/stat loops on one tree at once finish without errors
# and without the client aborting (lookup counts stay consistent).
source "$(dirname "$0")/lib.sh"
cluster_start 6
mount_volume "$MNT"
make_tree "$CLUSTER_DIR/src" 2500 3
cp -a "$CLUSTER_DIR/src" "$MNT/base"

step "3 cp -a and 2 find/stat loops at once"
pids=()
for i in 1 2 3; do
  cp -a "$MNT/base" "$MNT/copy$i" &
  pids+=($!)
done
stop_flag=$CLUSTER_DIR/stop
(cd "$MNT" && find base -type f | sort | sed -n '1~5p' >"$CLUSTER_DIR/some-files")
for i in 1 2; do
  (
    while [ ! -e "$stop_flag" ]; do
      if ! find "$MNT" -xdev >/dev/null 2>"$CLUSTER_DIR/find$i.err"; then
        # Entries may vanish between readdir and stat; anything else is an error.
        if grep -v 'No such file' "$CLUSTER_DIR/find$i.err" | grep .; then exit 1; fi
      fi
      (cd "$MNT" && tr '\n' '\0' <"$CLUSTER_DIR/some-files" | xargs -0 stat >/dev/null) || exit 1
    done
  ) &
  pids+=($!)
done
for i in 0 1 2; do wait "${pids[$i]}" || fail "cp -a number $((i + 1)) failed"; done
touch "$stop_flag"
for i in 3 4; do wait "${pids[$i]}" || fail "a find/stat loop failed"; done
kill -0 "$(pid_of fuse_mnt)" || fail "dfs-fuse died"
for i in 1 2 3; do diff -r --no-dereference "$CLUSTER_DIR/src" "$MNT/copy$i" >/dev/null || fail "copy$i differs"; done

step "remove everything while listing"
rm -rf "$MNT/copy1" "$MNT/copy2" &
rmpid=$!
find "$MNT" -xdev >/dev/null 2>&1 || true
wait $rmpid || fail "rm -rf failed"
[ "$(ls "$MNT")" = "$(printf 'base\ncopy3')" ] || fail "unexpected entries: $(ls "$MNT")"
kill -0 "$(pid_of fuse_mnt)" || fail "dfs-fuse died"

step "parallel readers of a 200 MB file (several 64 MiB extent windows) on a fresh mount"
head -c 200000000 /dev/urandom >"$CLUSTER_DIR/big"
cp "$CLUSTER_DIR/big" "$MNT/big"
for round in 1 2 3; do
  unmount_volume "$MNT"
  mount_volume "$MNT"
  pids=()
  for part in 0 1 2 3 4 5 6 7; do
    # Each reader a 25 MB slice, all at once: the kernel's async reads land on
    # several FUSE threads, whose extent windows must not mix.
    (cmp <(dd if="$MNT/big" bs=1M iflag=skip_bytes,count_bytes skip=$((part * 25000000)) \
             count=25000000 status=none) \
         <(dd if="$CLUSTER_DIR/big" bs=1M iflag=skip_bytes,count_bytes skip=$((part * 25000000)) \
             count=25000000 status=none)) &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || fail "round $round: a parallel reader got wrong data"; done
  cmp "$CLUSTER_DIR/big" "$MNT/big" || fail "round $round: sequential read differs"
done
echo "PASS: $TEST_NAME"
