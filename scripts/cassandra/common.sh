# shellcheck shell=bash
# Helpers shared by scripts/cassandra/start.sh and stop.sh (sourced, not run).

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

# Print the pid of the Cassandra running on data dir $1 and succeed, or fail if there is none.
# The pid file alone is not trusted: the process must be alive and be the CassandraDaemon started
# on that very data dir (a stale pid file may name a recycled pid).
cassandra_pid() {
  local data_dir="$1" pid cmdline
  [[ -f "$data_dir/cassandra.pid" ]] || return 1
  pid="$(tr -dc '0-9' <"$data_dir/cassandra.pid")"
  [[ -n "$pid" ]] && alive "$pid" || return 1
  cmdline="$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  grep -qx 'org.apache.cassandra.service.CassandraDaemon' <<<"$cmdline" || return 1
  grep -qxF -- "-Dcassandra.storagedir=$data_dir" <<<"$cmdline" || return 1
  echo "$pid"
}

# Succeed if something accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Succeed if a CQL server answers on 127.0.0.1:$1: send a native-protocol v4 OPTIONS frame
# (version 0x04, flags 0, stream 0, opcode 0x05, body length 0) and expect a SUPPORTED (0x06)
# response frame (version 0x84).
cql_ready() {
  local reply
  reply="$(
    exec 2>/dev/null
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf '\x04\x00\x00\x00\x05\x00\x00\x00\x00' >&3
    timeout 3 head -c 5 <&3 | od -An -tx1 | tr -d ' \n'
  )" || return 1
  [[ "$reply" == "8400000006" ]]
}

# Print what tells why Cassandra failed: the JVM's own output, the errors in system.log, its tail.
show_logs() {
  local log_dir="$1"
  if [[ -s "$log_dir/stdout.log" ]]; then
    echo "----- $log_dir/stdout.log (last 30 lines) -----"
    tail -n 30 "$log_dir/stdout.log"
  fi
  if [[ -s "$log_dir/system.log" ]]; then
    echo "----- ERROR lines of $log_dir/system.log (last 10) -----"
    grep -E '^(ERROR|FATAL)' "$log_dir/system.log" | tail -n 10 || true
    echo "----- $log_dir/system.log (last 20 lines) -----"
    tail -n 20 "$log_dir/system.log"
  fi
}
