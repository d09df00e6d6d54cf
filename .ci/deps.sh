#!/usr/bin/env bash
# Installs the Debian packages nfgate's tests and lab need, when missing.
set -euo pipefail
need=()
for p in iptables nftables ipset conntrack iproute2 iputils-ping hping3 socat tcpdump iperf3 kmod etcd-server \
         groff-base systemd dpkg util-linux curl; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing ${need[*]}; run as root to install (privileged tests will skip, or fail under CI=true)" >&2
    exit 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
