#!/bin/bash
# `make k8s`: Headwater on a local single-node Kubernetes. Builds the cluster's binaries (once; seconds when
# built) and the images (cached layers; seconds for a new commit), starts the cluster with the images
# imported, installs the chart (deploy/k8s/headwater, release headwater, namespace headwater), waits for
# every Deployment and StatefulSet, and port-forwards the router to http://127.0.0.1:$PORT (default 8080).
# Stop everything with scripts/k8s/down.sh (`make k8s-down`).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/common.sh"
PORT=${PORT:-8080}
NS=headwater
IMAGES_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/headwater-images
k() { "$B/kubectl" --kubeconfig="$KC" "$@"; }
t0=$SECONDS
log() { echo "[$((SECONDS - t0))s] $*"; }

"$HERE/build.sh"
"$ROOT/scripts/images/build.sh"
TAG=$(cat "$IMAGES_CACHE/TAG")
if k --request-timeout=5s get --raw /readyz >/dev/null 2>&1; then
  # already running (start.sh would start a second set of components): import the images only
  log "kubernetes is running; importing the images of $TAG"
  while read -r a; do ctr -a "$K/run/containerd.sock" -n k8s.io images import "$a" >/dev/null; done < "$IMAGES_CACHE/ARCHIVES"
else
  # FRESH=1 (default): empty etcd. stop.sh deletes every workload on the way down, so a release kept in
  # etcd would come back as a record without its Deployments and StatefulSets (and its pre-upgrade
  # schema hook would find no Cassandra). FRESH=0 keeps what etcd holds.
  log "starting kubernetes with the images of $TAG"
  IMAGES=$(tr '\n' ' ' < "$IMAGES_CACHE/ARCHIVES") FRESH=${FRESH:-1} "$HERE/start.sh"
fi

[ -f "$ROOT/deploy/k8s/headwater/Chart.yaml" ] || { echo "up.sh: no chart at deploy/k8s/headwater" >&2; exit 1; }
# No --wait: the schema Job is a post-install hook (helm waits for hooks anyway), and the nodes wait for
# the schema themselves; the rollouts are awaited below instead.
log "helm upgrade --install headwater (image.tag=$TAG)"
"$B/helm" --kubeconfig "$KC" upgrade --install headwater "$ROOT/deploy/k8s/headwater" --namespace "$NS" \
  --create-namespace --set image.tag="$TAG" --timeout 600s
deadline=$((SECONDS + 300))
for w in $(k -n "$NS" get deployment,statefulset -o name); do
  left=$((deadline - SECONDS)); [ "$left" -gt 0 ] || left=1
  k -n "$NS" rollout status "$w" --timeout="${left}s" \
    || { k -n "$NS" get pods -o wide >&2; echo "up.sh: $w not rolled out within 300 s" >&2; exit 1; }
done

# The router's port-forward: one per cluster home, pid and log next to the components'.
pf_pid=$K/pids/port-forward.pid pf_log=$L/port-forward.log
if [ -f "$pf_pid" ]; then kill "$(cat "$pf_pid")" 2>/dev/null || true; rm -f "$pf_pid"; sleep 0.5; fi
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "up.sh: 127.0.0.1:$PORT is taken by another program; run again with PORT=<free port>" >&2; exit 1
fi
nohup "$B/kubectl" --kubeconfig="$KC" -n "$NS" port-forward svc/headwater-router "$PORT:8080" \
  --address 127.0.0.1 > "$pf_log" 2>&1 &
echo $! > "$pf_pid"
for i in $(seq 60); do
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null && break
  [ "$i" = 60 ] && { echo "up.sh: http://127.0.0.1:$PORT/healthz does not answer; see $pf_log" >&2; exit 1; }
  sleep 1
done
log "headwater $TAG is up"
cat <<EOF

  ingest      http://127.0.0.1:$PORT/ingest/<channel>/Streams(<track>.cmfv)   (POST/PUT, as in README.md)
  HLS (CMAF)  http://127.0.0.1:$PORT/live/<channel>/hls/index.m3u8
  HLS (TS)    http://127.0.0.1:$PORT/live/<channel>/hls-ts/index.m3u8
  DASH        http://127.0.0.1:$PORT/live/<channel>/dash/manifest.mpd
  channel     http://127.0.0.1:$PORT/api/channels/<channel>
  health      http://127.0.0.1:$PORT/healthz  /readyz  /metrics

  export KUBECONFIG=$KC
  $B/kubectl -n $NS get pods            # also: logs, describe, exec
  $B/helm -n $NS status headwater
  port-forward: pid $(cat "$pf_pid"), log $pf_log
  stop everything: make k8s-down (scripts/k8s/down.sh)
EOF
