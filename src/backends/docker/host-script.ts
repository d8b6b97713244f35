/**
 * The work that must happen on the Docker host itself (loop devices, ext4, mount propagation),
 * as one POSIX shell script run by the helper container inside the host's mount namespace.
 *
 * Called as: sh -c SCRIPT sh <operation> <data_dir> [arguments...]. Arguments are never
 * interpolated into the script text, and every cloud ID was checked against its format first.
 * Results are `key value` lines on stdout (`warning <text>` lines are logged). The operations, their arguments and their exit codes
 * are declared in host-operations.ts; the dispatcher below is made from that table, and only
 * the body of each operation is written here.
 *
 * Layout under <data_dir>:
 *   disks/<disk_cid>/{disk.img,metadata.json}     snapshots/<snapshot_cid>/{disk.img,metadata.json}
 *   mounts/<vm_cid>/<disk_cid>  (mounts/ is an rshared bind mount, so a loop mount made here
 *                                appears inside the running container at /warden-cpi-dev/<disk_cid>)
 *   ephemeral/<vm_cid>.img, ephemeral/<vm_cid>/   locks/   stray/ (content found where none belongs)
 *   settings/<vm_cid>/  the agent settings create_vm staged for the VM's first start (settings-file.ts)
 * The directory mounts/<vm_cid>/<disk_cid> is the record that the disk is attached to the VM; it
 * exists from attach to detach, across host reboots, and is immutable (chattr +i) while nothing is
 * mounted on it, so with its disk missing nothing can write into it (the agent's bind mount of an
 * empty directory onto /var/vcap/store, a job). The same holds for ephemeral/<vm_cid>.
 * After a host reboot the loop mounts and the mounts/ bind are gone: the first operation (or the
 * helper container, which starts with the engine) binds mounts/ again and mounts every record.
 * Creation and deletion go through a `.creating-` / `.deleting-` name and one rename, so a
 * killed call leaves either the whole object or a leftover that no lookup mistakes for one.
 */
import type { DiskCid } from '../../cpi/types.ts';
import {
  HOST_EXIT_CODES,
  HOST_OPERATIONS,
  type HostOperationName,
  type HostOutcomeName,
} from './host-operations.ts';
import { metadataJson, SETTINGS_DIR, SETTINGS_FILES, STAGED_MARKER, userDataJson } from './settings-file.ts';

const SHELL_NAMES: Record<HostOutcomeName, string> = {
  notFound: 'E_NOT_FOUND',
  inUseElsewhere: 'E_IN_USE_ELSEWHERE',
  notAttached: 'E_NOT_ATTACHED',
  busy: 'E_BUSY',
  smallerSize: 'E_SMALLER_SIZE',
  noSpace: 'E_NO_SPACE',
  leftInVm: 'E_LEFT_IN_VM',
  changed: 'E_CHANGED',
};

/** Files of the layout above that the CPI also looks up directly (HostHelper.look), relative to data_dir. */
export const DATA_DIR_PATHS = {
  diskImage: (cid: DiskCid) => `disks/${cid}/disk.img`,
  diskMetadata: (cid: DiskCid) => `disks/${cid}/metadata.json`,
};

/** A host file listing every data dir in use, so the helper can mount their disks again after a reboot. */
export const DATA_DIRS = '/var/lib/bosh-docker-cpi.data-dirs';

const PREAMBLE = `
die() { code=$1; shift; echo "$*" >&2; exit "$code"; }
fresh_name() { echo "$1/.$2-$3-$$"; }

setup() {
  mkdir -p "$D/disks" "$D/snapshots" "$D/mounts" "$D/ephemeral" "$D/locks" "$D/settings"
  chmod 0700 "$D"
  exec 9>"$D/locks/.setup"
  flock 9
  grep -qxF "$D" ${DATA_DIRS} 2>/dev/null || echo "$D" >> ${DATA_DIRS}
  if ! mountpoint -q "$D/mounts"; then
    mount --bind "$D/mounts" "$D/mounts"
    mount --make-rshared "$D/mounts"
    restore_mounts
  fi
  mount --make-rshared "$D/mounts"
  flock -u 9
  exec 9>&-
}

# Every operation starts here: a data dir whose mounts/ is not bound means the host has restarted,
# and the records are mounted again before anything looks at them.
ready() { [ -d "$D/mounts" ] || return 0; mountpoint -q "$D/mounts" || setup; }

# A mount point is immutable while nothing is mounted on it (see the layout above). chattr on a
# mounted path would change the mounted filesystem's root instead, hence the checks.
seal() {
  mountpoint -q "$1" && return 0
  chattr +i "$1" 2>/dev/null || echo "warning cannot make $1 immutable (chattr +i failed: the helper lacks CAP_LINUX_IMMUTABLE, or the data dir's filesystem has no such flag)"
}
unseal() { mountpoint -q "$1" || chattr -i "$1" 2>/dev/null || true; }

# Removes an empty mount point; content that should not be there is moved aside under stray/ and
# reported, never deleted and never a reason to stop.
remove_dir() { # <dir>
  [ -d "$1" ] || return 0
  unseal "$1"
  rmdir "$1" 2>/dev/null && return 0
  mkdir -p "$D/stray"
  dest="$D/stray/$(date -u +%Y%m%dT%H%M%SZ)-$$-$(echo "\${1#"$D"/}" | tr / _)"
  if mv "$1" "$dest" 2>/dev/null; then
    echo "warning $1 was not empty; its content was moved to $dest"
  else
    echo "warning $1 is not empty and could not be moved aside to $dest"
    return 1
  fi
}

# Mounts every disk and ephemeral disk whose record exists but is not mounted (after a host
# reboot). A disk image still attached to a loop device somewhere is left alone: mounting it a
# second time would corrupt it.
restore_mounts() {
  for m in "$D"/mounts/*/*; do
    [ -d "$m" ] || continue
    mountpoint -q "$m" && continue
    cid=\${m##*/}; vm=\${m%/*}; vm=\${vm##*/}; img="$D/disks/$cid/disk.img"
    if [ ! -f "$img" ]; then
      echo "warning $m records disk $cid for VM $vm, but the disk does not exist"
      continue
    fi
    lock_disk "$cid"
    if mountpoint -q "$m"; then :
    elif [ -n "$(losetup -j "$img")" ]; then
      echo "warning disk $cid of VM $vm is not mounted but its image is in use by a loop device; not mounting it"
    elif mount -o loop,noatime "$img" "$m"; then
      echo "restored $vm $cid"
    else
      echo "warning cannot mount disk $cid for VM $vm again"
    fi
    unlock_disk
  done
  for img in "$D"/ephemeral/*.img; do
    [ -f "$img" ] || continue
    mp=\${img%.img}
    [ -d "$mp" ] || continue
    mountpoint -q "$mp" && continue
    [ -z "$(losetup -j "$img")" ] && mount -o loop,noatime "$img" "$mp" && continue
    echo "warning cannot mount the ephemeral disk $img again"
  done
  return 0
}

# snapshot-disk records the mount point it freezes in locks/<disk>.frozen until it has thawed it.
# A snapshot killed in between (its helper killed with a restarting engine) leaves the disk frozen
# and every write in the VM waiting: whoever takes the disk's lock next thaws it first.
lock_disk() { exec 8>"$D/locks/$1.lock"; flock 8; thaw_leftover "$1"; }
unlock_disk() { exec 8>&-; }
thaw_leftover() { # <disk_cid>, under its lock
  [ -f "$D/locks/$1.frozen" ] || return 0
  frozen=$(cat "$D/locks/$1.frozen")
  if [ -n "$frozen" ] && mountpoint -q "$frozen" && fsfreeze -u "$frozen" 2>/dev/null; then
    echo "warning thawed disk $1, left frozen by an interrupted snapshot"
  fi
  rm -f "$D/locks/$1.frozen"
}

# Mounts of <image>'s loop devices in the mount namespace of process <pid> (a VM's init) are copies
# the host's unmount of the disk did not reach: each is answered as "leftover <mount point>" with
# E_LEFT_IN_VM, for the CPI to unmount inside the VM before it asks again.
exit_if_left_in_vm() { # <pid> <image>
  [ "$1" != 0 ] && [ -r "/proc/$1/mountinfo" ] || return 0
  left=$(for l in $(losetup -j "$2" | cut -d: -f1); do
    d=$(cat "/sys/block/\${l#/dev/}/dev" 2>/dev/null) || continue
    awk -v dev="$d" '$3 == dev { print "leftover " $5 }' "/proc/$1/mountinfo"
  done)
  [ -z "$left" ] || { echo "$left"; exit "$E_LEFT_IN_VM"; }
}

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

# Docker 20.10 bind-mounts a container's volumes under its root filesystem on the host for every
# archive request (the settings file, docker cp). Where the host's / is shared, the container's root
# is a slave of that mount, so those binds propagate into the running container, and they stay there
# when the volume has submounts (moby#43390): every settings write stacked one more /warden-cpi-dev,
# with a copy of each disk, inside the VM. Later engines make the container's root filesystem private
# on the host; so does this, once the container runs. Only a mount of the container's own root
# filesystem (a device no other host mount has) is changed, never a directory shared with the host.
isolate_vm_root() { # <container pid or 0>
  [ "$1" != 0 ] && [ -r "/proc/$1/mountinfo" ] || return 0
  root=$(awk '$5 == "/" { for (i = 7; $i != "-"; i++) if ($i ~ /^master:/) { print $3, substr($i, 8); exit } }' "/proc/$1/mountinfo" 2>/dev/null) || return 0
  [ -n "$root" ] || return 0
  rootfs=$(awk -v dev="\${root% *}" -v group="shared:\${root#* }" '
    $3 == dev { n++; for (i = 7; $i != "-"; i++) if ($i == group) at = $5 }
    END { if (n == 1 && at != "") print at }' /proc/self/mountinfo) || return 0
  [ -n "$rootfs" ] || return 0
  mount --make-private "$rootfs" || echo "cannot make $rootfs private; archive requests may stack mounts in the VM" >&2
}

# Prints "disk <cid>" for every disk mounted for a VM.
list_mounts() {
  [ -d "$D/mounts/$1" ] || return 0
  for m in "$D/mounts/$1"/*; do
    [ -d "$m" ] && mountpoint -q "$m" && echo "disk $(basename "$m")"
  done
  return 0
}

# Prints the VM that holds a disk (its record, mounted or not), if any.
holder_of() {
  for m in "$D"/mounts/*/"$1"; do
    [ -d "$m" ] && { m=\${m%/*}; echo "\${m##*/}"; return 0; }
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
    case "$out" in *"No space"*) die "$E_NO_SPACE" "no space left on the Docker host for $2 MiB";; esac
    die 1 "mkfs.ext4 failed: $out"
  }
}

# Grows an ext4 image that nothing has mounted. (Online growth needs CAP_SYS_RESOURCE, which
# Docker hosts often withhold; callers run this on a copy and rename it into place.)
grow_fs() { # <image> <size MiB>
  cur=$(stat -c %s "$1")
  new=$(( $2 * 1048576 ))
  [ "$new" -lt "$cur" ] && die "$E_SMALLER_SIZE" "disk is $(( cur / 1048576 )) MiB; shrinking to $2 MiB is not supported"
  [ "$new" -gt "$cur" ] && truncate -s "$new" "$1"
  rc=0; e2fsck -f -p "$1" >/dev/null 2>&1 || rc=$?
  [ "$rc" -le 1 ] || die 1 "e2fsck found errors it could not repair in $1 (exit $rc)"
  resize2fs "$1" >/dev/null 2>&1 || die 1 "resize2fs failed on $1"
}
`;

/**
 * What each operation does, with its arguments already in the shell variables the table names.
 * Built on first use, like the script: a call that runs no host operation does not pay for it.
 */
function operationBodies(): Record<HostOperationName, string> {
  // The metadata file's text before and after the VM's CID (settings-file.ts), for printf.
  const aroundVm = metadataJson('@VM@').split('@VM@') as [string, string];
  return {
    setup: `
  setup
`,
    restore: `
  setup
`,
    'create-disk': `
  setup
  [ -e "$D/disks/$cid" ] && die "$E_IN_USE_ELSEWHERE" "disk $cid already exists"
  tmp=$(fresh_name "$D/disks" creating "$cid")
  mkdir "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  if [ -n "$src" ]; then
    [ -f "$D/snapshots/$src/disk.img" ] || die "$E_NOT_FOUND" "snapshot $src not found"
    cp --sparse=always "$D/snapshots/$src/disk.img" "$tmp/disk.img"
    grow_fs "$tmp/disk.img" "$size"
  else
    make_fs "$tmp/disk.img" "$size"
  fi
  printf '%s' "$meta" > "$tmp/metadata.json"
  mv "$tmp" "$D/disks/$cid"
  trap - EXIT
  echo "created $cid"
`,
    'has-disk': `
  [ -f "$D/disks/$cid/disk.img" ] || exit "$E_NOT_FOUND"
`,
    'delete-disk': `
  setup
  [ -d "$D/disks/$cid" ] || exit "$E_NOT_FOUND"
  lock_disk "$cid"
  vm=$(holder_of "$cid")
  [ -n "$vm" ] && die "$E_IN_USE_ELSEWHERE" "attached $vm"
  loops_gone "$D/disks/$cid/disk.img" || die "$E_BUSY" "disk image is still in use by a loop device"
  gone=$(fresh_name "$D/disks" deleting "$cid")
  mv "$D/disks/$cid" "$gone"
  rm -rf "$gone" "$D/locks/$cid.lock" "$D/locks/$cid.frozen"
`,
    'read-disk-metadata': `
  [ -d "$D/disks/$cid" ] || exit "$E_NOT_FOUND"
  # base64: a record of several lines (edited by hand) arrives whole.
  printf 'metadata %s\\n' "$(base64 -w0 "$D/disks/$cid/metadata.json" 2>/dev/null || true)"
`,
    'set-disk-metadata': `
  # Replaces the record only if it is still what the caller read (expected), under the disk's lock.
  dir="$D/disks/$cid"
  [ -d "$dir" ] || exit "$E_NOT_FOUND"
  lock_disk "$cid"
  [ -d "$dir" ] || exit "$E_NOT_FOUND"
  # One unterminated line (the usual record) is read without starting cat; anything else with it.
  current=
  if { IFS= read -r current < "$dir/metadata.json"; } 2>/dev/null; then current=$(cat "$dir/metadata.json"); fi
  [ "$current" = "$expected" ] || exit "$E_CHANGED"
  tmp="$dir/.metadata.json.$$"
  trap 'rm -f "$tmp"' EXIT
  printf '%s' "$meta" > "$tmp"
  mv "$tmp" "$dir/metadata.json"
  trap - EXIT
`,
    'attach-disk': `
  setup
  img="$D/disks/$cid/disk.img"
  [ -f "$img" ] || exit "$E_NOT_FOUND"
  isolate_vm_root "$pid"
  lock_disk "$cid"
  mp="$D/mounts/$vm/$cid"
  if ! mountpoint -q "$mp" 2>/dev/null; then
    other=$(holder_of "$cid")
    [ -n "$other" ] && [ "$other" != "$vm" ] && die "$E_IN_USE_ELSEWHERE" "attached $other"
    loops_gone "$img" || die "$E_BUSY" "disk image is in use by a loop device outside this CPI's mounts"
    mkdir -p "$mp"
    seal "$mp"
    if ! mount -o loop,noatime "$img" "$mp"; then
      [ "$other" = "$vm" ] || remove_dir "$mp" || true
      die 1 "mounting disk $cid failed"
    fi
  fi
  list_mounts "$vm"
`,
    'detach-disk': `
  # pid: the container's (0 when it is not running); wait_s: how long to wait while the VM still uses the disk.
  mp="$D/mounts/$vm/$cid"; hint="/warden-cpi-dev/$cid"
  [ -f "$D/disks/$cid/disk.img" ] || exit "$E_NOT_FOUND"
  isolate_vm_root "$pid"
  lock_disk "$cid"
  [ -d "$mp" ] || exit "$E_NOT_ATTACHED"
  if ! mountpoint -q "$mp"; then
    # Recorded but not mounted: the host restarted and the disk could not be mounted again, or an
    # earlier detach unmounted it and a copy in the VM that the unmount did not reach is left (the
    # CPI unmounts it inside the VM, then asks again).
    exit_if_left_in_vm "$pid" "$D/disks/$cid/disk.img"
    remove_dir "$mp" || die 1 "cannot remove the mount point $mp"
    list_mounts "$vm"
    exit 0
  fi
  dev=$(findmnt -n -o MAJ:MIN --mountpoint "$mp" | tr -d ' ')
  loopdev=$(findmnt -n -o SOURCE --mountpoint "$mp" | tr -d ' ')
  tries=0
  while :; do
    users=""; in_vm=""
    if [ "$pid" != 0 ] && [ -r "/proc/$pid/mountinfo" ]; then
      users=$(awk -v dev="$dev" -v own="$hint" '$3 == dev && $5 != own { printf "%s ", $5 }' "/proc/$pid/mountinfo")
      # What the VM sees at the hint path: the disk, until the agent's unmount_disk removes it there.
      [ "$(stat -c %d:%i "/proc/$pid/root$hint" 2>/dev/null)" = "$(stat -c %d:%i "$mp")" ] && in_vm=1
    fi
    if [ -z "$users" ] && umount "$mp" 2>/dev/null; then break; fi
    if [ -n "$users" ] && [ -z "$in_vm" ]; then
      # The agent unmounted the hint path, which leaves its bind mounts of the disk (/var/vcap/store):
      # the CPI unmounts those inside the VM, then detaches.
      for u in $users; do echo "leftover $u"; done
      exit "$E_LEFT_IN_VM"
    fi
    tries=$((tries + 1))
    if [ "$tries" -gt "$wait_s" ]; then
      [ -n "$users" ] && die "$E_BUSY" "still mounted inside the VM at: $users(the agent has not unmounted $hint)"
      die "$E_BUSY" "the filesystem is busy (processes in the VM still use $hint)"
    fi
    sleep 1
  done
  # The loop device is released asynchronously once the last mount of the filesystem is gone.
  waited=0
  while [ -n "$(losetup -j "$D/disks/$cid/disk.img")" ] && [ "$waited" -lt 50 ]; do sleep 0.1; waited=$((waited + 1)); done
  if [ -n "$(losetup -j "$D/disks/$cid/disk.img")" ]; then
    # A copy in the VM the unmount did not reach (seen after a reboot of a host whose / is shared):
    # the CPI unmounts it inside the VM, as the agent's own leftovers, then asks again.
    exit_if_left_in_vm "$pid" "$D/disks/$cid/disk.img"
    # Still mounted somewhere we could not see: put it back rather than leave it half-detached,
    # and name the mount namespaces (one process each) that still have it.
    seen=" "; where=""
    for f in $(grep -l " $dev " /proc/[0-9]*/mountinfo 2>/dev/null); do
      p=\${f#/proc/}; p=\${p%%/*}; ns=$(readlink "/proc/$p/ns/mnt" 2>/dev/null) || continue
      case "$seen" in *" $ns "*) continue;; esac
      seen="$seen$ns "; where="$where $p($(cat "/proc/$p/comm" 2>/dev/null))"
    done
    where=\${where:- none that lists it: a lazily unmounted copy still in use}
    mount "$loopdev" "$mp" 2>/dev/null && die "$E_BUSY" "the filesystem is still mounted elsewhere (mount namespaces of processes:$where); the disk stays attached"
    die "$E_BUSY" "unmounted, but the disk is still referenced by loop device $loopdev (mount namespaces of processes:$where)"
  fi
  remove_dir "$mp" || true
  list_mounts "$vm"
`,
    'release-disk': `
  # A mount left behind by a VM that no longer exists.
  mp="$D/mounts/$vm/$cid"
  lock_disk "$cid"
  if mountpoint -q "$mp" 2>/dev/null; then umount "$mp"; fi
  remove_dir "$mp" || true
`,
    'list-disks': `
  list_mounts "$vm"
`,
    'create-ephemeral': `
  setup
  img="$D/ephemeral/$vm.img"; mp="$D/ephemeral/$vm"
  mkdir -p "$mp"
  seal "$mp"
  if ! mountpoint -q "$mp"; then
    [ -f "$img" ] || make_fs "$img" "$size"
    mount -o loop,noatime "$img" "$mp"
  fi
`,
    'delete-vm-storage': `
  # After the container is gone, or while the engine kills it (pid: its init): then nothing is
  # released until the container's mount namespace is gone. Goes through every piece (each disk
  # under its lock), then reports.
  if [ -n "$pid" ] && [ "$pid" != 0 ]; then
    ns=$(readlink "/proc/$pid/ns/mnt" 2>/dev/null) || ns=""
    n=0
    while [ -n "$ns" ] && [ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$ns" ]; do
      n=$((n + 1))
      [ "$n" -le 3000 ] || die "$E_BUSY" "VM $vm is still running (process $pid) after 60 s; nothing was released"
      sleep 0.02
    done
  fi
  busy=""
  if [ -d "$D/mounts/$vm" ]; then
    for m in "$D/mounts/$vm"/* "$D/mounts/$vm"/.[!.]*; do
      [ -e "$m" ] || continue
      cid=\${m##*/}
      [ -f "$D/disks/$cid/disk.img" ] && lock_disk "$cid"
      if mountpoint -q "$m"; then umount "$m" || { busy="$busy disk $cid"; unlock_disk; continue; }; fi
      if [ -d "$m" ]; then remove_dir "$m" || true
      else mkdir -p "$D/stray"; mv "$m" "$D/stray/$(date -u +%Y%m%dT%H%M%SZ)-$$-$vm-$cid" && echo "warning moved the unexpected file $m to $D/stray"
      fi
      unlock_disk
    done
    [ -n "$busy" ] || remove_dir "$D/mounts/$vm" || true
  fi
  if [ -d "$D/ephemeral/$vm" ]; then
    if mountpoint -q "$D/ephemeral/$vm" && ! umount "$D/ephemeral/$vm"; then busy="$busy ephemeral disk"
    else remove_dir "$D/ephemeral/$vm" || true; rm -f "$D/ephemeral/$vm.img"
    fi
  else
    rm -f "$D/ephemeral/$vm.img"
  fi
  rm -rf "$D/settings/$vm"
  [ -z "$busy" ] || die "$E_BUSY" "cannot unmount the$busy of $vm (busy); everything else was released"
`,
    'stage-settings': `
  # A new VM's agent settings, in base64 parts sent at once; the part that finds them all there
  # installs the files for the VM's start command to copy in (settings-file.ts), once.
  umask 077
  dir="$D/settings/$vm"
  mkdir -p "$dir"
  tmp=$(fresh_name "$dir" part "$part")
  trap 'rm -f "$tmp"' EXIT
  printf '%s' "$data" > "$tmp"
  mv "$tmp" "$dir/.part-$part"
  trap - EXIT
  i=1
  while [ "$i" -le "$parts" ]; do [ -f "$dir/.part-$i" ] || exit 0; i=$((i + 1)); done
  mkdir "$dir/.installing" 2>/dev/null || exit 0
  i=1
  while [ "$i" -le "$parts" ]; do cat "$dir/.part-$i"; i=$((i + 1)); done | base64 -d > "$dir/.settings" ||
    die 1 "the staged settings of $vm are not valid base64"
  printf '%s' '${userDataJson()}' > "$dir/.user-data"
  printf '%s%s%s' '${aroundVm[0]}' "$vm" '${aroundVm[1]}' > "$dir/.metadata"
  mv "$dir/.settings" "$dir/${SETTINGS_FILES[0]}"
  mv "$dir/.user-data" "$dir/${SETTINGS_FILES[1]}"
  mv "$dir/.metadata" "$dir/${SETTINGS_FILES[2]}"
  rm -f "$dir"/.part-*
  echo installed
`,
    'snapshot-disk': `
  setup
  img="$D/disks/$cid/disk.img"
  [ -f "$img" ] || exit "$E_NOT_FOUND"
  lock_disk "$cid"
  tmp=$(fresh_name "$D/snapshots" creating "$snap")
  mkdir "$tmp"
  mp=""
  vm=$(mounted_under "$cid")
  [ -n "$vm" ] && mp="$D/mounts/$vm/$cid"
  trap 'rm -rf "$tmp"; [ -n "$mp" ] && fsfreeze -u "$mp" 2>/dev/null; rm -f "$D/locks/$cid.frozen"; true' EXIT
  if [ -n "$mp" ]; then
    printf '%s' "$mp" > "$D/locks/$cid.frozen"
    fsfreeze -f "$mp"
    echo "frozen $vm"
  fi
  cp --sparse=always "$img" "$tmp/disk.img"
  if [ -n "$mp" ]; then fsfreeze -u "$mp"; mp=""; rm -f "$D/locks/$cid.frozen"; fi
  printf '%s' "$meta" > "$tmp/metadata.json"
  mv "$tmp" "$D/snapshots/$snap"
  trap - EXIT
  echo "created $snap"
`,
    'delete-snapshot': `
  [ -d "$D/snapshots/$snap" ] || exit "$E_NOT_FOUND"
  gone=$(fresh_name "$D/snapshots" deleting "$snap")
  mv "$D/snapshots/$snap" "$gone"
  rm -rf "$gone"
`,
    'resize-disk': `
  setup
  img="$D/disks/$cid/disk.img"
  [ -f "$img" ] || exit "$E_NOT_FOUND"
  lock_disk "$cid"
  vm=$(holder_of "$cid")
  [ -n "$vm" ] && die "$E_IN_USE_ELSEWHERE" "attached $vm"
  loops_gone "$img" || die "$E_BUSY" "disk image is in use by a loop device"
  cur=$(stat -c %s "$img")
  [ $(( $size * 1048576 )) -lt "$cur" ] && die "$E_SMALLER_SIZE" "disk is $(( cur / 1048576 )) MiB; shrinking to $size MiB is not supported"
  if [ $(( $size * 1048576 )) -eq "$cur" ]; then echo "size $cur"; exit 0; fi
  # Grow a copy and rename it over the original: a crash at any point leaves the old disk whole.
  work="$D/disks/$cid/.resizing"
  trap 'rm -f "$work"' EXIT
  cp --sparse=always "$img" "$work"
  grow_fs "$work" "$size"
  sync "$work"
  mv "$work" "$img"
  trap - EXIT
  echo "size $(stat -c %s "$img")"
`,
    'isolate-vm-root': `
  # After the container (re)started: see isolate_vm_root.
  isolate_vm_root "$pid"
`,
    'vm-started': `
  # create_vm, once the container runs: isolate_vm_root, then wait for its start command to have
  # copied the staged settings in (start-command.ts), so they are in place when create_vm returns.
  # The staged files are not needed again (the marker stays in the VM): removed, the directory kept.
  isolate_vm_root "$pid"
  [ "$pid" != 0 ] || exit 0
  n=0
  until [ -e "/proc/$pid/root${SETTINGS_DIR}/${STAGED_MARKER}" ]; do
    [ -d "/proc/$pid" ] || die 1 "the VM's start command ended before it installed the agent settings (see the container's log)"
    n=$((n + 1))
    [ "$n" -le 300 ] || die 1 "the VM's start command did not install the agent settings within 30 s"
    sleep 0.1
  done
  rm -f "$D/settings/$vm"/*
`,
    'net-cls-hierarchy': `
  # Only the initial cgroup namespace may bind a controller to a new hierarchy, so VMs (private
  # cgroup namespaces) can mount net_cls only once this has run. The mount is made in a mount
  # namespace of its own and dropped; the child cgroup bosh-cpi keeps the hierarchy alive.
  [ -f /sys/fs/cgroup/cgroup.controllers ] && exit 0
  h=$(awk '$1 == "net_cls" && $4 == 1 { print $2 }' /proc/cgroups)
  [ "$h" = 0 ] || exit 0
  o=$(awk '$4 == 1 && $2 == 0 && ($1 == "net_cls" || $1 == "net_prio") { printf "%s%s", s, $1; s = "," }' /proc/cgroups)
  # The helper is in the initial cgroup namespace (the engine's default on cgroup v1 hosts).
  unshare -m --propagation private -- /bin/sh -c '
    d=$(mktemp -d) || exit 1
    mount -t cgroup -o "$1" cgroup "$d" || { rmdir "$d"; exit 1; }
    mkdir -p "$d/bosh-cpi"; r=$?; umount "$d"; rmdir "$d"; exit $r' net-cls "$o" ||
    die 1 "cannot bind $o to a cgroup hierarchy"
`,
    'set-default-route': `
  # The engine picks the default route by network name; this sets the one the manifest asks for.
  nsenter -t "$pid" -n ip route replace default via "$gateway" || die 1 "cannot set the default route via $gateway"
`,
  };
}

function dispatcher(): string {
  const bodies = operationBodies();
  const branches = Object.entries(HOST_OPERATIONS).map(([op, { args }]) => {
    const required = args.filter((a) => !a.optional).length;
    const usage = args.map((a) => (a.optional ? `[${a.name}]` : a.name)).join(' ');
    const bind = args.map((a, i) => (a.optional ? `${a.name}=\${${i + 1}:-}` : `${a.name}=$${i + 1}`));
    return [
      `${op})`,
      ...(required ? [`  [ $# -ge ${required} ] || die 2 "${op} takes: ${usage}"`] : []),
      ...(bind.length ? [`  ${bind.join('; ')}`] : []),
      bodies[op as HostOperationName].replace(/^\n|\n$/g, ''),
      '  ;;',
    ].join('\n');
  });
  return `case "$op" in\n${branches.join('\n')}\n*)\n  die 2 "unknown operation $op"\n  ;;\nesac\n`;
}

const exitCodes = Object.entries(HOST_EXIT_CODES)
  .map(([name, code]) => `${SHELL_NAMES[name as HostOutcomeName]}=${code}`)
  .join('; ');

let script: string | undefined;

/** The host script (see the top of this file), built on first use. */
export const hostScript = (): string => {
  script ??= scriptText();
  return script;
};

const scriptText = () => `
set -eu
op=$1; D=$2; shift 2
${exitCodes}
${PREAMBLE}
# Operations on disks/ alone (which a host restart does not unmount) skip the check.
case $op in setup | has-disk | read-disk-metadata | set-disk-metadata) ;; *) ready ;; esac
${dispatcher()}`;
