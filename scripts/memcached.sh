#!/usr/bin/env bash
# Start / stop memcached daemons on 127.0.0.1 for the integration tests and `make cluster`.
#
# Usage: scripts/memcached.sh start PORT [PORT...]   start one daemon per port, wait until each answers
#        scripts/memcached.sh stop [PORT...]         SIGTERM (then SIGKILL); no PORT: every one we started
#        scripts/memcached.sh kill PORT [PORT...]    SIGKILL at once (fault tests)
#        scripts/memcached.sh status [PORT...]       exit 0 only if all of them run and answer
#
# Each daemon: -l 127.0.0.1 -p PORT -U 0 (no UDP) -m 64 (MiB for items), -u nobody when run as
# root (memcached refuses root), default item size limit (-I 1m: items over 1 MiB are refused).
# Pid files and logs in $MEMCACHED_DIR (default <repo>/.cache/memcached): PORT.pid, PORT.log.
# Environment: MEMCACHED (binary, default: memcached), MEMCACHED_MEMORY (MiB, default 64),
# MEMCACHED_EXTRA_ARGS (extra daemon options, whitespace separated).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
run_dir="${MEMCACHED_DIR:-$root/.cache/memcached}"
memcached_bin="${MEMCACHED:-memcached}"
# Debian installs /usr/bin/memcached; some layouts use /usr/sbin, which a non-root PATH may lack.
if ! command -v "$memcached_bin" >/dev/null 2>&1 && [[ -x "/usr/sbin/$memcached_bin" ]]; then
  memcached_bin="/usr/sbin/$memcached_bin"
fi
memory="${MEMCACHED_MEMORY:-64}"

usage() { sed -n '2,13p' "$0"; }

# Succeed if process $1 exists and has not exited. `kill -0` is not enough: a daemon whose starter
# has exited is reaped by pid 1 only some time after it dies, and kill -0 succeeds on a zombie.
alive() {
  local stat tasks
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ -n "$stat" ]] || return 1
  [[ "${stat%% *}" == Z ]] || return 0
  # A zombie main thread while other threads still exit (the JVM has dozens): not gone yet, and
  # its sockets may still be open.
  tasks=(/proc/"$1"/task/*)
  [[ ${#tasks[@]} -gt 1 ]]
}

# Print the pid of our memcached on port $1 and succeed, or fail if it does not run. The pid file is
# trusted only if that pid is alive and is a memcached started with "-p PORT".
mc_pid() {
  local port="$1" pid cmdline
  [[ -f "$run_dir/$port.pid" ]] || return 1
  pid="$(tr -dc '0-9' <"$run_dir/$port.pid")"
  [[ -n "$pid" ]] && alive "$pid" || return 1
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *memcached*" -p $port "* ]] || return 1
  echo "$pid"
}

# Succeed if a memcached answers "version" on 127.0.0.1:$1.
mc_ready() {
  local reply
  reply="$(
    exec 2>/dev/null
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'version\r\n' >&3
    timeout 2 head -c 8 <&3
  )" || return 1
  [[ "$reply" == "VERSION " ]]
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

check_port() {
  [[ "$1" =~ ^[0-9]+$ && "$1" -ge 1 && "$1" -le 65535 ]] || { echo "memcached.sh: bad port: $1" >&2; exit 2; }
}

start_one() {
  local port="$1" pid i
  if pid="$(mc_pid "$port")"; then
    echo "memcached already running on 127.0.0.1:$port (pid $pid)"
    return 0
  fi
  if port_in_use "$port"; then
    echo "memcached.sh: port 127.0.0.1:$port is already in use" >&2
    return 1
  fi
  local extra=()
  # memcached refuses to run as root without -u; as anyone else -u does not apply.
  if [[ "$(id -u)" == 0 ]]; then extra+=(-u nobody); fi
  if [[ -n "${MEMCACHED_EXTRA_ARGS:-}" ]]; then
    local more=()
    read -r -a more <<<"$MEMCACHED_EXTRA_ARGS"
    extra+=("${more[@]}")
  fi
  # Not -d: we keep the pid ourselves (memcached writes -P files only after dropping to nobody, who
  # cannot write here). setsid: a Ctrl-C aimed at the caller does not reach it.
  setsid "$memcached_bin" -l 127.0.0.1 -p "$port" -U 0 -m "$memory" "${extra[@]}" \
    </dev/null >>"$run_dir/$port.log" 2>&1 &
  pid=$!
  echo "$pid" >"$run_dir/$port.pid"
  for ((i = 0; i < 100; i++)); do
    if mc_ready "$port"; then
      echo "memcached ready on 127.0.0.1:$port (pid $pid)"
      return 0
    fi
    if ! alive "$pid"; then break; fi
    sleep 0.1
  done
  echo "memcached.sh: memcached on 127.0.0.1:$port did not come up; log $run_dir/$port.log:" >&2
  tail -n 20 "$run_dir/$port.log" >&2 || true
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$run_dir/$port.pid"
  return 1
}

# Stop the daemons on ports "$@" with signal $signal: signal them all first, then wait for each
# (memcached notices SIGTERM on its next clock tick, up to a second later).
stop_many() {
  local port pid i
  local -A pids=()
  for port in "$@"; do
    if pid="$(mc_pid "$port")"; then
      kill "-$signal" "$pid" 2>/dev/null || true
      pids[$port]=$pid
    else
      rm -f "$run_dir/$port.pid"
      echo "memcached not running on 127.0.0.1:$port"
    fi
  done
  for port in "${!pids[@]}"; do
    pid=${pids[$port]}
    for ((i = 0; i < 200; i++)); do
      alive "$pid" || break
      sleep 0.05
    done
    if alive "$pid"; then
      echo "memcached.sh: pid $pid (port $port) ignored SIG$signal for 10 s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      while alive "$pid"; do sleep 0.05; done
    fi
    rm -f "$run_dir/$port.pid"
    # memcached logs nothing unless something went wrong: drop empty logs (ports are often random).
    [[ -s "$run_dir/$port.log" ]] || rm -f "$run_dir/$port.log"
    echo "memcached stopped on 127.0.0.1:$port (pid $pid, SIG$signal)"
  done
}

[[ $# -ge 1 ]] || { usage >&2; exit 2; }
cmd="$1"; shift
for p in "$@"; do check_port "$p"; done
mkdir -p "$run_dir"

case "$cmd" in
  start)
    [[ $# -ge 1 ]] || { echo "memcached.sh: start needs at least one PORT" >&2; exit 2; }
    command -v "$memcached_bin" >/dev/null || {
      echo "memcached.sh: '$memcached_bin' not found (apt-get install memcached)" >&2; exit 1; }
    rc=0
    for p in "$@"; do start_one "$p" || rc=1; done
    exit $rc
    ;;
  stop|kill)
    signal=TERM
    [[ "$cmd" == kill ]] && signal=KILL
    ports=("$@")
    if [[ ${#ports[@]} -eq 0 ]]; then
      [[ "$cmd" == stop ]] || { echo "memcached.sh: kill needs at least one PORT" >&2; exit 2; }
      for f in "$run_dir"/*.pid; do [[ -e "$f" ]] && ports+=("$(basename "$f" .pid)"); done
    fi
    if [[ ${#ports[@]} -gt 0 ]]; then stop_many "${ports[@]}"; fi
    ;;
  status)
    rc=0
    ports=("$@")
    if [[ ${#ports[@]} -eq 0 ]]; then
      for f in "$run_dir"/*.pid; do [[ -e "$f" ]] && ports+=("$(basename "$f" .pid)"); done
    fi
    for p in "${ports[@]}"; do
      if pid="$(mc_pid "$p")" && mc_ready "$p"; then
        echo "memcached running on 127.0.0.1:$p (pid $pid)"
      else
        echo "memcached not running on 127.0.0.1:$p"; rc=1
      fi
    done
    exit $rc
    ;;
  -h|--help) usage ;;
  *) echo "memcached.sh: unknown command: $cmd" >&2; usage >&2; exit 2 ;;
esac
