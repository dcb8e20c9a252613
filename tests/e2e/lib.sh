# Common setup for end-to-end tests: a fresh temporary directory, a cluster on free
# loopback ports, and cleanup that always unmounts and stops every daemon — on
# success, failure, ctest timeout (our own watchdog fires first) or Ctrl-C.
set -euo pipefail
: "${DFS_BIN:?DFS_BIN must name the folder with the binaries}"
: "${DFS_SOURCE:?DFS_SOURCE must name the source tree}"
# shellcheck source=../../scripts/cluster.sh
source "$DFS_SOURCE/scripts/cluster.sh"

CLUSTER_DIR=$(mktemp -d /tmp/dfs-e2e.XXXXXX)
chmod 755 "$CLUSTER_DIR"  # other users (permission tests) must reach the mount point
MNT=$CLUSTER_DIR/mnt
TEST_NAME=$(basename "$0" .sh)
E2E_TIME_LIMIT=${E2E_TIME_LIMIT:-1700}

step() { echo "== $TEST_NAME: $*"; }
fail() {
  echo "FAIL: $TEST_NAME: $*" >&2
  exit 1
}

_e2e_cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  [ -n "${_E2E_WATCHDOG:-}" ] && { pkill -P "$_E2E_WATCHDOG" sleep 2>/dev/null; kill "$_E2E_WATCHDOG" 2>/dev/null; }
  cluster_stop
  if [ "$rc" -ne 0 ]; then
    echo "--- $TEST_NAME failed (rc=$rc); daemon logs (last lines):" >&2
    for log in "$CLUSTER_DIR"/*.log; do
      [ -f "$log" ] || continue
      echo "--- $log" >&2
      tail -25 "$log" >&2
    done
  fi
  if [ -z "${DFS_KEEP:-}" ]; then rm -rf "$CLUSTER_DIR"; else echo "kept $CLUSTER_DIR" >&2; fi
  exit "$rc"
}
trap _e2e_cleanup EXIT
trap 'exit 130' INT
trap 'echo "FAIL: $TEST_NAME: time limit of ${E2E_TIME_LIMIT}s reached" >&2; exit 124' TERM
# Our own watchdog, shorter than ctest's timeout, so cleanup always runs.
# Its file descriptors are closed so that it never holds ctest's output pipe open.
( sleep "$E2E_TIME_LIMIT" && kill -TERM $$ ) </dev/null >/dev/null 2>&1 &
_E2E_WATCHDOG=$!

dfsctl() { "$DFS_BIN/dfsctl" --meta "127.0.0.1:$META_PORT" "$@"; }

# json_field JSON_TEXT PYTHON_EXPR: evaluates an expression over the parsed JSON `j`.
json_field() { python3 -c "import json,sys; j=json.loads(sys.argv[1]); print($2)" "$1"; }

# Storage accounting field from `dfsctl stats --json`.
stat_of() { json_field "$(dfsctl stats --json)" "j['$1']"; }

# Deterministic test tree: make_tree DIR FILES [SEED].
make_tree() { python3 "$DFS_SOURCE/tests/e2e/make_tree.py" "$1" "$2" "${3:-1}"; }

# Checksums of every regular file under a directory, sorted by path.
tree_sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }
