# Sourced by init and agent: settings from the config drive, disks by virtio serial.
report() { echo "BOSHTEST $*" > /dev/console; }

# Mounts the config drive afresh (the CPI swaps its medium after attach/detach) and flattens the
# settings. The first read after a medium change can fail while the drive reports the change
# (a kernel that polls the drive usually gets there first), so a failed read is tried again.
load_settings() {
  for attempt in 1 2 3 4 5; do
    read_config_drive && return 0
    sleep 0.5
  done
  return 1
}

read_config_drive() {
  dev=$(findfs LABEL=config-2 2>/dev/null) || return 1
  mkdir -p /cfg
  mount -t iso9660 -o ro "$dev" /cfg 2>/dev/null || return 1
  awk -f /bin/jsonflat < /cfg/openstack/latest/user_data.json > "/run/settings.$$"
  rc=$?
  umount /cfg
  [ "$rc" = 0 ] && mv "/run/settings.$$" /run/settings
}

get() { awk -F '\t' -v k="$1" '$1 == k { print $2; exit }' /run/settings; }

# The block device whose virtio serial is $1 (what /dev/disk/by-id/virtio-<serial> is with udev).
disk_by_serial() {
  for b in /sys/block/vd*; do
    [ -n "$1" ] && [ "$(cat "$b/serial" 2>/dev/null)" = "$1" ] && { echo "${b##*/}"; return 0; }
  done
  return 1
}

block_devices() {
  for b in /sys/block/vd*; do printf '%s:%s:%s ' "${b##*/}" "$(cat "$b/serial" 2>/dev/null)" "$(cat "$b/size")"; done
}
