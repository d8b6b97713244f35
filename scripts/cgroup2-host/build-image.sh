#!/usr/bin/env bash
# The disk image of the cgroup v2 Docker host the `test:cgroup2` tier boots under QEMU: Debian bookworm
# (systemd, so cgroup v2 with nsdelegate, as on any Debian 12 host) with docker.io and apparmor (Debian's
# docker.io recommends it; the engine then confines containers), booted with this machine's Debian kernel
# (linux-image-amd64: /boot/vmlinuz-*, its initrd, and its modules copied into the image).
#
# Usage: build-image.sh [OUT_DIR]   (default /var/tmp/bosh-cpi-cgroup2-host; needs root, debootstrap, qemu-img)
# Writes OUT_DIR/{disk.qcow2,vmlinuz,initrd.img,VERSION}; an existing image with the same VERSION is kept,
# so reruns take no time. The debootstrapped file system is cached apart (debootstrap.raw, sparse), so a
# change below its stage rebuilds in seconds. The guest reads its address and TLS material at boot (see cpi-host-setup below).
set -euo pipefail
OUT=${1:-/var/tmp/bosh-cpi-cgroup2-host}
KVER=${KVER:-$(ls /lib/modules | sort -V | tail -1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PKGS=systemd,systemd-sysv,udev,dbus,kmod,iproute2,iptables,docker.io,runc,containerd,apparmor,e2fsprogs,util-linux,mount,procps,ca-certificates,busybox
VERSION="bookworm kernel=$KVER packages=$PKGS script=$(sha256sum "$0" | cut -c1-16)"
if [ -f "$OUT/disk.qcow2" ] && [ "$(cat "$OUT/VERSION" 2>/dev/null)" = "$VERSION" ]; then
  echo "cgroup2 host image up to date: $OUT/disk.qcow2"; exit 0
fi
for f in "/boot/vmlinuz-$KVER" "/boot/initrd.img-$KVER" "/lib/modules/$KVER"; do
  [ -e "$f" ] || { echo "missing $f (apt-get install linux-image-amd64)" >&2; exit 1; }
done
mkdir -p "$OUT"
WORK=$(mktemp -d "$OUT/build.XXXXXX")
MNT=$WORK/mnt
cleanup() {
  for m in "$MNT/proc" "$MNT/sys" "$MNT/dev" "$MNT"; do mountpoint -q "$m" && umount -l "$m"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$MNT"
# Stage 1, cached on its own (the slow part): the debootstrapped file system with the kernel's modules.
BASE_KEY="bookworm kernel=$KVER packages=$PKGS mirror=$MIRROR"
if [ "$(cat "$OUT/debootstrap.key" 2>/dev/null)" != "$BASE_KEY" ]; then
  rm -f "$OUT/debootstrap.raw" "$OUT/debootstrap.key"
  truncate -s 8G "$WORK/base.raw"
  mkfs.ext4 -q -L cpihostroot "$WORK/base.raw"
  mount -o loop "$WORK/base.raw" "$MNT"
  debootstrap --variant=minbase --include="$PKGS" bookworm "$MNT" "$MIRROR"
  mkdir -p "$MNT/lib/modules" && cp -a "/lib/modules/$KVER" "$MNT/lib/modules/"
  chroot "$MNT" depmod "$KVER"
  chroot "$MNT" apt-get clean
  umount "$MNT"
  mv "$WORK/base.raw" "$OUT/debootstrap.raw"
  echo "$BASE_KEY" > "$OUT/debootstrap.key"
fi
# Stage 2: this host's configuration, on a copy.
cp --sparse=always "$OUT/debootstrap.raw" "$WORK/disk.raw"
mount -o loop "$WORK/disk.raw" "$MNT"

echo cgroup2-host > "$MNT/etc/hostname"
printf '127.0.0.1 localhost cgroup2-host\n' > "$MNT/etc/hosts"
printf 'LABEL=cpihostroot / ext4 defaults 0 1\n' > "$MNT/etc/fstab"
chroot "$MNT" passwd -d root >/dev/null   # serial console login for debugging; no network login exists

# Address, gateway and TLS material come from the kernel command line and a CD labelled CPIHOST.
cat > "$MNT/usr/local/sbin/cpi-host-setup" <<'SH'
#!/bin/sh
set -eu
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p"; }
for _ in $(seq 100); do [ -e /sys/class/net/eth0 ] && [ -e /dev/sr0 ] && break; sleep 0.2; done
ip link set lo up
ip link set eth0 up
ip addr add "$(arg cpihost.ip)" dev eth0
ip route add default via "$(arg cpihost.gw)"
mkdir -p /mnt/cpihost /etc/docker/tls
mount -o ro LABEL=CPIHOST /mnt/cpihost
cp /mnt/cpihost/ca.pem /mnt/cpihost/server.pem /mnt/cpihost/server-key.pem /etc/docker/tls/
chmod 0600 /etc/docker/tls/server-key.pem
umount /mnt/cpihost
SH
chmod 0755 "$MNT/usr/local/sbin/cpi-host-setup"
cat > "$MNT/etc/systemd/system/cpi-host-setup.service" <<'UNIT'
[Unit]
Description=Address and TLS material of the test Docker host
DefaultDependencies=no
After=local-fs.target systemd-udev-settle.service
Wants=systemd-udev-settle.service
Before=docker.service network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/cpi-host-setup

[Install]
WantedBy=multi-user.target
UNIT
mkdir -p "$MNT/etc/systemd/system/docker.service.d"
cat > "$MNT/etc/systemd/system/docker.service.d/tls.conf" <<'UNIT'
[Unit]
Requires=cpi-host-setup.service
After=cpi-host-setup.service

[Service]
ExecStart=
ExecStart=/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock -H unix:///run/docker.sock -H tcp://0.0.0.0:2376 --tlsverify --tlscacert=/etc/docker/tls/ca.pem --tlscert=/etc/docker/tls/server.pem --tlskey=/etc/docker/tls/server-key.pem
# Containers are reachable from the test machine at their own addresses (it routes the VMs' subnets
# via this host), as BOSH expects of a network; the engine's FORWARD rules alone allow published ports only.
ExecStartPost=/bin/sh -c 'for i in $(seq 50); do iptables -L DOCKER-USER -n >/dev/null 2>&1 && exec iptables -I DOCKER-USER -i eth0 -j ACCEPT; sleep 0.2; done; exit 1'
UNIT
chroot "$MNT" systemctl enable cpi-host-setup.service docker.service containerd.service >/dev/null 2>&1
# Nothing else to start on a test host: no timers, no getty on tty1 (the serial console has one).
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer getty@tty1.service; do
  ln -sf /dev/null "$MNT/etc/systemd/system/$u"
done
rm -rf "$MNT"/var/lib/apt/lists/*
umount "$MNT"
qemu-img convert -O qcow2 "$WORK/disk.raw" "$WORK/disk.qcow2"
cp "/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
cp "/boot/initrd.img-$KVER" "$WORK/initrd.img"
mv "$WORK/disk.qcow2" "$WORK/vmlinuz" "$WORK/initrd.img" "$OUT/"
echo "$VERSION" > "$OUT/VERSION"
echo "cgroup2 host image: $OUT/disk.qcow2"
