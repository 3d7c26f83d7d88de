#!/bin/bash
# rootfs-image.sh NAME:TAG OUT.tar [DEBIAN_PACKAGE...] [-- COMMAND...]
# A quick one-off image (Headwater's own images are made by scripts/images/build.sh, with cached layers).
# A Debian (bookworm, minbase) root filesystem with the given packages, as a one-layer image archive for
# `ctr -n k8s.io images import`. The Debian mirror is the one this machine's apt uses. The commands after
# `--` run inside the rootfs (chroot) before it is packed, e.g. a pip install of a wheel copied into it.
set -euo pipefail
. "$(dirname "$0")/common.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
name=$1 out=$2; shift 2
pkgs=(); while [ $# -gt 0 ] && [ "$1" != "--" ]; do pkgs+=("$1"); shift; done; [ $# -gt 0 ] && shift
# the URIs of the deb822 stanza whose Suites include plain "bookworm" (active .sources files only)
mirror=$(awk '/^URIs:/{u=$2} /^Suites:/{for(i=2;i<=NF;i++) if($i=="bookworm"){print u; exit}}' \
  /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
[ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $3=="bookworm"{print $2; exit}' /etc/apt/sources.list)
root=$(mktemp -d "$K/rootfs.XXXX")
include=$(IFS=,; echo "${pkgs[*]:-}")
debootstrap --variant=minbase ${include:+--include="$include"} bookworm "$root" "$mirror" > "$K/logs/debootstrap.log"
if [ $# -gt 0 ]; then
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  chroot "$root" /bin/sh -c "$*"
fi
tar -C "$root" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
  --exclude='./var/cache/apt/archives/*.deb' --exclude='./var/lib/apt/lists/*' -cf "$root.tar" .
python3 "$HERE/mkimage.py" "$name" "$out" "$root.tar"
rm -rf "$root" "$root.tar"
