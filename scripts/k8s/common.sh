# Sourced by the other scripts of scripts/k8s (the project's local single-node Kubernetes: up.sh/down.sh are
# `make k8s`/`make k8s-down`). Everything lives under $K (override with HEADWATER_K8S_HOME); the default is
# shared with any other checkout on this machine, so a built cluster is reused.
K=${HEADWATER_K8S_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/headwater-k8s}
B=$K/bin; P=$K/pki; L=$K/logs; KC=$K/admin.kubeconfig
V=v1.37.2                      # Kubernetes; the k8s.io/* staging modules are v0.37.2
ETCD_V=v3.6.17; HELM_V=v3.21.4; COREDNS_V=v1.14.7; PAUSE_TAG=3.10.1
# the node's address: the machine's own first global IPv4 address (the API server advertises it)
NODE_IP=${NODE_IP:-$(ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | head -n1)}
POD_CIDR=10.244.0.0/24; SERVICE_CIDR=10.96.0.0/16; DNS_IP=10.96.0.10
export GOPATH=$K/gopath GOMODCACHE=$K/gopath/pkg/mod GOCACHE=$K/gocache GOWORK=off CGO_ENABLED=0
mkdir -p "$K"/{bin,pki,logs,pids,run,src,images,cni/net.d,cni/ipam,containerd/root,containerd/state,kubelet-root,static-pods,pod-logs}
