#!/usr/bin/env bash
# `make run`: a local cluster of one dfs-meta and six dfs-storage on 127.0.0.1, data kept
# in STATE_DIR across runs, mounted at MOUNTPOINT. Stays in the foreground; Ctrl-C or
# SIGTERM unmounts and stops every process cleanly.
set -uo pipefail
DFS_BIN=$(cd "$1" && pwd)
CLUSTER_DIR=$2
MOUNTPOINT=$3
META_PORT=${META_PORT:-7000}
# shellcheck source=cluster.sh
source "$(dirname "$0")/cluster.sh"

mkdir -p "$CLUSTER_DIR"
CLUSTER_DIR=$(cd "$CLUSTER_DIR" && pwd)
# A previous run that was killed hard may have left a dead mount behind.
if is_mounted "$MOUNTPOINT"; then fusermount3 -u -z "$MOUNTPOINT" 2>/dev/null || true; fi
# Storage nodes keep their ports across runs (their addresses are in the cluster map).
for i in 1 2 3 4 5 6; do STORAGE_PORTS[$i]=$((META_PORT + 100 + i)); done
for port in "$META_PORT" "${STORAGE_PORTS[@]}"; do
  if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
    echo "make run: port $port on 127.0.0.1 is in use (another 'make run'?). Set META_PORT=... to use other ports." >&2
    exit 1
  fi
done

stopping=0
shutdown() {
  ((stopping)) && return
  stopping=1
  echo
  echo "Unmounting $MOUNTPOINT and stopping the cluster..."
  cluster_stop
  echo "Stopped. Data is kept in $CLUSTER_DIR for the next 'make run'."
  exit 0
}
trap shutdown INT TERM
trap cluster_stop EXIT

cluster_start 6 || { echo "make run: the cluster did not start; logs are in $CLUSTER_DIR" >&2; exit 1; }
mount_volume "$MOUNTPOINT" default || { echo "make run: mounting failed; see $CLUSTER_DIR/*.log" >&2; exit 1; }

cat <<MSG

DFS is running: 1 metadata node (127.0.0.1:$META_PORT) and 6 storage nodes, volume 'default'.
  mounted at:  $MOUNTPOINT          (try: cp -a /usr/include $MOUNTPOINT/ && ls $MOUNTPOINT)
  data in:     $CLUSTER_DIR
  logs:        $CLUSTER_DIR/*.log
  admin:       $DFS_BIN/dfsctl --meta 127.0.0.1:$META_PORT status | stats | volume list
Press Ctrl-C to unmount and stop.
MSG

# Stay in the foreground while the mount lives.
while is_mounted "$MOUNTPOINT"; do sleep 1 & wait $! || true; done
echo "The mount at $MOUNTPOINT went away; stopping." >&2
cluster_stop
exit 1
