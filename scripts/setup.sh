#!/usr/bin/env bash
# Install everything Headwater's development, tests and demo need; idempotent and quick when done.
#
#   scripts/setup.sh            # system packages, Python package (editable, with dev extras), player
#   scripts/setup.sh --check    # also launch headless Chromium once and print its codec support
#
# System packages (Debian 12): ffmpeg chromium memcached nginx-light wrk (+ nodejs npm if node is
# missing): apt runs only when one of their binaries is missing. Python: `pip install -e '.[dev]'` only
# when the imports fail or pyproject.toml changed. Player (tests/e2e/player): `npm ci` only when
# node_modules is missing or package-lock.json changed. Stamps live in .cache/setup/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STAMPS="$ROOT/.cache/setup"
PLAYER="$ROOT/tests/e2e/player"
PYTHON="${PYTHON:-python3}"
CHECK=0
for arg in "$@"; do
  case "$arg" in
    --check) CHECK=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "setup: unknown argument $arg" >&2; exit 2 ;;
  esac
done

say() { printf 'setup: %-8s %s\n' "$1" "$2"; }
fail() { printf 'setup: %-8s FAILED: %s\n' "$1" "$2" >&2; exit 1; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
stamp_matches() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
write_stamp() { mkdir -p "$STAMPS" && printf '%s\n' "$2" > "$STAMPS/$1"; }

# --- system packages -------------------------------------------------------------------------
# binary -> Debian package
declare -A PACKAGE_OF=(
  [ffmpeg]=ffmpeg [chromium]=chromium [memcached]=memcached [nginx]=nginx-light [wrk]=wrk
  [node]=nodejs [npm]=npm
)
missing=()
for binary in ffmpeg chromium memcached nginx wrk node npm; do
  # nginx and memcached live in /usr/sbin, which a non-root PATH may lack.
  command -v "$binary" >/dev/null 2>&1 || [[ -x "/usr/sbin/$binary" ]] || missing+=("${PACKAGE_OF[$binary]}")
done
# The demo's burnt-in clock (services/demo.py CLOCK_FONT); the demo runs without it, only plainer.
[[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ]] || missing+=(fonts-dejavu-core)
if ((${#missing[@]} == 0)); then
  say apt "ok (ffmpeg chromium memcached nginx-light wrk node npm present)"
else
  SUDO=()
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || fail apt "need root or sudo to install: ${missing[*]}"
    SUDO=(sudo)
  fi
  log="$(mktemp)"
  export DEBIAN_FRONTEND=noninteractive
  # nginx-light and memcached would start system-wide daemons (port 80, 11211) on install; the
  # project starts its own on loopback, so forbid service starts for the duration (policy-rc.d 101).
  policy_added=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod +x /usr/sbin/policy-rc.d
    policy_added=1
  fi
  status=0
  { "${SUDO[@]}" apt-get update -q && "${SUDO[@]}" apt-get install -y -q --no-install-recommends \
      "${missing[@]}"; } >"$log" 2>&1 || status=$?
  ((policy_added)) && "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
  if ((status != 0)); then
    tail -n 20 "$log" >&2
    fail apt "apt-get install ${missing[*]} (full log: $log)"
  fi
  rm -f "$log"
  say apt "installed ${missing[*]}"
fi

# --- Python package --------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null 2>&1 || fail python "$PYTHON not found (set PYTHON=...)"
py_version="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || fail python "need Python >= 3.11, have $py_version"
py_hash="$(hash_of "$ROOT/pyproject.toml")-$py_version"
# Imported from / so that the installed package is found, not the work tree next to the caller.
if (cd / && "$PYTHON" -c 'import services, fastapi, hypothesis, av' >/dev/null 2>&1) \
    && stamp_matches python "$py_hash"; then
  say python "ok (Python $py_version, headwater editable with dev extras)"
else
  log="$(mktemp)"
  if ! (cd "$ROOT" && "$PYTHON" -m pip install -q -e '.[dev]') >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    fail python "pip install -e '.[dev]' (full log: $log)"
  fi
  rm -f "$log"
  (cd / && "$PYTHON" -c 'import services, fastapi, hypothesis, av') \
    || fail python "installed, but 'import services, fastapi, hypothesis, av' still fails"
  write_stamp python "$py_hash"
  say python "installed headwater[dev] into Python $py_version"
fi

# --- player (hls.js, dash.js, playwright-core) -----------------------------------------------
[[ -f "$PLAYER/package-lock.json" ]] || fail player "$PLAYER/package-lock.json is missing"
npm_hash="$(hash_of "$PLAYER/package.json" "$PLAYER/package-lock.json")-$(node --version)"
if [[ -d "$PLAYER/node_modules/playwright-core" ]] && stamp_matches player "$npm_hash"; then
  say player "ok (tests/e2e/player/node_modules matches package-lock.json)"
else
  log="$(mktemp)"
  # playwright-core never downloads a browser; the variable guards against a future dependency that would.
  if ! (cd "$PLAYER" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund) >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    fail player "npm ci in tests/e2e/player (full log: $log)"
  fi
  rm -f "$log"
  write_stamp player "$npm_hash"
  say player "installed $(cd "$PLAYER" && node -p 'Object.entries(require("./package.json").dependencies).map(([n, v]) => n + "@" + v).join(" ")')"
fi

# --- optional browser check -------------------------------------------------------------------
if ((CHECK)); then
  probe="$(cd "$PLAYER" && timeout 60 node play.mjs --probe)" || fail chromium "headless Chromium did not start (node play.mjs --probe)"
  say chromium "$probe"
fi
