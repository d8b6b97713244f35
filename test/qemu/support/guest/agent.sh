#!/bin/sh
# A stand-in for the agent API: one "<command> <args>" line per connection, the answer, then EOF.
. /bin/agent-lib
IFS= read -r line
set -- $line
command=$1
shift
case "$command" in
  echo) echo "$*" ;;
  settings) load_settings; cat /run/settings ;;
  devices) block_devices; echo ;;
  resolve) load_settings; resolve_disk "$1" ;;
  mount)
    load_settings
    # Like the agent: a hot-plugged disk takes a moment to show up in the guest.
    resolved=$(resolve_disk "$1") || { echo "$resolved"; exit 0; }
    dev=${resolved%% *}
    mkdir -p "/store/$1"
    if ! mount -t ext4 "/dev/$dev" "/store/$1" 2>/dev/null; then
      mke2fs "/dev/$dev" > /dev/null 2>&1 && mount -t ext4 "/dev/$dev" "/store/$1" || { echo "ERR mount $dev"; exit 0; }
    fi
    echo "OK $dev"
    ;;
  write) target=$1; shift; echo "$*" > "/store/$target/data" && sync && echo OK ;;
  put) target=$1; shift; echo "$*" > "/store/$target/data" && echo OK ;;
  read) cat "/store/$1/data" ;;
  df) df -k "/store/$1" | tail -n 1 ;;
  umount) sync; umount "/store/$1" && echo OK ;;
  ps) ps ;;
  dmesg) dmesg | tail -n "${1:-40}" ;;
  *) echo "ERR unknown command $command" ;;
esac
