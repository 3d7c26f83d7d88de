#!/bin/bash
# Builds a single-node Kubernetes from upstream sources, from the package registries only (Debian, Go module
# proxy): kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl, etcd, helm,
# CoreDNS; plus the pause and CoreDNS images. Idempotent: what exists is kept (a rebuild with a warm
# $GOCACHE is mostly link time). Cold: 11 min on 2 cores, ~9 GB under $K (most of it Go caches).
set -euo pipefail
. "$(dirname "$0")/common.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
export GOFLAGS="-mod=mod -buildvcs=false"
command -v containerd >/dev/null && command -v debootstrap >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends containerd runc \
    containernetworking-plugins debootstrap iptables nftables conntrack socat etcd-client openssl gcc libc6-dev >/dev/null
}
# 1. Kubernetes: the k8s.io/kubernetes module zip lacks staging/, so its replaces point at the published modules
if [ ! -d "$K/src/kubernetes" ]; then
  go mod download "k8s.io/kubernetes@$V"
  cp -r "$GOMODCACHE/k8s.io/kubernetes@$V" "$K/src/kubernetes"; chmod -R u+w "$K/src/kubernetes"
  rm -f "$K/src/kubernetes/go.work" "$K/src/kubernetes/go.work.sum"
  sed -i -E "s#^(\s*)(k8s\.io/[a-z-]+) => \./staging/src/k8s\.io/[a-z-]+#\1\2 => \2 v0${V#v1}#" "$K/src/kubernetes/go.mod"
fi
LD="-s -w"
for p in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  LD="$LD -X $p.gitVersion=$V -X $p.gitMajor=1 -X $p.gitMinor=$(echo "$V" | cut -d. -f2) -X $p.gitTreeState=clean"
done
for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  [ -x "$B/$c" ] || (cd "$K/src/kubernetes" && go build -trimpath -ldflags "$LD" -o "$B/$c" "./cmd/$c" && echo "built $c")
done
# 2. etcd (Debian's 3.4 works but the 1.37 API server wants watch-progress requests): a wrapper module
if [ ! -x "$B/etcd" ]; then
  mkdir -p "$K/src/etcdwrap" && cd "$K/src/etcdwrap"
  printf 'module etcdwrap\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_V" > go.mod
  printf 'package etcdwrap\n\nimport _ "go.etcd.io/etcd/server/v3/etcdmain"\n' > tools.go
  go mod tidy && go build -trimpath -ldflags "-s -w" -o "$B/etcd" go.etcd.io/etcd/server/v3 && echo "built etcd"
fi
# 3. helm and CoreDNS install straight from the proxy
[ -x "$B/helm" ] || GOBIN=$B go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_V" "helm.sh/helm/v3/cmd/helm@$HELM_V"
[ -x "$B/coredns" ] || GOBIN=$B go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_V"
# 4. images without a registry: one-layer archives that `ctr images import` takes
cd "$K/images"
if [ ! -f pause.tar ]; then
  mkdir -p pauseroot && gcc -Os -static -o pauseroot/pause "$K/src/kubernetes/build/pause/linux/pause.c" && strip pauseroot/pause
  tar -C pauseroot --numeric-owner --owner=0 --group=0 --mtime=@0 -cf layer.tar ./pause
  python3 "$HERE/mkimage.py" "registry.k8s.io/pause:$PAUSE_TAG" pause.tar layer.tar --entrypoint '["/pause"]'
fi
if [ ! -f coredns.tar ]; then
  mkdir -p corednsroot && cp "$B/coredns" corednsroot/coredns
  tar -C corednsroot --numeric-owner --owner=0 --group=0 --mtime=@0 -cf layer.tar ./coredns
  python3 "$HERE/mkimage.py" "localhost/coredns:$COREDNS_V" coredns.tar layer.tar --entrypoint '["/coredns"]'
fi
rm -f layer.tar
echo "kubernetes $V built in $B"
