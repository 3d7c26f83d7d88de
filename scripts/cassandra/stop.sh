#!/usr/bin/env bash
# Stop the Cassandra that scripts/cassandra/start.sh started on a data dir: SIGTERM (Cassandra's
# shutdown hook drains and flushes), wait up to --timeout seconds for the process to exit, then
# SIGKILL. Exits 0 when nothing of it runs any more (also when it was not running).
#
# Usage: scripts/cassandra/stop.sh [--data-dir D] [--timeout SECS] [--kill]
#   --data-dir  as given to start.sh (default: <repo>/.cache/cassandra/data)
#   --timeout   seconds to wait after SIGTERM before SIGKILL (default: 60)
#   --kill      SIGKILL at once, no drain (crash simulation for fault tests)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
data_dir="$root/.cache/cassandra/data"
timeout=60
signal=TERM

while [[ $# -gt 0 ]]; do
  case "$1" in
    --data-dir) data_dir="$2"; shift 2 ;;
    --data-dir=*) data_dir="${1#*=}"; shift ;;
    --timeout) timeout="$2"; shift 2 ;;
    --timeout=*) timeout="${1#*=}"; shift ;;
    --kill) signal=KILL; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "stop.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
[[ "$timeout" =~ ^[0-9]+$ ]] || { echo "stop.sh: not a number: $timeout" >&2; exit 2; }

# shellcheck source=scripts/cassandra/common.sh
source "$here/common.sh"

if [[ ! -d "$data_dir" ]]; then
  echo "cassandra not running (no data dir $data_dir)"
  exit 0
fi
data_dir="$(cd "$data_dir" && pwd)"
pid_file="$data_dir/cassandra.pid"

if ! pid="$(cassandra_pid "$data_dir")"; then
  rm -f "$pid_file"
  echo "cassandra not running on $data_dir"
  exit 0
fi

begin=$SECONDS
kill "-$signal" "$pid" 2>/dev/null || true
while alive "$pid" && (( SECONDS - begin < timeout )); do
  sleep 0.2
done
if alive "$pid"; then
  echo "stop.sh: cassandra (pid $pid) still running after SIGTERM + $timeout s; sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  while alive "$pid"; do sleep 0.1; done
fi
rm -f "$pid_file"
echo "cassandra stopped (pid $pid, SIG$signal) after $((SECONDS - begin)) s"
