#!/bin/bash
# Builds Headwater's four container images as archives for `ctr -n k8s.io images import` (no image
# registry is reachable here), all Debian bookworm minbase (debootstrap), all running as 10001:10001:
#   localhost/headwater:TAG            python3 + pyproject's runtime deps + services/  (python3 -m services.cli)
#   localhost/headwater-router:TAG     nginx-light + python3 + services/             (python3 -m services.router)
#   localhost/headwater-memcached:TAG  memcached
#   localhost/headwater-cassandra:TAG  JRE 17 + cassandra-all 5.0 jars + /opt/cassandra/bin/run
# TAG = <pyproject version>-g<git short rev>[-dirty<8 hex of services/ + pyproject.toml>]; printed last,
# also written to $C/TAG. Archives: $C/archives/<image>-TAG.tar.
#
# Layers are cached under $C keyed by a hash of their inputs (packages, mirrors, the recipe itself):
# a Debian base per image, the pip dependencies, the Cassandra jars; only the small app layer (services/)
# is made again for a new commit. Each image is smoke-tested in a chroot of its layers (read-only root,
# tmpfs /tmp, uid 10001, private mount/net/pid namespaces, so nothing is left behind and nothing listens
# on this machine's network); a test that passed for the same layers is not repeated.
# Needs root (debootstrap, chroot, mounts). Measured on 2 cores: cold ~2 min (debootstrap and apt in the
# bases), a changed services/ file ~6 s (app layer, two smoke tests, four archives), nothing changed ~2 s.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/scripts/images
C=${XDG_CACHE_HOME:-$HOME/.cache}/headwater-images
MKIMAGE=$ROOT/scripts/k8s/mkimage.py
ID=10001
cd "$ROOT"
[ "$(id -u)" = 0 ] || { echo "images/build.sh: needs root (debootstrap, chroot, mounts)" >&2; exit 1; }
command -v debootstrap >/dev/null && command -v mvn >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap maven >/dev/null
}
mkdir -p "$C/layers" "$C/roots" "$C/archives" "$C/tested" "$C/debs"
exec 8>"$C/.lock"; flock 8   # one build at a time per cache
t0=$SECONDS
log() { echo "[$((SECONDS - t0))s] $*" >&2; }

# ---- tag -------------------------------------------------------------------------------------------
py_version=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
mapfile -t deps < <(python3 -c 'import tomllib
for d in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]: print(d)')
app_hash=$({ find services -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum
  sha256sum pyproject.toml; } | sha256sum | cut -c1-64)
TAG=$py_version-g$(git rev-parse --short HEAD)
[ -z "$(git status --porcelain)" ] || TAG=$TAG-dirty${app_hash:0:8}

# ---- Debian mirrors: the ones this machine's apt uses (same logic as scripts/k8s/rootfs-image.sh) --------
suite_uri() {  # URIs of the first active deb822 stanza (or one-line entry) whose Suites include $1
  local u
  u=$(awk -v s="$1" '/^URIs:/{u=$2} /^Suites:/{for(i=2;i<=NF;i++) if($i==s){print u; exit}}' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
  [ -n "$u" ] || u=$(awk -v s="$1" '$1=="deb" && $3==s{print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  echo "$u"
}
mirror=$(suite_uri bookworm); security=$(suite_uri bookworm-security)
[ -n "$mirror" ] || { echo "images/build.sh: no bookworm entry in this machine's apt sources" >&2; exit 1; }

key() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }
# Deterministic tar of a directory (same content, same layer digest), gzipped without a name or time.
pack() {  # DIR OUT.tar.gz [tar options...]
  local dir=$1 out=$2; shift 2
  tar -C "$dir" --sort=name --numeric-owner --mtime=@0 --exclude='./dev/*' --exclude='./proc/*' \
    --exclude='./sys/*' "$@" -cf - . | gzip -n -6 > "$out.part"
  mv "$out.part" "$out"
}

# ---- base layers ---------------------------------------------------------------------------------------
# Removes what an image does not need: docs, man pages, locales, apt lists and caches, logs, bytecode, and
# glibc's iconv modules (8 MB; Python, nginx, memcached and the JVM bring their own codecs); of the JRE,
# javac's symbol table and the class data archive for heaps over 32 GB (20 MB).
slim_rootfs() {
  local r=$1
  rm -rf "$r"/usr/share/{doc,man,info,locale,lintian}/* "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* \
    "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old "$r"/var/log/* "$r"/etc/resolv.conf \
    "$r"/etc/hostname "$r"/usr/sbin/policy-rc.d "$r"/usr/lib/x86_64-linux-gnu/gconv \
    "$r"/usr/lib/jvm/*/lib/ct.sym "$r"/usr/lib/jvm/*/lib/server/classes_nocoops.jsa
  find "$r" -xdev -name __pycache__ -type d -prune -exec rm -rf {} +
}
# A debootstrap'ed minbase, shared by the bases (their .debs are kept in $C/debs across rebuilds).
minbase() {
  local out=$C/roots/minbase-$(key "$mirror" "$(declare -f minbase)")
  if [ ! -d "$out" ]; then
    rm -rf "$out.tmp"
    log "debootstrap minbase from $mirror"
    debootstrap --variant=minbase --cache-dir="$C/debs" bookworm "$out.tmp" "$mirror" > "$C/debootstrap.log"
    mv "$out.tmp" "$out"
  fi
  echo "$out"
}
# make_base NAME PKG... [-PKG...]: minbase + packages (with security updates) + user 10001, slimmed; sets
# BASE_DIR and BASE_LAYER. -PKG: force-removed after the install, a package the running image never uses:
# the package tools (apt, debconf, perl-base: nothing is installed into a running image, its root is
# read-only), or perl that memcached depends on only for its memcached-tool script.
# Packages are installed with apt in a chroot of a copy of the minbase: services do not start
# (policy-rc.d), docs are not even unpacked (dpkg path-exclude), /proc is mounted only for the maintainer
# scripts (Java's ca-certificates hook runs a JVM) in a private mount namespace that vanishes with them.
make_base() {
  local name=$1; shift
  local pkgs=() drop=() p; for p in "$@"; do [[ $p == -* ]] && drop+=("${p#-}") || pkgs+=("$p"); done
  local k; k=$(key "$name" "$@" "$mirror" "$security" "$(declare -f make_base slim_rootfs minbase)")
  local dir=$C/roots/base-$name-$k
  BASE_LAYER=$C/layers/base-$name-$k.tar.gz BASE_DIR=$dir
  [ -f "$BASE_LAYER" ] && [ -d "$dir" ] && return
  local mb; mb=$(minbase)
  log "base $name: $*"
  rm -rf "$dir" && cp -a "$mb" "$dir"
  {
    echo "Types: deb"; echo "URIs: $mirror"; echo "Suites: bookworm bookworm-updates"; echo "Components: main"
    echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
    [ -z "$security" ] || printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\nSigned-By: %s\n' \
      "$security" /usr/share/keyrings/debian-archive-keyring.gpg
  } > "$dir/etc/apt/sources.list.d/debian.sources"
  rm -f "$dir/etc/apt/sources.list"
  printf '#!/bin/sh\nexit 101\n' > "$dir/usr/sbin/policy-rc.d"; chmod 755 "$dir/usr/sbin/policy-rc.d"
  printf 'path-exclude=/usr/share/%s/*\n' doc man info locale lintian > "$dir/etc/dpkg/dpkg.cfg.d/headwater-slim"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' > "$dir/etc/apt/apt.conf.d/90headwater"
  cp /etc/resolv.conf "$dir/etc/resolv.conf"
  unshare --mount --propagation private bash -c '
    set -e; mount -t proc proc "$1/proc"; r=$1; shift
    apt() { chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
      apt-get -y -qq -o Dpkg::Use-Pty=0 "$@"; }
    apt update; apt upgrade; apt install $1; apt clean
    [ -z "$2" ] || chroot "$r" dpkg --purge --force-depends --force-remove-essential $2' _ "$dir" "${pkgs[*]}" "${drop[*]:-}" > "$C/apt-$name.log" 2>&1 \
    || { tail -n 30 "$C/apt-$name.log" >&2; exit 1; }
  echo "headwater:x:$ID:$ID:headwater:/tmp:/usr/sbin/nologin" >> "$dir/etc/passwd"
  echo "headwater:x:$ID:" >> "$dir/etc/group"
  slim_rootfs "$dir"
  if find "$dir/usr/bin" -regextype egrep -regex '.*/(cc|c\+\+|gcc.*|g\+\+.*|clang.*|x86_64-linux-gnu-gcc.*)' | grep -q .; then
    echo "images/build.sh: a compiler ended up in base $name" >&2; exit 1
  fi
  pack "$dir" "$BASE_LAYER"
}

# ---- the pip dependencies: host-side install of manylinux wheels for CPython 3.11 -----------------------
DEPS_LAYER= DEPS_DIR=
make_deps() {
  local k; k=$(key "${deps[@]}" "$(declare -f make_deps)")
  DEPS_DIR=$C/roots/deps-$k DEPS_LAYER=$C/layers/deps-$k.tar.gz
  [ -f "$DEPS_LAYER" ] && [ -d "$DEPS_DIR" ] && return
  log "pip dependencies: ${deps[*]}"
  rm -rf "$DEPS_DIR"
  # wheels only (no compiler in the image, none needed on the host), for bookworm's CPython 3.11;
  # --no-compile: no bytecode in the image (the root filesystem is read-only anyway)
  python3 -m pip install -q --disable-pip-version-check --no-warn-conflicts --root-user-action=ignore --no-compile \
    --target "$DEPS_DIR/opt/headwater/lib" --only-binary=:all: --python-version 3.11 --implementation cp \
    --abi cp311 --platform manylinux2014_x86_64 "${deps[@]}"
  # console scripts would carry this host's interpreter path; the image runs modules (python3 -m)
  rm -rf "$DEPS_DIR/opt/headwater/lib/bin"
  # Some wheels ship extension modules with debug info (uvloop: 13.6 of its 14 MB). Strip those, but not
  # the auditwheel-grafted libraries in *.libs (strip can break patchelf-edited files); the smoke test
  # imports every one of them.
  find "$DEPS_DIR" -name '*.so' ! -path '*.libs/*' -exec sh -c \
    'for f; do file "$f" | grep -q "with debug_info" && strip --strip-debug "$f"; done; true' _ {} +
  find "$DEPS_DIR" -name __pycache__ -type d -prune -exec rm -rf {} +
  chmod -R a+rX,go-w "$DEPS_DIR"
  pack "$DEPS_DIR" "$DEPS_LAYER" --owner=0 --group=0
}

# ---- the app layer: services/ at /opt/headwater/app (shared by headwater and headwater-router) ------------
make_app() {
  APP_DIR=$C/roots/app-${app_hash:0:16} APP_LAYER=$C/layers/app-${app_hash:0:16}.tar.gz
  [ -f "$APP_LAYER" ] && [ -d "$APP_DIR" ] && return
  rm -rf "$APP_DIR" && mkdir -p "$APP_DIR/opt/headwater/app"
  tar -C "$ROOT" --exclude=__pycache__ --exclude='*.pyc' -cf - services | tar -C "$APP_DIR/opt/headwater/app" -xf -
  chmod -R a+rX,go-w "$APP_DIR"
  pack "$APP_DIR" "$APP_LAYER" --owner=0 --group=0
}

# ---- the Cassandra layer: jars, entrypoint, config templates; /var/lib/cassandra owned by 10001 ----------
make_cassandra() {
  CASSANDRA_LIB="$ROOT/.cache/cassandra/lib" scripts/cassandra/fetch.sh >/dev/null
  local lib=$ROOT/.cache/cassandra/lib k
  k=$(key "$(cat "$lib/.fetched")" "$(cat "$HERE"/cassandra/* "$ROOT/scripts/cassandra/jvm17-server.options")" "$(declare -f make_cassandra)")
  CASS_DIR=$C/roots/cassandra-$k CASS_LAYER=$C/layers/cassandra-$k.tar.gz
  [ -f "$CASS_LAYER" ] && [ -d "$CASS_DIR" ] && return
  log "cassandra layer: $(find "$lib" -name '*.jar' | wc -l) jars"
  rm -rf "$CASS_DIR" && mkdir -p "$CASS_DIR"/opt/cassandra/{bin,conf,lib} "$CASS_DIR/var/lib/cassandra"
  cp "$lib"/*.jar "$CASS_DIR/opt/cassandra/lib/"
  install -m 755 "$HERE/cassandra/run.sh" "$CASS_DIR/opt/cassandra/bin/run"
  cp "$HERE/cassandra/cassandra.yaml.in" "$HERE/cassandra/logback.xml" "$ROOT/scripts/cassandra/jvm17-server.options" \
    "$CASS_DIR/opt/cassandra/conf/"
  chmod -R a+rX,go-w "$CASS_DIR"
  chown "$ID:$ID" "$CASS_DIR/var/lib/cassandra"
  pack "$CASS_DIR" "$CASS_LAYER"
}

# ---- smoke tests ----------------------------------------------------------------------------------------
# in_image TESTNAME SCRIPT LAYER_DIR... (top first): runs SCRIPT (bash) with $R = the image's root
# filesystem, mounted read-only (overlay of the layer dirs), tmpfs /tmp, /proc, /dev; in new mount, net and
# pid namespaces: only loopback, and every process and mount is gone when SCRIPT ends. Skipped when the
# same test passed for the same layers before.
in_image() {
  local name=$1 script=$2; shift 2
  local stamp; stamp=$C/tested/$name-$(key "$@" "$script" "$(declare -f in_image)")
  [ -f "$stamp" ] && { log "smoke test $name: passed before for these layers"; return; }
  log "smoke test $name"
  local m; m=$(mktemp -d "$C/mnt.XXXX")
  local lower; lower=$(IFS=:; echo "$*")
  if unshare --mount --net --pid --fork --propagation private bash -c '
      set -euo pipefail; m=$1 lower=$2 script=$3 R=$1
      if [[ $lower == *:* ]]; then mount -t overlay overlay -o "ro,lowerdir=$lower" "$m"
      else mount --bind -o ro "$lower" "$m"; mount -o remount,bind,ro "$m"; fi
      mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"; mount -t proc proc "$R/proc"
      mount -t tmpfs -o mode=755 tmpfs "$R/dev"
      for d in null zero random urandom tty; do touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"; done
      ip link set lo up
      run() { chroot --userspec='"$ID:$ID"' "$R" /usr/bin/env -i HOME=/tmp "$@"; }
      source "'"$ROOT"'/scripts/cassandra/common.sh"
      eval "$script"' _ "$m" "$lower" "$script" > "$C/test-$name.log" 2>&1; then
    touch "$stamp"; rmdir "$m"; log "smoke test $name: ok"
  else
    rmdir "$m" 2>/dev/null || true
    echo "images/build.sh: smoke test $name failed; $C/test-$name.log:" >&2; tail -n 40 "$C/test-$name.log" >&2
    exit 1
  fi
}

# ---- build ------------------------------------------------------------------------------------------------
HW_ENV=(PYTHONPATH=/opt/headwater/app:/opt/headwater/lib PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp)
RT_ENV=(PYTHONPATH=/opt/headwater/app PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp)   # stdlib only
PATHV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
archive() { # IMAGE OUT-NAME mkimage-args...
  local image=$1; shift
  python3 "$MKIMAGE" "localhost/$image:$TAG" "$C/archives/$image-$TAG.tar" "$@" --user "$ID:$ID" > /dev/null
  ARCHIVES+=("$C/archives/$image-$TAG.tar")
}
ARCHIVES=()
make_deps; make_app
NOPKG=(-apt -debconf -perl-base)
make_base headwater python3 netbase "${NOPKG[@]}"; HW_BASE=$BASE_LAYER HW_DIR=$BASE_DIR
make_base router nginx-light python3 netbase "${NOPKG[@]}"; RT_BASE=$BASE_LAYER RT_DIR=$BASE_DIR
make_base memcached memcached -perl -perl-modules-5.36 -libperl5.36 "${NOPKG[@]}"; MC_BASE=$BASE_LAYER MC_DIR=$BASE_DIR
make_base cassandra openjdk-17-jre-headless "${NOPKG[@]}"; CS_BASE=$BASE_LAYER CS_DIR=$BASE_DIR
make_cassandra

in_image headwater "
  run $PATHV ${HW_ENV[*]} python3 -m services.cli serve --help | sed -n 1,3p
  run $PATHV ${HW_ENV[*]} python3 -c 'import services.node, cassandra.cluster, pymemcache, uhashring, uvloop, httptools; print(\"imports ok\")'
  run $PATHV ${HW_ENV[*]} python3 -m services.cli serve --store embedded --data-dir /tmp/d --host 127.0.0.1 \
    --port 8080 & for i in \$(seq 100); do curl -fsS http://127.0.0.1:8080/healthz && break; sleep 0.1; done
  curl -fsS http://127.0.0.1:8080/healthz; echo \" healthz answered after \$i tries\"
  ! find \$R -name __pycache__ | grep -q ." "$APP_DIR" "$DEPS_DIR" "$HW_DIR"
# nginx as 10001 on a read-only root: every path it writes must be under /tmp. The error log opened
# before the config is parsed is compiled in as stderr on bookworm's 1.22 (nginx -V), -e makes it explicit.
in_image router "
  run $PATHV nginx -V 2>&1 | tr ' ' '\n' | grep -E 'path='
  printf '%s\n' 'pid /tmp/nginx.pid; error_log stderr; events {}' \
    'http { access_log off; client_body_temp_path /tmp/body; proxy_temp_path /tmp/proxy;' \
    '  fastcgi_temp_path /tmp/fastcgi; uwsgi_temp_path /tmp/uwsgi; scgi_temp_path /tmp/scgi;' \
    '  server { listen 127.0.0.1:8080; location / { return 200 ok; } } }' > \$R/tmp/nginx.conf
  run $PATHV nginx -e stderr -c /tmp/nginx.conf -g 'daemon off;' &
  for _ in \$(seq 50); do port_in_use 8080 && break; sleep 0.1; done
  [ \"\$(exec 3<>/dev/tcp/127.0.0.1/8080; printf 'GET / HTTP/1.0\r\n\r\n' >&3; cat <&3 | tail -n1)\" = ok ]
  run $PATHV ${RT_ENV[*]} python3 -m services.router --help | sed -n 1,2p" "$APP_DIR" "$RT_DIR"
in_image memcached "
  run $PATHV memcached -p 11211 -m 64 -c 4096 -U 0 -l 127.0.0.1 &
  for _ in \$(seq 50); do port_in_use 11211 && break; sleep 0.1; done
  [[ \"\$(exec 3<>/dev/tcp/127.0.0.1/11211; printf 'version\r\n' >&3; head -n1 <&3)\" == VERSION* ]]" "$MC_DIR"
# Cassandra with a scratch data volume bound at /var/lib/cassandra (owned by 10001, as an emptyDir is
# writable by the pod), on the loopback of the test's own network namespace (so 9042 cannot clash with a
# Cassandra of this machine). It is stopped by the end of the test's pid namespace (SIGKILL).
vol=$C/cassandra-test-volume; rm -rf "$vol"; mkdir -p "$vol"; chown "$ID:$ID" "$vol"
in_image cassandra "
  mount --bind $vol \$R/var/lib/cassandra
  run $PATHV CASSANDRA_LISTEN_ADDRESS=127.0.0.1 /opt/cassandra/bin/run & pid=\$!
  for i in \$(seq 180); do cql_ready 9042 && break; kill -0 \$pid; sleep 1; done
  cql_ready 9042; echo \"CQL answered after \$i s\"" "$CASS_DIR" "$CS_DIR"
rm -rf "$vol"

log "image archives"
envargs=(); for e in "${HW_ENV[@]}"; do envargs+=(--env "$e"); done
rtenv=(); for e in "${RT_ENV[@]}"; do rtenv+=(--env "$e"); done
archive headwater "$HW_BASE" "$DEPS_LAYER" "$APP_LAYER" "${envargs[@]}" \
  --entrypoint '["python3", "-m", "services.cli"]'
archive headwater-router "$RT_BASE" "$APP_LAYER" "${rtenv[@]}" --entrypoint '["python3", "-m", "services.router"]'
archive headwater-memcached "$MC_BASE" --entrypoint '["memcached"]' --cmd '["-p", "11211", "-m", "64", "-c", "4096", "-U", "0"]'
archive headwater-cassandra "$CS_BASE" "$CASS_LAYER" --env HOME=/tmp --entrypoint '["/opt/cassandra/bin/run"]'

# Keep the cache bounded: drop the layers and roots this build did not use, and archives of other tags
# once they are an hour old (another user of this cache, e.g. a test run, may be about to import them).
used=" ${ARCHIVES[*]} $HW_BASE $RT_BASE $MC_BASE $CS_BASE $DEPS_LAYER $APP_LAYER $CASS_LAYER $HW_DIR $RT_DIR $MC_DIR $CS_DIR $DEPS_DIR $APP_DIR $CASS_DIR "
for f in "$C"/layers/*.tar.gz "$C"/roots/base-* "$C"/roots/deps-* "$C"/roots/app-* "$C"/roots/cassandra-*; do
  [ -e "$f" ] && [[ $used != *" $f "* ]] && rm -rf "$f"
done
for f in "$C"/layers/*.diffid; do [ -e "${f%.diffid}" ] || rm -f "$f"; done   # mkimage.py's digest memo
find "$C/archives" -name '*.tar' -mmin +60 -print0 | while IFS= read -r -d '' f; do
  [[ $used == *" $f "* ]] || rm -f "$f"; done
echo "$TAG" > "$C/TAG"
printf '%s\n' "${ARCHIVES[@]}" > "$C/ARCHIVES"

log "done; sizes (uncompressed = unpacked layers, compressed = archive):"
size_of() { du -sb "$@" 2>/dev/null | awk '{s+=$1} END {printf "%.0f MB", s/1e6}'; }
printf '  %-70s %10s %10s\n' archive uncompressed compressed
printf '  %-70s %10s %10s\n' "${ARCHIVES[0]}" "$(size_of "$HW_DIR" "$DEPS_DIR" "$APP_DIR")" "$(size_of "${ARCHIVES[0]}")"
printf '  %-70s %10s %10s\n' "${ARCHIVES[1]}" "$(size_of "$RT_DIR" "$APP_DIR")" "$(size_of "${ARCHIVES[1]}")"
printf '  %-70s %10s %10s\n' "${ARCHIVES[2]}" "$(size_of "$MC_DIR")" "$(size_of "${ARCHIVES[2]}")"
printf '  %-70s %10s %10s\n' "${ARCHIVES[3]}" "$(size_of "$CS_DIR" "$CASS_DIR")" "$(size_of "${ARCHIVES[3]}")"
echo "tag: $TAG"
