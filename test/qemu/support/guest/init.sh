#!/bin/busybox sh
# PID 1 of the test stemcell (an initramfs that syslinux loads from the stemcell disk with the
# Debian kernel). It does the parts of the BOSH agent's boot the tests look at: settings from the
# config drive (label config-2), the NIC whose MAC the settings name brought up with the static
# IP of its manual network, reports on the serial console ("BOSHTEST ..." lines); then it serves
# one-line commands on TCP port 7777 (/bin/agent) and reports block device changes.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /run /store /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /etc/modules); do insmod "/lib/modules/$m.ko" || echo "insmod $m failed"; done
. /bin/agent-lib
# ctrl-alt-delete (what reboot_vm presses) comes to PID 1 as SIGINT instead of an immediate reset,
# as under systemd: an orderly reboot that unmounts the disks first, so unsynced writes survive.
echo 0 > /proc/sys/kernel/ctrl-alt-del
clean_reboot() {
  report "ctrl-alt-delete: rebooting cleanly"
  for m in /store/*; do umount "$m" 2>/dev/null; done
  sync
  reboot -f
}
trap clean_reboot INT
# As systemd's udev rules do on a real stemcell: the kernel polls the CD drive, so it notices
# when the CPI swaps the config drive's medium before anyone reads it.
for e in /sys/block/sr*/events_poll_msecs; do echo 1000 > "$e"; done
report "boot uptime=$(cut -d' ' -f1 /proc/uptime) cmdline=$(cat /proc/cmdline)"

tries=0
until load_settings; do
  tries=$((tries + 1))
  [ "$tries" -gt 10 ] && { report "settings missing"; break; }
  sleep 0.2
done
report "settings agent_id=$(get agent_id) vm=$(get vm.name) ephemeral=$(get disks.ephemeral.id)"

for key in $(awk -F '\t' '$1 ~ /^networks\.[^.]*\.mac$/ { print $1 }' /run/settings); do
  net=${key#networks.}
  net=${net%.mac}
  mac=$(get "$key")
  dev=""
  for i in /sys/class/net/*; do [ "$(cat "$i/address")" = "$mac" ] && dev=${i##*/}; done
  if [ -z "$dev" ]; then report "net name=$net mac=$mac device=none"; continue; fi
  ip link set "$dev" up
  address=$(get "networks.$net.ip")
  if [ "$(get "networks.$net.type")" = manual ] && [ -n "$address" ]; then
    eval "$(ipcalc -p "$address" "$(get "networks.$net.netmask")")"
    ip addr add "$address/$PREFIX" dev "$dev"
  fi
  report "net name=$net device=$dev mac=$mac ip=$address"
done

nc -ll -p 7777 -e /bin/agent &
report "ready"

last=""
while :; do
  now=$(block_devices)
  if [ "$now" != "$last" ]; then report "disks $now"; last=$now; fi
  sleep 1
done
