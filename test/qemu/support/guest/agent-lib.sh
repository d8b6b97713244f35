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

# The devices whose udev by-id name (virtio-<serial>) ends with $1: the agent's glob /dev/disk/by-id/*<id>.
disks_by_id_suffix() {
  for b in /sys/block/vd*; do
    s=$(cat "$b/serial" 2>/dev/null) || continue
    case "virtio-$s" in *"$1") echo "${b##*/}" ;; esac
  done
}

# Resolves persistent disk $1 (its CID) the way the real bosh-agent's virtio resolver does, never by
# the hint's id: first the by-id glob on the whole CID (refused below 20 characters), tried for
# 0.5 s; then the settings' `path` (a by-id link or a /dev node), waited for. Prints "<dev> id|path".
resolve_disk() {
  if [ "${#1}" -ge 20 ]; then
    for try in 1 2 3 4 5; do
      found=$(disks_by_id_suffix "$1")
      case "$(echo "$found" | grep -c .)" in
        1) echo "$found id"; return 0 ;;
        0) sleep 0.1 ;;
        *) echo "ERR more than one disk matches *$1"; return 1 ;;
      esac
    done
  fi
  path=$(get "disks.persistent.$1.path")
  [ -n "$path" ] || { echo "ERR disk $1: path is missing"; return 1; }
  tries=0
  while :; do
    case "$path" in
      /dev/disk/by-id/virtio-*) dev=$(disk_by_serial "${path#/dev/disk/by-id/virtio-}") ;;
      /dev/vd*) dev=${path#/dev/}; [ -b "/dev/$dev" ] || dev= ;;
      *) echo "ERR disk $1: unusable path $path"; return 1 ;;
    esac
    [ -n "$dev" ] && { echo "$dev path"; return 0; }
    tries=$((tries + 1))
    [ "$tries" -gt 100 ] && { echo "ERR disk $1: timed out waiting for $path"; return 1; }
    sleep 0.2
  done
}

block_devices() {
  for b in /sys/block/vd*; do printf '%s:%s:%s ' "${b##*/}" "$(cat "$b/serial" 2>/dev/null)" "$(cat "$b/size")"; done
}
