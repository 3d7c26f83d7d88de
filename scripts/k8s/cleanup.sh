#!/bin/bash
# Undoes what a running cluster leaves on the host: kubelet/kube-proxy chains and tables, the CNI bridge,
# pod network namespaces, kubelet mounts and directories. Run after stop.sh (it does). Safe to re-run.
. "$(dirname "$0")/common.sh"
# A cluster stopped without stop.sh (killed, or stop.sh interrupted) leaves its containerd shims running
# the containers. Without containerd to ask, SIGKILL each container's init (its pid namespace dies with
# it), then the shim; matched by this cluster's own containerd socket, so no other containerd is touched.
if ! ctr -a "$K/run/containerd.sock" version >/dev/null 2>&1; then
  shims=$(pgrep -f -- "containerd-shim-runc-v2 .*-address $K/run/containerd.sock")
  for s in $shims; do pkill -9 -P "$s"; kill -9 "$s"; done 2>/dev/null
  [ -z "$shims" ] || sleep 1   # let the kernel tear the namespaces down before the cgroups and mounts go
fi
for t in iptables ip6tables; do
  $t -D INPUT -j KUBE-FIREWALL 2>/dev/null; $t -D OUTPUT -j KUBE-FIREWALL 2>/dev/null
  $t -F KUBE-FIREWALL 2>/dev/null; $t -X KUBE-FIREWALL 2>/dev/null
  for tb in filter nat mangle; do $t -t $tb -X KUBE-KUBELET-CANARY 2>/dev/null; $t -t $tb -X KUBE-IPTABLES-HINT 2>/dev/null; done
done
nft delete table ip kube-proxy 2>/dev/null; nft delete table ip6 kube-proxy 2>/dev/null
ip link del hwk8s0 2>/dev/null
for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/k8s.io; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
for n in /run/netns/cni-*; do [ -e "$n" ] && { umount "$n" 2>/dev/null; rm -f "$n"; }; done
while mountpoint -q "$K/kubelet-root" 2>/dev/null; do umount "$K/kubelet-root" || break; done
# every mount under the cluster home: kubelet volumes, and the containers' root filesystems and shm
for m in $(awk -v k="$K/" 'index($2, k) == 1 {print $2}' /proc/mounts | sort -r); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
rm -rf /var/lib/kubelet /var/lib/cni /run/containerd /var/log/pods /var/log/containers "$K/cni/ipam"/*
true
