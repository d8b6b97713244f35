#!/usr/bin/env bash
# The systemd variant of the container (warden/docker) stemcell: systemd is PID 1 and runs the real
# bosh-agent as a service. Builds nothing from source: the agent and monit-csrf-proxy binaries are inputs.
#
# Usage: build-systemd-stemcell.sh ROOTFS AGENT_BIN OUT_TGZ
#   ROOTFS     Debian bookworm minbase rootfs with the agent's packages (monit, resolvconf, iproute2, …), as
#              ../shared/real-agent/stemcell/make-rootfs.sh makes it; never modified
#   AGENT_BIN  bosh-agent (linux/amd64, static)
#   OUT_TGZ    stemcell tarball to write
#   MONIT_PROXY_BIN  monit-csrf-proxy (default: next to AGENT_BIN)
#   WORK_DIR         scratch and cache (default /var/tmp/bosh-cpi-e2e/systemd-stemcell); the rootfs with
#                    systemd added is cached there (apt-get from the rootfs's own Debian mirror, once)
# Needs root and the Debian mirror the rootfs was made from (first build only).
#
# What differs from the runit stemcell:
#  - systemd + systemd-sysv + systemd-resolved (no recommends); agent.json has "ServiceManager": "systemd":
#    the agent then starts monit with `systemctl start monit` and, on preconfigured networks, writes
#    /etc/systemd/resolved.conf.d/10-bosh.conf and restarts systemd-resolved (so resolved must exist).
#    /etc/resolv.conf stays a regular file (the engine bind-mounts it; the CPI replaces the mount by a copy).
#  - units: bosh-agent.service (enabled; log in /var/vcap/bosh/log/current as with runit's svlogd),
#    monit.service (started by the agent), monit-proxy.service (enabled); journald provides /dev/log for
#    the agent's audit logger (the runit stemcell runs busybox syslogd for that).
#  - masked: gettys (a container has no consoles), apt/e2scrub/fstrim timers, udev and hardware units.
#  - stemcell.MF cloud_properties `init: systemd`: the CPI boots systemd for it without
#    `start_containers_with_systemd`.
set -euo pipefail
[ $# -eq 3 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
ROOTFS=$(readlink -f "$1")
AGENT_BIN=$(readlink -f "$2")
OUT=$3
MONIT_PROXY_BIN=${MONIT_PROXY_BIN:-$(dirname "$AGENT_BIN")/monit-csrf-proxy}
WORK_DIR=${WORK_DIR:-/var/tmp/bosh-cpi-e2e/systemd-stemcell}
STEMCELL_NAME=${STEMCELL_NAME:-bosh-docker-debian-bookworm-systemd-go_agent}
STEMCELL_VERSION=${STEMCELL_VERSION:-0.1}
for f in "$AGENT_BIN" "$MONIT_PROXY_BIN"; do [ -x "$f" ] || { echo "missing binary: $f" >&2; exit 1; }; done
[ -x "$ROOTFS/usr/bin/monit" ] || { echo "$ROOTFS is not a rootfs with monit (make-rootfs.sh)" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")" "$WORK_DIR"
OUT=$(readlink -f "$(dirname "$OUT")")/$(basename "$OUT")

# 1. The rootfs plus systemd, cached: keyed by the rootfs's path and the mtime of its dpkg status.
BASE=$WORK_DIR/rootfs-systemd
KEY="$ROOTFS $(stat -c %Y "$ROOTFS/var/lib/dpkg/status")"
if [ "$(cat "$BASE.key" 2>/dev/null)" != "$KEY" ]; then
  echo "== adding systemd to a copy of $ROOTFS (cached in $BASE)"
  rm -rf "$BASE" "$BASE.partial" "$BASE.key"
  cp -a "$ROOTFS" "$BASE.partial"
  cp /etc/resolv.conf "$BASE.partial/etc/resolv.conf"
  mount -t proc proc "$BASE.partial/proc"
  trap 'umount "$BASE.partial/proc" 2>/dev/null || true' EXIT
  chroot "$BASE.partial" /bin/sh -ec '
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends systemd systemd-sysv systemd-resolved >/dev/null
    apt-get clean
    rm -rf /var/lib/apt/lists/*'
  umount "$BASE.partial/proc"; trap - EXIT
  mv "$BASE.partial" "$BASE"
  echo "$KEY" > "$BASE.key"
fi

# 2. The stemcell layer, on a fresh copy.
R=$WORK_DIR/build/rootfs
rm -rf "$WORK_DIR/build"; mkdir -p "$WORK_DIR/build"
cp -a "$BASE" "$R"

echo "== users and groups"
chroot "$R" /bin/bash -e <<'EOS'
for g in vcap syslog admin bosh_sshers bosh_sudoers; do getent group $g >/dev/null || groupadd --system $g; done
id vcap >/dev/null 2>&1 || useradd -m -d /home/vcap -s /bin/bash -g vcap -G admin,sudo,bosh_sshers vcap
EOS
# resolved's package makes /etc/resolv.conf a link to its stub; the engine bind-mounts a regular file there
rm -f "$R/etc/resolv.conf"; printf 'nameserver 127.0.0.1\n' > "$R/etc/resolv.conf"

echo "== /var/vcap and the agent"
mkdir -p "$R"/var/vcap/{bosh/bin,bosh/etc,bosh/log,monit/svlog,monit/job,micro_bosh/data/cache,data,store,sys/log,jobs,packages}
install -m 0755 "$AGENT_BIN" "$R/var/vcap/bosh/bin/bosh-agent"
install -m 0755 "$MONIT_PROXY_BIN" "$R/var/vcap/bosh/bin/monit-csrf-proxy"
ln -sf /usr/bin/monit "$R/var/vcap/bosh/bin/monit"
cat > "$R/var/vcap/bosh/agent.json" <<'JSON'
{
  "Platform": {
    "Linux": {
      "UseDefaultTmpDir": true,
      "UsePreformattedPersistentDisk": true,
      "BindMountPersistentDisk": true,
      "SkipDiskSetup": true,
      "ServiceManager": "systemd"
    }
  },
  "Infrastructure": {
    "Settings": {
      "Sources": [{ "Type": "File", "SettingsPath": "/var/vcap/bosh/warden-cpi-agent-env.json" }]
    }
  }
}
JSON
echo ubuntu > "$R/var/vcap/bosh/etc/operating_system"
echo "$STEMCELL_VERSION" > "$R/var/vcap/bosh/etc/stemcell_version"
# Helpers the agent runs. sync-time must exist: the docker CPI of bosh `sed -i`s it.
cat > "$R/var/vcap/bosh/bin/bosh-agent-rc" <<'SH'
#!/bin/sh
if [ -e /dev/shm ]; then chmod 0770 /dev/shm; chown root:vcap /dev/shm; fi
SH
printf '#!/bin/sh\n# containers share the host clock\nexit 0\n' > "$R/var/vcap/bosh/bin/sync-time"
printf '#!/bin/sh\necho "network is preconfigured by the CPI"\n' > "$R/var/vcap/bosh/bin/restart_networking"
printf '#!/bin/sh\nexit 0\n' > "$R/var/vcap/bosh/bin/bosh-start-logging-and-auditing"
printf '#!/bin/sh\nexit 0\n' > "$R/var/vcap/bosh/bin/setup-logrotate.sh"
find "$R/var/vcap/bosh/bin" -type f -exec chmod 0755 {} +

# monit 5.33 listens on 2823; monit-csrf-proxy on the agent's 127.0.0.1:2822 adds the CSRF token.
cat > "$R/var/vcap/bosh/etc/monitrc" <<'EOF2'
set daemon 10
set logfile /var/vcap/monit/monit.log
set httpd port 2823 and use address 127.0.0.1
  allow cleartext /var/vcap/monit/monit.user
include /var/vcap/monit/*.monitrc
include /var/vcap/monit/job/*.monitrc
EOF2
chmod 0700 "$R/var/vcap/bosh/etc/monitrc"
touch "$R/var/vcap/monit/empty.monitrc"

echo "== systemd units"
U=$R/etc/systemd/system
cat > "$U/bosh-agent.service" <<'UNIT'
[Unit]
Description=BOSH agent
After=network.target systemd-journald.socket

[Service]
Environment=PATH=/var/vcap/bosh/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WorkingDirectory=/var/vcap/bosh
ExecStart=/var/vcap/bosh/bin/bosh-agent -P ubuntu -C /var/vcap/bosh/agent.json
Nice=-10
Restart=always
RestartSec=1
StandardOutput=append:/var/vcap/bosh/log/current
StandardError=inherit

[Install]
WantedBy=multi-user.target
UNIT
cat > "$U/monit.service" <<'UNIT'
[Unit]
Description=monit (started by the BOSH agent)

[Service]
Environment=PATH=/var/vcap/bosh/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ExecStart=/var/vcap/bosh/bin/monit -I -c /var/vcap/bosh/etc/monitrc
Restart=always
RestartSec=1
StandardOutput=append:/var/vcap/monit/svlog/current
StandardError=inherit
UNIT
cat > "$U/monit-proxy.service" <<'UNIT'
[Unit]
Description=CSRF token proxy in front of monit for the BOSH agent

[Service]
ExecStart=/var/vcap/bosh/bin/monit-csrf-proxy -listen 127.0.0.1:2822 -target http://127.0.0.1:2823
Restart=always

[Install]
WantedBy=multi-user.target
UNIT
# Debian's monit package enabled its own unit/init script; the agent starts ours.
rm -f "$U"/multi-user.target.wants/monit.service
chroot "$R" systemctl enable bosh-agent.service monit-proxy.service systemd-resolved.service >/dev/null 2>&1
chroot "$R" systemctl set-default multi-user.target >/dev/null 2>&1
for u in getty@.service serial-getty@.service console-getty.service container-getty@.service getty.target \
  apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
  systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
  sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount systemd-remount-fs.service; do
  ln -sf /dev/null "$U/$u"
done
mkdir -p "$R/warden-cpi-dev"
rm -f "$R/etc/machine-id"; : > "$R/etc/machine-id"   # systemd makes one per container

echo "== packing"
(cd "$R" && tar --numeric-owner -czf "$WORK_DIR/build/image" .)
SHA1=$(sha1sum "$WORK_DIR/build/image" | cut -d' ' -f1)
cat > "$WORK_DIR/build/stemcell.MF" <<EOF2
---
name: $STEMCELL_NAME
version: '$STEMCELL_VERSION'
api_version: 3
bosh_protocol: '1'
operating_system: debian-bookworm
stemcell_formats:
- warden-tar
- docker-tar
sha1: $SHA1
cloud_properties:
  name: $STEMCELL_NAME
  version: '$STEMCELL_VERSION'
  infrastructure: warden
  hypervisor: boshlite
  init: systemd
  disk: 4096
  disk_format: files
  container_format: bare
  os_type: linux
  os_distro: debian
  architecture: x86_64
  root_device_name: /dev/sda1
EOF2
printf 'bosh-agent %s\nsystemd %s\n' "$("$AGENT_BIN" -v 2>/dev/null || true)" \
  "$(chroot "$R" dpkg-query -W -f '${Version}' systemd)" > "$WORK_DIR/build/packages.txt"
(cd "$WORK_DIR/build" && tar -czf "$OUT" stemcell.MF image packages.txt)
rm -rf "$R"
ls -la "$OUT"
echo "stemcell: $OUT"
