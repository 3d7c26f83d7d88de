#!/usr/bin/env bash
# `make test` after set-up, lint and type-check: every test, in two pytest runs.
#
# The Kubernetes tests (`-m k8s`: the chart checked offline with helm, and deployed on the project's
# single-node Kubernetes) need the Kubernetes binaries (scripts/k8s/build.sh: ~15 min cold on 2 cores,
# a no-op once built into ~/.cache/headwater-k8s) and the images (scripts/images/build.sh: ~2 min cold,
# seconds when cached). Both are prepared in the background at the lowest CPU priority while the other
# tests run, so a fresh machine pays the cold build once and mostly in parallel; then the k8s tests run.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY=${PY:-python3}
mkdir -p .cache
prepare_log=.cache/k8s-prepare.log
(nice -n 19 bash scripts/k8s/build.sh && nice -n 19 bash scripts/images/build.sh) > "$prepare_log" 2>&1 &
prepare=$!
"$PY" -m pytest -q -m "not k8s"
rest=$?
wait "$prepare"
prepared=$?
if ((prepared != 0)); then
  tail -n 40 "$prepare_log" >&2
  echo "test.sh: preparing Kubernetes and the images failed (full log: $prepare_log)" >&2
  exit 1
fi
"$PY" -m pytest -q -m k8s
k8s=$?
((rest == 0 && k8s == 0))
