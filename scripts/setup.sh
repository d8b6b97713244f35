#!/usr/bin/env bash
# Installs and starts everything the CPI's main job and tests need on a fresh Debian machine (as root):
# Debian packages, a running Docker Engine, and the Node packages. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(docker.io runc systemd debootstrap busybox-static e2fsprogs util-linux iproute2 ruby qemu-system-x86 qemu-utils genisoimage procps
  linux-image-amd64 syslinux syslinux-common mtools openssl)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

docker_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
if ! docker_up; then
  echo "setup: starting dockerd (log: /var/log/dockerd.log)"
  setsid nohup dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do docker_up && break; sleep 1; done
  docker_up || { echo "setup: dockerd did not start; see /var/log/dockerd.log" >&2; tail -20 /var/log/dockerd.log >&2; exit 1; }
fi
echo "setup: Docker $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm ci installs exactly the lock file; it lists every platform's optional biome and bun binaries.
  npm ci --no-audit --no-fund --loglevel=error
fi
