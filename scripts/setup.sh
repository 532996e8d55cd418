#!/usr/bin/env bash
# Installs what migralab needs on a fresh Debian/Ubuntu machine: Debian packages
# (as root, via apt-get) and the npm packages. Safe to run again: it installs only
# what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  qemu-system-x86 qemu-utils qemu-block-extra   # guests, qemu-img, nfs:// block driver
  busybox-static linux-image-amd64              # the guest image is built from these
  nfs-ganesha nfs-ganesha-vfs rpcbind           # user-space NFS server (+ portmapper for NFSv3)
  iputils-ping iproute2 nftables util-linux mount
  dosfstools mtools                             # vfat config drive
  chromium                                      # the HTML report's browser test (headless)
  gcc libc6-dev                                 # the guest's static probe and load programs
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (apt-get and the lab itself need it)" >&2
  exit 3
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: Debian packages already installed"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
else
  echo "setup: npm packages already installed"
fi
