# Shell library to run a local DFS cluster: one dfs-meta, N dfs-storage, one or more
# dfs-fuse mounts, all on 127.0.0.1. Sourced by scripts/run-local.sh (`make run`) and by
# the end-to-end tests (tests/e2e/lib.sh). Every process started here is recorded so
# that cluster_stop can always stop it, and every mount so that it is always unmounted.
#
# Required before use: DFS_BIN (folder with the binaries), CLUSTER_DIR (state folder).

CLUSTER_PIDS=()      # "name:pid" of every daemon we started
CLUSTER_MOUNTS=()    # every mount point we mounted
META_PORT=${META_PORT:-}
STORAGE_PORTS=()

cluster_log() { echo "[cluster] $*" >&2; }

# Prints a TCP port that is free on 127.0.0.1 right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_port PORT SECONDS: waits until something listens on 127.0.0.1:PORT.
wait_port() {
  local port=$1 deadline=$((SECONDS + ${2:-20}))
  while ((SECONDS < deadline)); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# is_mounted DIR: DIR is a mount point now. Reads /proc/mounts rather than stat()ing
# DIR, which can hang or fail while a FUSE daemon is going away.
is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }

# start_daemon NAME LOGFILE CMD...: starts a daemon in the background and records it.
# Each daemon runs in a session of its own, so a Ctrl-C at the terminal reaches only the
# script, which then stops everything in order (unmount first, while the metadata and
# storage nodes are still up to take the last flush).
start_daemon() {
  local name=$1 log=$2
  shift 2
  setsid "$@" >>"$log" 2>&1 </dev/null &
  local pid=$!
  CLUSTER_PIDS+=("$name:$pid")
  eval "PID_${name//[^a-zA-Z0-9]/_}=$pid"
  cluster_log "started $name (pid $pid): $*"
}

pid_of() { local v="PID_${1//[^a-zA-Z0-9]/_}"; echo "${!v:-}"; }

start_meta() {
  : "${META_PORT:=$(free_port)}"
  mkdir -p "$CLUSTER_DIR/meta"
  start_daemon meta "$CLUSTER_DIR/meta.log" "$DFS_BIN/dfs-meta" --data-dir "$CLUSTER_DIR/meta" \
    --listen "127.0.0.1:$META_PORT" ${META_ARGS:-}
  wait_port "$META_PORT" 30 || { cluster_log "dfs-meta did not start; log:"; tail -20 "$CLUSTER_DIR/meta.log" >&2; return 1; }
}

# start_storage I: starts storage node I (1-based); reuses its port on restart.
start_storage() {
  local i=$1
  local port=${STORAGE_PORTS[$i]:-}
  [ -n "$port" ] || port=$(free_port)
  STORAGE_PORTS[$i]=$port
  mkdir -p "$CLUSTER_DIR/storage$i"
  start_daemon "storage$i" "$CLUSTER_DIR/storage$i.log" "$DFS_BIN/dfs-storage" \
    --data-dir "$CLUSTER_DIR/storage$i" --listen "127.0.0.1:$port" --meta "127.0.0.1:$META_PORT" \
    ${STORAGE_ARGS:-}
  wait_port "$port" 30 || { cluster_log "dfs-storage $i did not start"; tail -20 "$CLUSTER_DIR/storage$i.log" >&2; return 1; }
}

# wait_nodes_up N [SECONDS]: waits until the metadata node reports N storage nodes up.
wait_nodes_up() {
  local want=$1 deadline=$((SECONDS + ${2:-30})) up=0
  while ((SECONDS < deadline)); do
    up=$("$DFS_BIN/dfsctl" --meta "127.0.0.1:$META_PORT" node list --json 2>/dev/null |
      python3 -c 'import json,sys; print(sum(1 for n in json.load(sys.stdin)["nodes"] if n["state"]=="up"))' 2>/dev/null || echo 0)
    [ "$up" -ge "$want" ] && return 0
    sleep 0.2
  done
  cluster_log "only $up of $want storage nodes up"
  return 1
}

# cluster_start N: metadata node plus N storage nodes, waits until all are up.
cluster_start() {
  local n=${1:-6}
  mkdir -p "$CLUSTER_DIR"
  start_meta || return 1
  for ((i = 1; i <= n; i++)); do start_storage "$i" || return 1; done
  wait_nodes_up "$n" 30
}

# mount_volume MOUNTPOINT [VOLUME] [EXTRA -o OPTIONS]: mounts with dfs-fuse in the foreground
# (as a background job) and waits until the mount is live.
mount_volume() {
  local mnt=$1 volume=${2:-default} opts=${3:-}
  mkdir -p "$mnt"
  local name="fuse_$(basename "$mnt")"
  # Each mount's write-back journal under the cluster directory (unless given).
  case ",$opts," in *,cache_dir=*) ;; *) opts="cache_dir=$CLUSTER_DIR/cache-$(basename "$mnt")${opts:+,$opts}" ;; esac
  start_daemon "$name" "$CLUSTER_DIR/$name.log" "$DFS_BIN/dfs-fuse" "127.0.0.1:$META_PORT:/$volume" "$mnt" -f \
    ${opts:+-o "$opts"}
  CLUSTER_MOUNTS+=("$mnt")
  local deadline=$((SECONDS + 30))
  while ((SECONDS < deadline)); do
    if is_mounted "$mnt"; then return 0; fi
    kill -0 "$(pid_of "$name")" 2>/dev/null || break
    sleep 0.1
  done
  cluster_log "mount of $mnt failed; log:"
  tail -20 "$CLUSTER_DIR/$name.log" >&2
  return 1
}

# unmount_volume DIR: unmounts; dfs-fuse then commits buffered writes and exits (waited
# for up to a minute, since it may still be flushing).
unmount_volume() {
  local mnt=$1
  local name="fuse_$(basename "$mnt")" pid
  pid=$(pid_of "$name")
  if is_mounted "$mnt"; then
    fusermount3 -u "$mnt" 2>/dev/null || { sleep 1; fusermount3 -u "$mnt" 2>/dev/null; } ||
      { cluster_log "lazy unmount of $mnt"; fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null; }
  fi
  if [ -n "$pid" ]; then
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  return 0
}

# stop_daemon NAME [SIGNAL]: stops one daemon and waits for it.
stop_daemon() {
  local name=$1 sig=${2:-TERM} pid
  pid=$(pid_of "$name")
  [ -n "$pid" ] || return 0
  kill -"$sig" "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }; sleep 0.1; done
  cluster_log "$name (pid $pid) ignored SIG$sig for 10 s; killing"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return 0
}

# Unmounts everything and stops every daemon we started. Safe to call more than once.
cluster_stop() {
  local mnt entry
  for mnt in "${CLUSTER_MOUNTS[@]}"; do unmount_volume "$mnt" || true; done
  for entry in "${CLUSTER_PIDS[@]}"; do
    local pid=${entry##*:}
    kill -TERM "$pid" 2>/dev/null || true
  done
  for entry in "${CLUSTER_PIDS[@]}"; do
    local pid=${entry##*:}
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  CLUSTER_PIDS=()
  CLUSTER_MOUNTS=()
}
