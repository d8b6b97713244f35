/**
 * The work that must happen on the Docker host itself (loop devices, ext4, mount propagation),
 * as one POSIX shell script run by the helper container inside the host's mount namespace.
 *
 * Called as: sh -c SCRIPT sh <operation> <data_dir> [arguments...]. Arguments are never
 * interpolated into the script text, and every cloud ID was checked against its format first.
 * Results are `key value` lines on stdout. Exit codes: 0 done, 3 not found, 4 in use elsewhere,
 * 5 not attached, 6 busy, 7 smaller size asked, 8 no space, anything else a failure on stderr.
 *
 * Layout under <data_dir>:
 *   disks/<disk_cid>/{disk.img,metadata.json}     snapshots/<snapshot_cid>/{disk.img,metadata.json}
 *   mounts/<vm_cid>/<disk_cid>  (mounts/ is an rshared bind mount, so a loop mount made here
 *                                appears inside the running container at /warden-cpi-dev/<disk_cid>)
 *   ephemeral/<vm_cid>.img, ephemeral/<vm_cid>/   locks/
 * Creation and deletion go through a `.creating-` / `.deleting-` name and one rename, so a
 * killed call leaves either the whole object or a leftover that no lookup mistakes for one.
 */
export const HOST_SCRIPT = `
set -eu
op=$1; D=$2; shift 2
die() { code=$1; shift; echo "$*" >&2; exit "$code"; }
fresh_name() { echo "$1/.$2-$3-$$"; }

setup() {
  mkdir -p "$D/disks" "$D/snapshots" "$D/mounts" "$D/ephemeral" "$D/locks"
  chmod 0700 "$D"
  exec 9>"$D/locks/.setup"
  flock 9
  mountpoint -q "$D/mounts" || mount --bind "$D/mounts" "$D/mounts"
  mount --make-rshared "$D/mounts"
  flock -u 9
  exec 9>&-
}

lock_disk() { exec 8>"$D/locks/$1.lock"; flock 8; }

# The kernel frees an autoclear loop device a moment after its last unmount, later still when
# several unmounts run at once, so a disk detached a moment ago may still show one. Waits up to
# 3 s for <image>'s loop devices to go; fails if any remains.
loops_gone() { # <image>
  n=0
  while [ -n "$(losetup -j "$1")" ]; do
    n=$((n + 1))
    [ "$n" -gt 30 ] && return 1
    sleep 0.1
  done
  return 0
}

# Prints "disk <cid>" for every disk mounted for a VM.
list_mounts() {
  [ -d "$D/mounts/$1" ] || return 0
  for m in "$D/mounts/$1"/*; do
    [ -d "$m" ] && mountpoint -q "$m" && echo "disk $(basename "$m")"
  done
  return 0
}

# Prints the VM holding a disk mounted, if any.
mounted_under() {
  for m in "$D"/mounts/*/"$1"; do
    [ -d "$m" ] && mountpoint -q "$m" && { basename "$(dirname "$m")"; return 0; }
  done
  return 0
}

make_fs() { # <image> <size MiB>
  truncate -s "$2M" "$1"
  out=$(mkfs.ext4 -q -F -m 0 -E lazy_itable_init=1,lazy_journal_init=1 "$1" 2>&1) || {
    case "$out" in *"No space"*) die 8 "no space left on the Docker host for $2 MiB";; esac
    die 1 "mkfs.ext4 failed: $out"
  }
}

# Grows an ext4 image that nothing has mounted. (Online growth needs CAP_SYS_RESOURCE, which
# Docker hosts often withhold; callers run this on a copy and rename it into place.)
grow_fs() { # <image> <size MiB>
  cur=$(stat -c %s "$1")
  new=$(( $2 * 1048576 ))
  [ "$new" -lt "$cur" ] && die 7 "disk is $(( cur / 1048576 )) MiB; shrinking to $2 MiB is not supported"
  [ "$new" -gt "$cur" ] && truncate -s "$new" "$1"
  rc=0; e2fsck -f -p "$1" >/dev/null 2>&1 || rc=$?
  [ "$rc" -le 1 ] || die 1 "e2fsck found errors it could not repair in $1 (exit $rc)"
  resize2fs "$1" >/dev/null 2>&1 || die 1 "resize2fs failed on $1"
}

case "$op" in
setup)
  setup
  ;;
create-disk) # <disk_cid> <size MiB> <metadata json> [<source snapshot_cid>]
  setup
  cid=$1; size=$2; meta=$3; src=""; [ $# -ge 4 ] && src=$4
  [ -e "$D/disks/$cid" ] && die 4 "disk $cid already exists"
  tmp=$(fresh_name "$D/disks" creating "$cid")
  mkdir "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  if [ -n "$src" ]; then
    [ -f "$D/snapshots/$src/disk.img" ] || die 3 "snapshot $src not found"
    cp --sparse=always "$D/snapshots/$src/disk.img" "$tmp/disk.img"
    grow_fs "$tmp/disk.img" "$size"
  else
    make_fs "$tmp/disk.img" "$size"
  fi
  printf '%s' "$meta" > "$tmp/metadata.json"
  mv "$tmp" "$D/disks/$cid"
  trap - EXIT
  echo "created $cid"
  ;;
has-disk) # <disk_cid>
  [ -f "$D/disks/$1/disk.img" ] || exit 3
  echo "size $(stat -c %s "$D/disks/$1/disk.img")"
  ;;
delete-disk) # <disk_cid>
  setup
  cid=$1
  [ -d "$D/disks/$cid" ] || exit 3
  lock_disk "$cid"
  vm=$(mounted_under "$cid")
  [ -n "$vm" ] && die 4 "attached $vm"
  loops_gone "$D/disks/$cid/disk.img" || die 6 "disk image is still in use by a loop device"
  gone=$(fresh_name "$D/disks" deleting "$cid")
  mv "$D/disks/$cid" "$gone"
  rm -rf "$gone" "$D/locks/$cid.lock"
  ;;
set-disk-metadata) # <disk_cid> <metadata json>
  [ -d "$D/disks/$1" ] || exit 3
  printf '%s' "$2" > "$D/disks/$1/.metadata.json.new"
  mv "$D/disks/$1/.metadata.json.new" "$D/disks/$1/metadata.json"
  ;;
attach-disk) # <vm_cid> <disk_cid>
  setup
  vm=$1; cid=$2; img="$D/disks/$cid/disk.img"
  [ -f "$img" ] || exit 3
  lock_disk "$cid"
  mp="$D/mounts/$vm/$cid"
  if ! mountpoint -q "$mp" 2>/dev/null; then
    other=$(mounted_under "$cid")
    [ -n "$other" ] && die 4 "attached $other"
    loops_gone "$img" || die 6 "disk image is in use by a loop device outside this CPI's mounts"
    mkdir -p "$mp"
    mount -o loop,noatime "$img" "$mp"
  fi
  list_mounts "$vm"
  ;;
detach-disk) # <vm_cid> <disk_cid> <container pid or 0> <seconds to wait while busy>
  vm=$1; cid=$2; pid=$3; wait_s=$4; mp="$D/mounts/$vm/$cid"
  [ -f "$D/disks/$cid/disk.img" ] || exit 3
  lock_disk "$cid"
  mountpoint -q "$mp" 2>/dev/null || exit 5
  dev=$(findmnt -n -o MAJ:MIN --mountpoint "$mp" | tr -d ' ')
  loopdev=$(findmnt -n -o SOURCE --mountpoint "$mp" | tr -d ' ')
  tries=0
  while :; do
    users=""
    if [ "$pid" != 0 ] && [ -r "/proc/$pid/mountinfo" ]; then
      users=$(awk -v dev="$dev" -v own="/warden-cpi-dev/$cid" '$3 == dev && $5 != own { printf "%s ", $5 }' "/proc/$pid/mountinfo")
    fi
    if [ -z "$users" ] && umount "$mp" 2>/dev/null; then break; fi
    tries=$((tries + 1))
    if [ "$tries" -gt "$wait_s" ]; then
      [ -n "$users" ] && die 6 "still mounted inside the VM at: $users"
      die 6 "the filesystem is busy (processes in the VM still use /warden-cpi-dev/$cid)"
    fi
    sleep 1
  done
  # The loop device is released asynchronously once the last mount of the filesystem is gone.
  waited=0
  while [ -n "$(losetup -j "$D/disks/$cid/disk.img")" ] && [ "$waited" -lt 50 ]; do sleep 0.1; waited=$((waited + 1)); done
  if [ -n "$(losetup -j "$D/disks/$cid/disk.img")" ]; then
    # Still mounted somewhere we could not see: put it back rather than leave it half-detached.
    mount "$loopdev" "$mp" 2>/dev/null && die 6 "the filesystem is still mounted elsewhere in the VM; the disk stays attached"
    die 6 "unmounted, but the disk is still referenced by loop device $loopdev"
  fi
  rmdir "$mp" 2>/dev/null || true
  list_mounts "$vm"
  ;;
release-disk) # <vm_cid> <disk_cid>: a mount left behind by a VM that no longer exists
  vm=$1; cid=$2; mp="$D/mounts/$vm/$cid"
  lock_disk "$cid"
  if mountpoint -q "$mp" 2>/dev/null; then umount "$mp"; fi
  rmdir "$mp" 2>/dev/null || true
  ;;
list-disks) # <vm_cid>
  list_mounts "$1"
  ;;
create-ephemeral) # <vm_cid> <size MiB>
  setup
  vm=$1; img="$D/ephemeral/$vm.img"; mp="$D/ephemeral/$vm"
  mkdir -p "$mp"
  if ! mountpoint -q "$mp"; then
    [ -f "$img" ] || make_fs "$img" "$2"
    mount -o loop,noatime "$img" "$mp"
  fi
  ;;
delete-vm-storage) # <vm_cid>: after the container is gone
  vm=$1
  if [ -d "$D/mounts/$vm" ]; then
    for m in "$D/mounts/$vm"/*; do
      [ -d "$m" ] || continue
      if mountpoint -q "$m"; then umount "$m" || die 6 "cannot unmount $(basename "$m") of $vm"; fi
      rmdir "$m"
    done
    rmdir "$D/mounts/$vm"
  fi
  if [ -d "$D/ephemeral/$vm" ]; then
    if mountpoint -q "$D/ephemeral/$vm"; then umount "$D/ephemeral/$vm" || die 6 "cannot unmount the ephemeral disk of $vm"; fi
    rmdir "$D/ephemeral/$vm"
  fi
  rm -f "$D/ephemeral/$vm.img"
  ;;
snapshot-disk) # <disk_cid> <snapshot_cid> <metadata json>
  setup
  cid=$1; snap=$2; img="$D/disks/$cid/disk.img"
  [ -f "$img" ] || exit 3
  lock_disk "$cid"
  tmp=$(fresh_name "$D/snapshots" creating "$snap")
  mkdir "$tmp"
  mp=""
  vm=$(mounted_under "$cid")
  [ -n "$vm" ] && mp="$D/mounts/$vm/$cid"
  trap 'rm -rf "$tmp"; [ -n "$mp" ] && fsfreeze -u "$mp" 2>/dev/null; true' EXIT
  if [ -n "$mp" ]; then fsfreeze -f "$mp"; echo "frozen $vm"; fi
  cp --sparse=always "$img" "$tmp/disk.img"
  if [ -n "$mp" ]; then fsfreeze -u "$mp"; mp=""; fi
  printf '%s' "$3" > "$tmp/metadata.json"
  mv "$tmp" "$D/snapshots/$snap"
  trap - EXIT
  echo "created $snap"
  ;;
delete-snapshot) # <snapshot_cid>
  [ -d "$D/snapshots/$1" ] || exit 3
  gone=$(fresh_name "$D/snapshots" deleting "$1")
  mv "$D/snapshots/$1" "$gone"
  rm -rf "$gone"
  ;;
resize-disk) # <disk_cid> <size MiB>
  setup
  cid=$1; img="$D/disks/$cid/disk.img"
  [ -f "$img" ] || exit 3
  lock_disk "$cid"
  vm=$(mounted_under "$cid")
  [ -n "$vm" ] && die 4 "attached $vm"
  loops_gone "$img" || die 6 "disk image is in use by a loop device"
  cur=$(stat -c %s "$img")
  [ $(( $2 * 1048576 )) -lt "$cur" ] && die 7 "disk is $(( cur / 1048576 )) MiB; shrinking to $2 MiB is not supported"
  if [ $(( $2 * 1048576 )) -eq "$cur" ]; then echo "size $cur"; exit 0; fi
  # Grow a copy and rename it over the original: a crash at any point leaves the old disk whole.
  work="$D/disks/$cid/.resizing"
  trap 'rm -f "$work"' EXIT
  cp --sparse=always "$img" "$work"
  grow_fs "$work" "$2"
  sync "$work"
  mv "$work" "$img"
  trap - EXIT
  echo "size $(stat -c %s "$img")"
  ;;
set-default-route) # <container pid> <gateway>: the engine picks the default route by network name
  nsenter -t "$1" -n ip route replace default via "$2" || die 1 "cannot set the default route via $2"
  ;;
*)
  die 2 "unknown operation $op"
  ;;
esac
`;
