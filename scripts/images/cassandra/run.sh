#!/bin/bash
# Entrypoint of the headwater-cassandra image (/opt/cassandra/bin/run): renders cassandra.yaml from the
# environment into a writable directory (the root filesystem is read-only) and execs Cassandra 5.0 in the
# foreground, logging to stdout, as whatever user the container runs as (10001). No pid file.
#
# Environment (default):
#   CASSANDRA_LISTEN_ADDRESS  inter-node address, also advertised for CQL ($POD_IP, else the first
#                             address of `hostname -i`)
#   CASSANDRA_SEEDS           comma-separated seed hostnames or addresses (the listen address)
#   CASSANDRA_CLUSTER_NAME    (headwater)
#   CASSANDRA_NUM_TOKENS      (16)
#   CASSANDRA_HEAP            max = initial heap (512m); CASSANDRA_HEAP_NEW young generation (128m)
#   CASSANDRA_NATIVE_PORT     CQL (9042); CASSANDRA_STORAGE_PORT inter-node (7000)
#   CASSANDRA_DATA            data, commitlog, hints, saved caches (/var/lib/cassandra, a volume)
#   CASSANDRA_CONF            where the rendered config goes (/tmp/cassandra-conf)
#   CASSANDRA_SKIP_SYNC       true: no fsync under the batch commitlog (test node; set false to fsync)
#   CASSANDRA_JVM_OPTS        extra JVM options, whitespace separated (last one wins)
set -euo pipefail
home=/opt/cassandra
data=${CASSANDRA_DATA:-/var/lib/cassandra}
conf=${CASSANDRA_CONF:-/tmp/cassandra-conf}
listen=${CASSANDRA_LISTEN_ADDRESS:-${POD_IP:-$(hostname -i | awk '{print $1}')}}
[ -n "$listen" ] || { echo "run: no listen address (set CASSANDRA_LISTEN_ADDRESS or POD_IP)" >&2; exit 1; }
seeds=${CASSANDRA_SEEDS:-$listen}
heap=${CASSANDRA_HEAP:-512m}

mkdir -p "$conf" "$conf/logs" "$data"/{data,commitlog,saved_caches,hints,cdc_raw}
# Render with bash's own substitution (no sed: values may hold | or &; bash 5.2 would expand & in the
# replacement unless patsub_replacement is off). Quotes in the cluster name are doubled for YAML.
shopt -u patsub_replacement 2>/dev/null || true
name=${CASSANDRA_CLUSTER_NAME:-headwater}
yaml=$(<"$home/conf/cassandra.yaml.in")
yaml=${yaml//@CLUSTER_NAME@/${name//\'/\'\'}}
yaml=${yaml//@NUM_TOKENS@/${CASSANDRA_NUM_TOKENS:-16}}
yaml=${yaml//@LISTEN_ADDRESS@/$listen}
yaml=${yaml//@SEEDS@/$seeds}
yaml=${yaml//@NATIVE_PORT@/${CASSANDRA_NATIVE_PORT:-9042}}
yaml=${yaml//@STORAGE_PORT@/${CASSANDRA_STORAGE_PORT:-7000}}
yaml=${yaml//@DATA_DIR@/$data}
printf '%s\n' "$yaml" >"$conf/cassandra.yaml"
cp "$home/conf/logback.xml" "$conf/logback.xml"

jamm=$(echo "$home"/lib/jamm-*.jar)
# The JVM options shared with scripts/cassandra/start.sh (conf/jvm17-server.options: upstream
# jvm-server.options + jvm17-server.options, C1 only, fast boot), then a small pod's own.
jvm_opts=()
while IFS= read -r line; do
  [[ -z "${line// }" || "$line" == \#* ]] && continue
  read -r -a words <<<"$line"
  jvm_opts+=("${words[@]}")
done <"$home/conf/jvm17-server.options"
jvm_opts+=(
  "-Xms$heap" "-Xmx$heap" "-Xmn${CASSANDRA_HEAP_NEW:-128m}"
  "-XX:HeapDumpPath=$data"
  # no hsperfdata file in /tmp
  -XX:-UsePerfData
  "-javaagent:$jamm"
  "-Dcassandra.config=file://$conf/cassandra.yaml"
  "-Dcassandra.storagedir=$data"
  "-Dcassandra.logdir=$conf/logs"
  "-Dlogback.configurationFile=file://$conf/logback.xml"
  "-Dcassandra.triggers_dir=$conf/triggers"
  # set (any value): Cassandra keeps stdout/stderr open instead of closing them after start
  -Dcassandra-foreground=yes
)
[ "${CASSANDRA_SKIP_SYNC:-true}" = true ] && jvm_opts+=(-Dcassandra.skip_sync=true)
if [ -n "${CASSANDRA_JVM_OPTS:-}" ]; then read -r -a extra <<<"$CASSANDRA_JVM_OPTS"; jvm_opts+=("${extra[@]}"); fi
mkdir -p "$conf/triggers"
echo "cassandra: listen $listen, seeds $seeds, CQL 0.0.0.0:${CASSANDRA_NATIVE_PORT:-9042}, heap $heap, data $data"
exec /usr/lib/jvm/java-17-openjdk-amd64/bin/java "${jvm_opts[@]}" -cp "$conf:$home/lib/*" \
  org.apache.cassandra.service.CassandraDaemon
