#!/bin/bash
# `make k8s-down`: undoes scripts/k8s/up.sh. Stops the router's port-forward, uninstalls the release (when
# the API server answers), stops the cluster (stop.sh, which runs cleanup.sh), then checks that nothing is
# left on the host: no process running from the cluster home, no hwk8s0 bridge, no kube-proxy nft table,
# no mount under the cluster home. Safe to re-run.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
k() { "$B/kubectl" --kubeconfig="$KC" --request-timeout=5s "$@"; }

if [ -f "$K/pids/port-forward.pid" ]; then
  kill "$(cat "$K/pids/port-forward.pid")" 2>/dev/null; rm -f "$K/pids/port-forward.pid"
fi
if [ -x "$B/helm" ] && k get --raw /readyz >/dev/null 2>&1 && k get namespace headwater >/dev/null 2>&1; then
  # no --wait: stop.sh deletes whatever pods are left with a 1 s grace period right after
  "$B/helm" --kubeconfig "$KC" uninstall headwater --namespace headwater --timeout 60s \
    || echo "down.sh: helm uninstall failed; stopping the cluster anyway" >&2
fi
"$HERE/stop.sh"

left=0
if pgrep -f -- "$K/" >/dev/null; then echo "down.sh: still running from $K:" >&2; pgrep -af -- "$K/" >&2; left=1; fi
ip link show hwk8s0 >/dev/null 2>&1 && { echo "down.sh: bridge hwk8s0 still exists" >&2; left=1; }
nft list table ip kube-proxy >/dev/null 2>&1 && { echo "down.sh: nft table ip kube-proxy still exists" >&2; left=1; }
if awk -v k="$K" 'index($2, k) == 1 {found=1} END {exit !found}' /proc/mounts; then
  echo "down.sh: mounts left under $K:" >&2; awk -v k="$K" 'index($2, k) == 1 {print "  " $2}' /proc/mounts >&2; left=1
fi
[ "$left" = 0 ] && echo "host clean: no processes, bridge, nft table or mounts left from $K"
exit "$left"
