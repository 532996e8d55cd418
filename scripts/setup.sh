#!/usr/bin/env bash
# Installs what migralab needs on a fresh Debian/Ubuntu machine: Debian packages
# (as root, via apt-get) and the npm packages. Safe to run again: it installs only
# what is missing.
#
# QEMU: under TCG every QEMU before 9.0 can lose guest memory writes during a
# migration (upstream 03bfc2188f06). Where the distribution's QEMU is older and
# Debian's backports suite has a newer one (Debian 12: 10.0.2), QEMU comes from
# backports. The suite is enabled at its default low priority, so nothing else is
# upgraded. MIGRALAB_QEMU=distro keeps the distribution's QEMU.
#
# --openstack also installs the OpenStack packages of the `stack: openstack` lab profile
# (Debian 12's own Zed: about 360 packages, about 3 minutes), only when asked: the main
# job does not need them. No service is started by the packages (policy-rc.d): the lab
# starts its own, inside its nodes.
set -euo pipefail
cd "$(dirname "$0")/.."

openstack=0
for a in "$@"; do
  case "$a" in
    --openstack) openstack=1 ;;
    -h|--help) echo "usage: bash scripts/setup.sh [--openstack]"; exit 0 ;;
    *) echo "setup: unknown option $a (expected --openstack)" >&2; exit 2 ;;
  esac
done

qemu_packages=(qemu-system-x86 qemu-utils qemu-block-extra)  # guests, qemu-img, nfs:// block driver
packages=(
  busybox-static linux-image-amd64              # the guest image is built from these
  nfs-ganesha nfs-ganesha-vfs rpcbind           # user-space NFS server (+ portmapper for NFSv3)
  systemd                                       # systemd-socket-activate: rpcbind's TCP bound to the lab address
  iputils-ping iproute2 nftables util-linux mount
  dosfstools mtools                             # vfat config drive
  chromium                                      # the HTML report's browser test (headless)
  gcc libc6-dev                                 # the guest's static probe and load programs
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients  # the libvirt driver (the tutorial's stack)
  openssh-server                                # the ssh provider, tested against the lab's own sshd
  sudo                                          # ... and as a non-root user with password-less sudo there
  zstd                                          # unpacking other QEMU builds (apt-get download + dpkg-deb)
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (apt-get and the lab itself need it)" >&2
  exit 3
fi

export DEBIAN_FRONTEND=noninteractive
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
updated=0
apt_update() { if [ "$updated" -eq 0 ]; then apt-get update -qq; updated=1; fi; }

# Which QEMU: the distribution's, or backports' where the distribution's is older than 9.0.
qemu_suite=""
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
if [ "${MIGRALAB_QEMU:-}" != "distro" ] && [ "$codename" = "bookworm" ]; then
  list=/etc/apt/sources.list.d/migralab-backports.sources
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    uri=$(grep -hm1 -oE 'https?://[^ ]*/debian/?$' /etc/apt/sources.list.d/debian.sources 2>/dev/null \
      || grep -hm1 -oE 'https?://[^ ]*/debian/?' /etc/apt/sources.list 2>/dev/null || echo http://deb.debian.org/debian)
    echo "setup: enabling bookworm-backports (default low priority: nothing else is upgraded) for QEMU >= 9.0;" \
      "Debian 12's QEMU 7.2 loses guest memory writes during migration under TCG (upstream 03bfc2188f06)"
    cat >"$list" <<EOF
# Added by migralab's scripts/setup.sh for QEMU >= 9.0 (see its README). Remove to undo.
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    updated=0
  fi
  qemu_suite=bookworm-backports
fi

need_qemu=0
for p in "${qemu_packages[@]}"; do installed "$p" || need_qemu=1; done
if [ "$need_qemu" -eq 0 ] && [ -n "$qemu_suite" ]; then
  v=$(dpkg-query -W -f='${Version}' qemu-system-x86 | sed -E 's/^[0-9]+://; s/[^0-9.].*//')
  if [ "${v%%.*}" -lt 9 ]; then
    echo "setup: QEMU $v is older than 9.0 (loses guest writes under TCG); upgrading it from bookworm-backports"
    need_qemu=1
  fi
fi
if [ "$need_qemu" -eq 1 ]; then
  apt_update
  # -t only in this one transaction: QEMU and what it needs (seabios, qemu-system-data, ...)
  # come from that suite; nothing else installed is upgraded.
  target=()
  [ -n "$qemu_suite" ] && target=(-t "$qemu_suite")
  echo "setup: installing ${qemu_packages[*]}${qemu_suite:+ from $qemu_suite}"
  apt-get install -y -qq --no-install-recommends "${target[@]}" "${qemu_packages[@]}" >/dev/null
fi

missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt_update
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: Debian packages already installed"
fi
echo "setup: $(qemu-system-x86_64 --version | head -1)"

# The openstack profile's packages: one list, read from lab/stack/openstack/packages.txt
# (which `up` also reads to say what is missing).
if [ "$openstack" -eq 1 ]; then
  mapfile -t os_packages < <(grep -vE '^\s*(#|$)' lab/stack/openstack/packages.txt | awk '{print $1}')
  os_missing=()
  for p in "${os_packages[@]}"; do installed "$p" || os_missing+=("$p"); done
  if [ "${#os_missing[@]}" -gt 0 ]; then
    echo "setup: installing the openstack profile's packages: ${os_missing[*]} (about 3 minutes)"
    apt_update
    # postinst scripts would start MariaDB, RabbitMQ, keystone, ... on the host: keep them
    # from it (exit 101, "action forbidden") unless a policy is already in place. (Under
    # systemd the packages still enable their units for the host's next boot: the lab never
    # uses those; `systemctl disable` them if the host should not run them.)
    err=$(mktemp)
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      own_policy=1
      trap 'rm -f /usr/sbin/policy-rc.d "$err"' EXIT
      printf '#!/bin/sh\n# migralab setup.sh: no service starts during the install\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
    else
      trap 'rm -f "$err"' EXIT
    fi
    t0=$(date +%s)
    # "Failed to connect to bus" and "invoke-rc.d: policy-rc.d denied execution" are expected here
    apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-unsafe-io "${os_missing[@]}" >/dev/null 2>"$err" \
      || { cat "$err" >&2; exit 1; }
    rm -f "$err"
    if [ "$own_policy" -eq 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
    trap - EXIT
    echo "setup: openstack packages installed in $(( $(date +%s) - t0 )) s"
  else
    echo "setup: openstack packages already installed"
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
else
  echo "setup: npm packages already installed"
fi
