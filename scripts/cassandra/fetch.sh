#!/usr/bin/env bash
# Fetch Apache Cassandra (cassandra-all + its runtime dependencies) from Maven Central into
# .cache/cassandra/lib, once. Later runs only check the stamp and do not touch the network.
#
# Usage: scripts/cassandra/fetch.sh [--force]
#
# Environment:
#   CASSANDRA_LIB      where the jars go (default: <repo>/.cache/cassandra/lib)
#   MAVEN_REPO_LOCAL   Maven's local repository (default: Maven's own, ~/.m2/repository)
#   MVN                the Maven command (default: mvn)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
pom="$here/pom.xml"
lib="${CASSANDRA_LIB:-$root/.cache/cassandra/lib}"
mvn_cmd="${MVN:-mvn}"
force=0

for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "fetch.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

version="$(sed -n 's:.*<cassandra.version>\(.*\)</cassandra.version>.*:\1:p' "$pom")"
pom_sum="$(sha256sum "$pom" | cut -d' ' -f1)"
stamp="$lib/.fetched"

jar_count() { find "$1" -maxdepth 1 -name '*.jar' | wc -l; }

# The stamp records the pom it was made from and how many jars were copied: a changed pom or a
# damaged lib dir makes us fetch again.
stamp_ok() {
  [[ -f "$stamp" ]] || return 1
  local want_sum want_jars
  want_sum="$(sed -n 's/^pom_sha256=//p' "$stamp")"
  want_jars="$(sed -n 's/^jars=//p' "$stamp")"
  [[ "$want_sum" == "$pom_sum" && -n "$want_jars" && "$(jar_count "$lib")" -eq "$want_jars" \
     && -f "$lib/cassandra-all-$version.jar" ]]
}

if [[ $force -eq 0 ]] && stamp_ok; then
  echo "cassandra $version: $(jar_count "$lib") jars cached in $lib"
  exit 0
fi

mkdir -p "$(dirname "$lib")"
# One fetch at a time (parallel test runs, `make cluster` and pytest at once).
exec 9>"$(dirname "$lib")/.fetch.lock"
flock 9
if [[ $force -eq 0 ]] && stamp_ok; then
  echo "cassandra $version: $(jar_count "$lib") jars cached in $lib"
  exit 0
fi

command -v "$mvn_cmd" >/dev/null || { echo "fetch.sh: '$mvn_cmd' not found (install Maven)" >&2; exit 1; }

tmp="$lib.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mvn_args=(-q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies "-DoutputDirectory=$tmp")
if [[ -n "${MAVEN_REPO_LOCAL:-}" ]]; then
  mvn_args+=("-Dmaven.repo.local=$MAVEN_REPO_LOCAL")
fi

echo "cassandra $version: fetching jars from Maven Central into $lib ..."
start=$SECONDS
# (Maven 3.8 prints bare colour resets even in -q -B mode; drop them.)
"$mvn_cmd" "${mvn_args[@]}" 2>&1 | sed -u 's/\x1b\[0m//g'
count="$(jar_count "$tmp")"
if [[ ! -f "$tmp/cassandra-all-$version.jar" ]]; then
  echo "fetch.sh: cassandra-all-$version.jar missing after Maven ran" >&2
  exit 1
fi
printf 'cassandra_version=%s\npom_sha256=%s\njars=%s\n' "$version" "$pom_sum" "$count" >"$tmp/.fetched"
rm -rf "$lib"
mv "$tmp" "$lib"
trap - EXIT
echo "cassandra $version: $count jars ($(du -sh "$lib" | cut -f1)) in $((SECONDS - start)) s"
