#!/bin/bash
# Stops what start.sh started, by pid: workloads first (so the kubelet tears sandboxes down), then the
# components, then containerd. Safe to re-run. (scripts/k8s/down.sh also uninstalls the release first.)
. "$(dirname "$0")/common.sh"
stop() { local f=$K/pids/$1.pid p; [ -f "$f" ] || return 0; p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then kill "$p"; for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$p" 2>/dev/null; fi; rm -f "$f"; }
k() { "$B/kubectl" --kubeconfig="$KC" --request-timeout=5s "$@"; }
stop port-forward   # scripts/k8s/up.sh's port-forward to the router, if any
if k get ns >/dev/null 2>&1; then
  for ns in $(k get ns -o name | cut -d/ -f2); do
    k -n "$ns" delete deploy,sts,ds,rs,job --all --cascade=orphan --wait=false >/dev/null 2>&1
    k -n "$ns" delete pod --all --grace-period=1 --wait=false >/dev/null 2>&1
  done
  for _ in $(seq 60); do ctr -a "$K/run/containerd.sock" -n k8s.io tasks ls 2>/dev/null | grep -q RUNNING || break; sleep 1; done
fi
stop kube-proxy; "$B/kube-proxy" --cleanup >/dev/null 2>&1; nft delete table ip kube-proxy 2>/dev/null; nft delete table ip6 kube-proxy 2>/dev/null
for n in kubelet kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$n"; done
C="ctr -a $K/run/containerd.sock -n k8s.io"
for t in $($C tasks ls -q 2>/dev/null); do $C tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
stop containerd
"$(dirname "$0")/cleanup.sh"
echo "kubernetes stopped"
