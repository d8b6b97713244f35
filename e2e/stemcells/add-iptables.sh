#!/usr/bin/env bash
# A copy of a container (warden/docker) stemcell with Debian's iptables added, as real BOSH stemcells
# ship it. The real bosh-agent needs it when its mbus is nats:// on a cgroup v1 host: it then sets up
# its NATS firewall (mangle POSTROUTING rules with `-m cgroup`, see e2e/README.md). Builds nothing from
# source; works on the runit stemcell and on the systemd one (build-systemd-stemcell.sh) alike.
#
# Usage: add-iptables.sh IN_TGZ OUT_TGZ
#   IN_TGZ   a stemcell tarball whose `image` is a Debian rootfs tarball (stemcell.MF, image, …)
#   OUT_TGZ  the stemcell tarball to write (same name and version; stemcell.MF's sha1 updated)
#   WORK_DIR scratch (default /var/tmp/bosh-cpi-e2e/iptables-stemcell), removed when done
# Needs root and the Debian mirror named in the image's /etc/apt/sources.list.
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
IN=$(readlink -f "$1")
OUT=$2
WORK_DIR=${WORK_DIR:-/var/tmp/bosh-cpi-e2e/iptables-stemcell}
[ -f "$IN" ] || { echo "no stemcell tarball: $IN" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
OUT=$(readlink -f "$(dirname "$OUT")")/$(basename "$OUT")

rm -rf "$WORK_DIR"; mkdir -p "$WORK_DIR/stemcell" "$WORK_DIR/rootfs"
R=$WORK_DIR/rootfs
tar -xzf "$IN" -C "$WORK_DIR/stemcell"
[ -f "$WORK_DIR/stemcell/image" ] && [ -f "$WORK_DIR/stemcell/stemcell.MF" ] || { echo "$IN has no image/stemcell.MF" >&2; exit 1; }
tar --numeric-owner -xzf "$WORK_DIR/stemcell/image" -C "$R"
[ -x "$R/usr/bin/apt-get" ] || { echo "the image of $IN has no apt-get" >&2; exit 1; }

echo "== apt-get install iptables (chroot)"
# The image's resolv.conf (a file or a link the agent made) is put back as it was.
RESOLV_SAVE=$WORK_DIR/resolv.conf.saved
if [ -e "$R/etc/resolv.conf" ] || [ -L "$R/etc/resolv.conf" ]; then mv "$R/etc/resolv.conf" "$RESOLV_SAVE"; fi
cp /etc/resolv.conf "$R/etc/resolv.conf"
mount -t proc proc "$R/proc"
trap 'umount "$R/proc" 2>/dev/null || true' EXIT
chroot "$R" /bin/sh -ec '
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends iptables >/dev/null
  apt-get clean
  rm -rf /var/lib/apt/lists/*
  iptables --version'
umount "$R/proc"; trap - EXIT
rm -f "$R/etc/resolv.conf"
if [ -e "$RESOLV_SAVE" ] || [ -L "$RESOLV_SAVE" ]; then mv "$RESOLV_SAVE" "$R/etc/resolv.conf"; fi

echo "== packing"
(cd "$R" && tar --numeric-owner -czf "$WORK_DIR/stemcell/image" .)
SHA1=$(sha1sum "$WORK_DIR/stemcell/image" | cut -d' ' -f1)
sed -i "s/^sha1: .*/sha1: $SHA1/" "$WORK_DIR/stemcell/stemcell.MF"
grep -q "^sha1: $SHA1\$" "$WORK_DIR/stemcell/stemcell.MF" || echo "sha1: $SHA1" >> "$WORK_DIR/stemcell/stemcell.MF"
printf 'iptables %s\n' "$(chroot "$R" dpkg-query -W -f '${Version}' iptables)" >> "$WORK_DIR/stemcell/packages.txt"
(cd "$WORK_DIR/stemcell" && tar -czf "$OUT" -- *)
rm -rf "$WORK_DIR"
ls -la "$OUT"
echo "stemcell: $OUT"
