#!/usr/bin/env bash
# Start a single-node Apache Cassandra 5.0 in the background, on 127.0.0.1 only, and wait until it
# answers CQL. Exits 0 when ready; non-zero (with the log tail) when it died or did not get ready.
#
# Usage: scripts/cassandra/start.sh [--data-dir D] [--port P] [--storage-port S] [--timeout SECS]
#   --data-dir      everything (config, data, commitlog, logs, pid file) lives here
#                   (default: <repo>/.cache/cassandra/data)
#   --port          CQL native transport port (default: 9042)
#   --storage-port  inter-node port, bound on 127.0.0.1 only (default: 7000)
#   --timeout       seconds to wait for CQL before giving up and stopping it again (default: 180)
#
# Environment:
#   JAVA                java command, must be JDK 17 (default: the first JDK 17 of $JAVA_HOME,
#                       java on PATH, /usr/lib/jvm/*17*)
#   CASSANDRA_HEAP      max heap (default: 1g); CASSANDRA_HEAP_MIN initial heap (default: 256m)
#   CASSANDRA_LIB       jar dir (default: <repo>/.cache/cassandra/lib, filled by fetch.sh)
#   CASSANDRA_JVM_OPTS  extra JVM options, whitespace separated
#
# Stop it with scripts/cassandra/stop.sh --data-dir D.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
data_dir="$root/.cache/cassandra/data"
port=9042
storage_port=7000
timeout=180

usage() { sed -n '2,19p' "$0"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data-dir) data_dir="$2"; shift 2 ;;
    --data-dir=*) data_dir="${1#*=}"; shift ;;
    --port) port="$2"; shift 2 ;;
    --port=*) port="${1#*=}"; shift ;;
    --storage-port) storage_port="$2"; shift 2 ;;
    --storage-port=*) storage_port="${1#*=}"; shift ;;
    --timeout) timeout="$2"; shift 2 ;;
    --timeout=*) timeout="${1#*=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "start.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
for n in "$port" "$storage_port" "$timeout"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "start.sh: not a number: $n" >&2; exit 2; }
done
if [[ "$port" == "$storage_port" ]]; then
  echo "start.sh: --port and --storage-port must differ" >&2; exit 2
fi

# shellcheck source=scripts/cassandra/common.sh
source "$here/common.sh"

mkdir -p "$data_dir"
data_dir="$(cd "$data_dir" && pwd)"
pid_file="$data_dir/cassandra.pid"
log_dir="$data_dir/logs"
lib="${CASSANDRA_LIB:-$root/.cache/cassandra/lib}"

if pid="$(cassandra_pid "$data_dir")"; then
  if cql_ready "$port"; then
    echo "cassandra already running (pid $pid) with CQL on 127.0.0.1:$port"
    exit 0
  fi
  echo "start.sh: a cassandra (pid $pid) already runs on $data_dir but CQL does not answer on" \
       "127.0.0.1:$port; stop it first: scripts/cassandra/stop.sh --data-dir $data_dir" >&2
  exit 1
fi
# A port may still be held for a moment by a daemon that was just stopped or killed: wait a little.
for p in "$port" "$storage_port"; do
  for ((i = 0; i < 50; i++)); do
    port_in_use "$p" || break
    sleep 0.2
  done
  if port_in_use "$p"; then
    echo "start.sh: port 127.0.0.1:$p is already in use" >&2
    exit 1
  fi
done

CASSANDRA_LIB="$lib" "$here/fetch.sh"

# Cassandra 5.0 supports JDK 11 and 17; this setup (flags above all) is for 17. The machine may have
# other JDKs too (a Temurin 25 beside Debian's 17 here), so look for a 17 rather than take any java.
java_major() { "$1" -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -1; }
java_cmd=""
if [[ -n "${JAVA:-}" ]]; then
  candidates=("$JAVA")
else
  candidates=()
  [[ -n "${JAVA_HOME:-}" ]] && candidates+=("$JAVA_HOME/bin/java")
  command -v java >/dev/null 2>&1 && candidates+=("$(command -v java)")
  candidates+=(/usr/lib/jvm/java-17-openjdk-*/bin/java /usr/lib/jvm/*17*/bin/java)
fi
for c in "${candidates[@]}"; do
  if [[ -x "$c" && "$(java_major "$c")" == 17 ]]; then java_cmd="$c"; break; fi
done
if [[ -z "$java_cmd" ]]; then
  echo "start.sh: no JDK 17 found (tried: ${candidates[*]}); install openjdk-17-jre-headless or set JAVA" >&2
  exit 1
fi

conf_dir="$data_dir/conf"
mkdir -p "$conf_dir" "$log_dir" "$data_dir/data" "$data_dir/commitlog" "$data_dir/saved_caches" \
         "$data_dir/hints" "$data_dir/cdc_raw" "$data_dir/triggers"
sed -e "s|@DATA_DIR@|$data_dir|g" -e "s|@NATIVE_PORT@|$port|g" -e "s|@STORAGE_PORT@|$storage_port|g" \
    "$here/cassandra.yaml.in" >"$conf_dir/cassandra.yaml"
cp "$here/logback.xml" "$conf_dir/logback.xml"

jamm="$(find "$lib" -maxdepth 1 -name 'jamm-*.jar' | head -1)"

# Options shared with the Kubernetes image (scripts/cassandra/jvm17-server.options), then this node's own.
read_jvm_options() {  # FILE: the options of an options file, comment lines skipped, split on blanks
  local line words
  while IFS= read -r line; do
    [[ -z "${line// }" || "$line" == \#* ]] && continue
    read -r -a words <<<"$line"
    jvm_opts+=("${words[@]}")
  done <"$1"
}
jvm_opts=()
read_jvm_options "$here/jvm17-server.options"
jvm_opts+=(
  # Heap: small, for a 2-core dev box / CI (memtables, caches are sized to it in cassandra.yaml).
  "-Xms${CASSANDRA_HEAP_MIN:-256m}" "-Xmx${CASSANDRA_HEAP:-1g}"
  "-XX:HeapDumpPath=$data_dir"
  -XX:+PerfDisableSharedMem
  # From upstream conf/cassandra-env.sh: the jamm agent (object sizes for memtable accounting).
  "-javaagent:$jamm"
  # Where things are.
  "-Dcassandra.config=file://$conf_dir/cassandra.yaml"
  "-Dcassandra.storagedir=$data_dir"
  "-Dcassandra.logdir=$log_dir"
  "-Dlogback.configurationFile=file://$conf_dir/logback.xml"
  "-Dcassandra.triggers_dir=$data_dir/triggers"
  -Dcassandra-foreground=no
  # Single node: no ring state to load.
  -Dcassandra.load_ring_state=false
  # Dev/test data: no fsync (commitlog, flushes, schema). Writes still reach the page cache before
  # they are acknowledged (commitlog_sync: batch), so they survive a SIGKILL of the daemon.
  -Dcassandra.skip_sync=true
)
if [[ -n "${CASSANDRA_JVM_OPTS:-}" ]]; then
  read -r -a extra <<<"$CASSANDRA_JVM_OPTS"
  jvm_opts+=("${extra[@]}")
fi

# setsid: own session, so a Ctrl-C in the shell or test runner that started it does not reach it;
# stop.sh (or the test fixtures) stop it by pid. stdin from /dev/null, JVM output to stdout.log.
begin=$(date +%s%N)
setsid "$java_cmd" "${jvm_opts[@]}" -cp "$conf_dir:$lib/*" org.apache.cassandra.service.CassandraDaemon \
  </dev/null >"$log_dir/stdout.log" 2>&1 &
pid=$!
echo "$pid" >"$pid_file"
# Interrupted while waiting (Ctrl-C, a CI timeout): do not leave a half-started daemon behind.
trap 'echo "start.sh: interrupted; stopping cassandra" >&2; "$here/stop.sh" --data-dir "$data_dir" >&2; exit 130' \
  INT TERM HUP
echo "cassandra starting (pid $pid, CQL 127.0.0.1:$port, storage 127.0.0.1:$storage_port, data $data_dir)"

elapsed_ms() { echo $(( ($(date +%s%N) - begin) / 1000000 )); }
next_note=10
while true; do
  if ! alive "$pid"; then
    echo "start.sh: cassandra (pid $pid) exited during startup after $(elapsed_ms) ms" >&2
    rm -f "$pid_file"
    show_logs "$log_dir" >&2
    exit 1
  fi
  if cql_ready "$port"; then
    ms=$(elapsed_ms)
    printf 'cassandra ready: CQL on 127.0.0.1:%s after %d.%03d s (pid %s)\n' "$port" $((ms / 1000)) \
      $((ms % 1000)) "$pid"
    exit 0
  fi
  ms=$(elapsed_ms)
  if (( ms >= timeout * 1000 )); then
    echo "start.sh: CQL not answering on 127.0.0.1:$port after $timeout s; stopping cassandra" >&2
    show_logs "$log_dir" >&2
    "$here/stop.sh" --data-dir "$data_dir" >&2 || true
    exit 1
  fi
  if (( ms >= next_note * 1000 )); then
    echo "  ... waiting for CQL on 127.0.0.1:$port ($((ms / 1000)) s)"
    next_note=$((next_note + 10))
  fi
  sleep 0.5
done
