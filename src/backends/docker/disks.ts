import type { AgentSettings } from '../../agent/settings.ts';
import type { CloudProperties, DiskCid, DiskHint, Metadata, SnapshotCid, VmCid } from '../../cpi/types.ts';
import {
  cloudError,
  diskNotAttached,
  diskNotFound,
  noDiskSpace,
  notSupported,
  vmNotFound,
} from '../../rpc/errors.ts';
import type { DockerContext } from './context.ts';
import { execInContainer } from './engine/exec.ts';
import type { HostResult } from './helper.ts';
import { DATA_DIR_PATHS } from './host-script.ts';
import { isId, newId, parseId } from './ids.ts';
import { diskHint, readSettings, syncPersistentDisks } from './settings-file.ts';
import { findVm, isolateVmRoot, mountDisksForVm, requireVm, startContainer } from './vms.ts';

/** Seconds detach waits for the VM to stop using a disk before it reports it busy. */
const DETACH_BUSY_WAIT_S = 10;

const disksOf = (res: HostResult): DiskCid[] =>
  res.lines.flatMap(([k, v]) => (k === 'disk' ? (parseId('disk', v) ?? []) : []));

function fail(res: HostResult, what: string): never {
  if (res.outcome === 'noSpace') throw noDiskSpace(`${what}: ${res.stderr}`);
  throw cloudError(`${what}: ${res.stderr || `the host operation exited with ${res.exitCode}`}`);
}

/** The VM a disk is mounted for, from the host script's "attached <vm_cid>" message. */
const holderOf = (res: HostResult) => parseId('vm', /attached (vm-[0-9a-f-]+)/.exec(res.stderr)?.[1] ?? '');

function snapshotSource(value: unknown): SnapshotCid {
  const source = typeof value === 'string' ? parseId('snap', value) : undefined;
  if (!source)
    throw cloudError(`cloud_properties.snapshot_cid '${String(value)}' is not a snapshot ID of this CPI`);
  return source;
}

function requireDiskId(diskCid: DiskCid): void {
  if (!isId('disk', diskCid)) throw diskNotFound(diskCid);
}

export async function createDisk(
  ctx: DockerContext,
  sizeMiB: number,
  props: CloudProperties,
  vmCid: VmCid | null,
): Promise<DiskCid> {
  const source = props.snapshot_cid === undefined ? undefined : snapshotSource(props.snapshot_cid);
  const cid = newId('disk');
  const metadata = {
    created_at: new Date().toISOString(),
    director: ctx.directorUuid,
    size_mib: sizeMiB,
    cloud_properties: props,
    ...(vmCid ? { near_vm: vmCid } : {}),
  };
  const res = await ctx.logger.timed('create-disk', () =>
    ctx.host.run('create-disk', [cid, sizeMiB, { cpi: metadata, bosh: {} }, source]),
  );
  if (res.outcome === 'notFound') throw cloudError(`Snapshot '${source}' not found`);
  if (res.outcome !== 'done') fail(res, `Creating a ${sizeMiB} MiB disk failed`);
  ctx.logger.info(`Created disk ${cid} (${sizeMiB} MiB ext4${source ? `, from snapshot ${source}` : ''})`);
  return cid;
}

export async function deleteDisk(ctx: DockerContext, diskCid: DiskCid): Promise<void> {
  requireDiskId(diskCid);
  let res = await ctx.host.run('delete-disk', [diskCid]);
  if (res.outcome === 'inUseElsewhere') {
    const holder = holderOf(res);
    if (!holder) fail(res, `Disk '${diskCid}' is in use`);
    if (await findVm(ctx, holder))
      throw cloudError(`Disk '${diskCid}' is attached to VM '${holder}'; detach it before deleting it`);
    await releaseStale(ctx, holder, diskCid);
    res = await ctx.host.run('delete-disk', [diskCid]);
  }
  if (res.outcome === 'notFound') throw diskNotFound(diskCid);
  if (res.outcome !== 'done') fail(res, `Deleting disk '${diskCid}' failed`);
  ctx.logger.info(`Deleted disk ${diskCid}`);
}

export async function hasDisk(ctx: DockerContext, diskCid: DiskCid): Promise<boolean> {
  if (!isId('disk', diskCid)) return false;
  if ((await ctx.host.look(DATA_DIR_PATHS.diskImage(diskCid))) === 'file') return true;
  const res = await ctx.host.run('has-disk', [diskCid]);
  if (res.outcome === 'notFound') return false;
  if (res.outcome !== 'done') fail(res, `Looking up disk '${diskCid}' failed`);
  return true;
}

/**
 * Merges the Director's metadata into the disk's record (the one written at creation stays). The
 * host replaces the file only if it is still what was read, under the disk's lock, so concurrent
 * calls each land their keys.
 */
export async function setDiskMetadata(
  ctx: DockerContext,
  diskCid: DiskCid,
  metadata: Metadata,
): Promise<void> {
  requireDiskId(diskCid);
  for (let attempt = 1; ; attempt++) {
    const current = await readDiskMetadata(ctx, diskCid);
    const merged = mergeDiskMetadata(current, metadata, new Date().toISOString());
    const res = await ctx.host.run('set-disk-metadata', [diskCid, current, merged]);
    if (res.outcome === 'notFound') throw diskNotFound(diskCid);
    if (res.outcome === 'changed' && attempt < 10) continue;
    if (res.outcome === 'changed')
      throw cloudError(`Setting metadata of disk '${diskCid}' failed: it kept changing concurrently`, true);
    if (res.outcome !== 'done') fail(res, `Setting metadata of disk '${diskCid}' failed`);
    return;
  }
}

/** The disk's metadata record as text: seen by the helper, else read on the host (a missing record is ""). */
async function readDiskMetadata(ctx: DockerContext, diskCid: DiskCid): Promise<string> {
  const seen = await ctx.host.readText(DATA_DIR_PATHS.diskMetadata(diskCid));
  if (seen !== undefined) return seen;
  const read = await ctx.host.run('read-disk-metadata', [diskCid]);
  if (read.outcome === 'notFound') throw diskNotFound(diskCid);
  if (read.outcome !== 'done') fail(read, `Reading the metadata of disk '${diskCid}' failed`);
  const encoded = read.lines.find(([k]) => k === 'metadata')?.[1] ?? '';
  // As set-disk-metadata compares it: $(cat …), which drops trailing newlines.
  return Buffer.from(encoded, 'base64').toString('utf8').replace(/\n+$/, '');
}

/** The record with the Director's keys merged into `bosh`; an unreadable record is kept as text. */
export function mergeDiskMetadata(current: string, metadata: Metadata, now: string): Record<string, unknown> {
  let record: Record<string, unknown>;
  try {
    const parsed: unknown = current ? JSON.parse(current) : {};
    record =
      parsed && typeof parsed === 'object' && !Array.isArray(parsed)
        ? (parsed as Record<string, unknown>)
        : { unparsed: current };
  } catch {
    record = { unparsed: current };
  }
  const previous = record.bosh && typeof record.bosh === 'object' ? (record.bosh as Metadata) : {};
  return { ...record, bosh: { ...previous, ...metadata }, updated_at: now };
}

/** A disk still mounted for a VM whose container is gone (a delete_vm killed half-way): release it. */
async function releaseStale(ctx: DockerContext, vmCid: VmCid, diskCid: DiskCid): Promise<void> {
  ctx.logger.warn(`Disk ${diskCid} was still mounted for VM ${vmCid}, which no longer exists; releasing it`);
  const res = await ctx.host.run('release-disk', [vmCid, diskCid]);
  if (res.outcome !== 'done') fail(res, `Releasing disk '${diskCid}' from the removed VM '${vmCid}' failed`);
}

/**
 * Starts reading the VM's settings file, to overlap with a host operation that does not depend on
 * it (both take ~50 ms of engine time): detach's listing of the mounts. Its result,
 * or error, is awaited where it is used. Never while detach unmounts: an archive request makes
 * dockerd hold a private recursive bind of every mount of the container (the persistent disks
 * included), so an unmount at that moment leaves the loop device busy until the request ends.
 */
function prefetchSettings(ctx: DockerContext, containerId: string): Promise<AgentSettings | undefined> {
  const read = readSettings(ctx.containers, containerId);
  read.catch(() => {}); // a host operation that fails first leaves it unawaited
  return read;
}

/**
 * Brings the settings file in line with the disks really mounted. Concurrent attach/detach
 * calls on one VM can interleave their writes, so the mounts are read again after writing and
 * the file is rewritten until both agree.
 */
export async function syncSettings(
  ctx: DockerContext,
  containerId: string,
  vmCid: VmCid,
  mounted: DiskCid[],
  prefetched?: Promise<AgentSettings | undefined>,
): Promise<void> {
  let disks = mounted;
  for (let attempt = 0; attempt < 5; attempt++) {
    const current = attempt === 0 ? prefetched : undefined;
    // Nothing written (the file already named exactly these disks): nothing of ours to check.
    if (!(await syncPersistentDisks(ctx.containers, containerId, vmCid, disks, current))) return;
    const now = disksOf(await ctx.host.run('list-disks', [vmCid]));
    if (now.length === disks.length && now.every((d) => disks.includes(d))) return;
    disks = now;
  }
  // The settings may now name a disk that is not mounted (or miss one that is): the agent must
  // not act on them, so the call fails and the Director retries it.
  throw cloudError(
    `The agent settings of VM '${vmCid}' could not be brought in line with its mounted disks: the disks kept changing while they were written`,
    true,
  );
}

/** The PID of the container's init on the host, 0 while it is not running. */
async function containerPid(ctx: DockerContext, containerId: string): Promise<number> {
  const inspected = await ctx.containers.inspect(containerId);
  return inspected?.State.Running ? inspected.State.Pid : 0;
}

export async function attachDisk(ctx: DockerContext, vmCid: VmCid, diskCid: DiskCid): Promise<DiskHint> {
  const vm = await requireVm(ctx, vmCid);
  requireDiskId(diskCid);
  // Read before the host operation, not during it: attach-disk may make the VM's root private
  // (isolate_vm_root), and an archive request under way at that moment leaves its binds in the VM.
  const [current, pid] = await Promise.all([readSettings(ctx.containers, vm.Id), containerPid(ctx, vm.Id)]);
  const settings = Promise.resolve(current);
  let res = await ctx.host.run('attach-disk', [vmCid, diskCid, pid]);
  if (res.outcome === 'inUseElsewhere') {
    const holder = holderOf(res);
    if (!holder) fail(res, `Disk '${diskCid}' is in use`);
    if (await findVm(ctx, holder))
      throw cloudError(
        `Disk '${diskCid}' is attached to VM '${holder}'; detach it there before attaching it to '${vmCid}'`,
      );
    await releaseStale(ctx, holder, diskCid);
    res = await ctx.host.run('attach-disk', [vmCid, diskCid, pid]);
  }
  if (res.outcome === 'notFound') throw diskNotFound(diskCid);
  if (res.outcome !== 'done') fail(res, `Attaching disk '${diskCid}' to VM '${vmCid}' failed`);
  await syncSettings(ctx, vm.Id, vmCid, disksOf(res), settings);
  ctx.logger.info(`Attached disk ${diskCid} to VM ${vmCid} at ${diskHint(diskCid)}`);
  if (vm.State === 'exited' || vm.State === 'created') {
    // Stopped, e.g. its container could not start after a host reboot: with every disk its
    // settings name mounted again, it starts.
    const named = Object.keys((await readSettings(ctx.containers, vm.Id))?.disks?.persistent ?? {});
    await mountDisksForVm(ctx, vmCid, named);
    await startContainer(ctx, vm.Id);
    await isolateVmRoot(ctx, vm.Id, vmCid);
    ctx.logger.info(`Started VM ${vmCid}, which was stopped`);
  }
  return diskHint(diskCid);
}

export async function detachDisk(ctx: DockerContext, vmCid: VmCid, diskCid: DiskCid): Promise<void> {
  requireDiskId(diskCid);
  const vm = await findVm(ctx, vmCid);
  if (!vm) {
    if (isId('vm', vmCid)) await releaseStale(ctx, vmCid, diskCid);
    throw vmNotFound(vmCid);
  }
  // The settings must never name a disk that is not mounted: the agent would bind-mount an empty
  // directory onto /var/vcap/store and the job's data would land in the container. So the disk
  // leaves the settings before it is unmounted; a call killed in between leaves a mounted disk
  // the settings do not name yet, which the retry finishes.
  const settings = prefetchSettings(ctx, vm.Id);
  const mounted = disksOf(await ctx.host.run('list-disks', [vmCid]));
  await syncPersistentDisks(
    ctx.containers,
    vm.Id,
    vmCid,
    mounted.filter((d) => d !== diskCid),
    settings,
  );
  const pid = await containerPid(ctx, vm.Id);
  const detach = () => ctx.host.run('detach-disk', [vmCid, diskCid, pid, DETACH_BUSY_WAIT_S]);
  let res = await detach();
  let busy = '';
  // The agent's unmount_disk unmounts the hint path only, which leaves its bind mount of the disk
  // (/var/vcap/store) in the VM: those go first, inside the VM, where a process still using one
  // makes the unmount fail. Nested or repeated mounts of one path can take more than one round.
  for (let round = 0; res.outcome === 'leftInVm' && !busy; round++) {
    const leftovers = res.lines.filter(([k]) => k === 'leftover').map(([, path]) => unescapeMountPath(path));
    busy = round < 3 ? await unmountInVm(ctx, vm.Id, leftovers) : 'its mounts inside the VM keep coming back';
    if (!busy) res = await detach();
  }
  if (res.outcome === 'busy') busy = res.stderr;
  if (res.outcome !== 'done') {
    // Not detached (busy, not attached, ...): the settings go back to what is really mounted,
    // which also clears an entry left by an earlier detach that was killed after its unmount.
    await syncSettings(ctx, vm.Id, vmCid, disksOf(await ctx.host.run('list-disks', [vmCid])));
  }
  if (res.outcome === 'notFound') throw diskNotFound(diskCid);
  if (res.outcome === 'notAttached') throw diskNotAttached(vmCid, diskCid);
  if (busy) throw cloudError(`Disk '${diskCid}' cannot be detached from VM '${vmCid}': ${busy}`, true);
  if (res.outcome !== 'done') fail(res, `Detaching disk '${diskCid}' from VM '${vmCid}' failed`);
  await syncSettings(ctx, vm.Id, vmCid, disksOf(res));
  ctx.logger.info(`Detached disk ${diskCid} from VM ${vmCid}`);
}

/** Mount points in /proc/<pid>/mountinfo escape space, tab, newline and backslash as octal. */
const unescapeMountPath = (path: string) =>
  path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));

/**
 * Unmounts mounts of a disk that the agent left in the VM, deepest first, with the VM's own umount
 * (as the agent does), never lazily: a mount a process still uses stays, and the answer says so.
 * Returns '' when all are gone, else why not.
 */
async function unmountInVm(ctx: DockerContext, containerId: string, paths: string[]): Promise<string> {
  const script = `w=$1; shift
for p in "$@"; do
  n=0
  until out=$(umount "$p" 2>&1); do
    n=$((n + 1))
    [ "$n" -gt "$w" ] && { echo "still mounted inside the VM at $p, in use: $out" >&2; exit 1; }
    sleep 1
  done
done`;
  const deepestFirst = [...paths].sort((a, b) => b.length - a.length);
  ctx.logger.info(`Unmounting what the agent left mounted in the VM: ${deepestFirst.join(', ')}`);
  const res = await execInContainer(
    ctx.docker,
    containerId,
    ['/bin/sh', '-c', script, 'sh', String(DETACH_BUSY_WAIT_S), ...deepestFirst],
    'Unmounting the disk inside the VM',
  );
  if (res.exitCode === 0) return '';
  return (
    res.stderr.trim() || `unmounting ${deepestFirst.join(', ')} inside the VM exited with ${res.exitCode}`
  );
}

export async function getDisks(ctx: DockerContext, vmCid: VmCid): Promise<DiskCid[]> {
  await requireVm(ctx, vmCid);
  const res = await ctx.host.run('list-disks', [vmCid]);
  if (res.outcome !== 'done') fail(res, `Listing the disks of VM '${vmCid}' failed`);
  return disksOf(res).sort();
}

export async function resizeDisk(ctx: DockerContext, diskCid: DiskCid, newSizeMiB: number): Promise<void> {
  requireDiskId(diskCid);
  const res = await ctx.host.run('resize-disk', [diskCid, newSizeMiB]);
  if (res.outcome === 'notFound') throw diskNotFound(diskCid);
  if (res.outcome === 'smallerSize') throw notSupported(`Disk '${diskCid}': ${res.stderr}`);
  if (res.outcome === 'inUseElsewhere')
    throw cloudError(`Disk '${diskCid}' is ${res.stderr}: detach it before resizing`);
  if (res.outcome !== 'done') fail(res, `Resizing disk '${diskCid}' to ${newSizeMiB} MiB failed`);
  ctx.logger.info(`Resized disk ${diskCid} to ${newSizeMiB} MiB`);
}

/** Only the size can change, in place: the disk keeps its CID. */
export async function updateDisk(ctx: DockerContext, diskCid: DiskCid, newSizeMiB: number): Promise<DiskCid> {
  await resizeDisk(ctx, diskCid, newSizeMiB);
  return diskCid;
}

export async function snapshotDisk(
  ctx: DockerContext,
  diskCid: DiskCid,
  metadata: Metadata,
): Promise<SnapshotCid> {
  requireDiskId(diskCid);
  const cid = newId('snap');
  const meta = { disk_cid: diskCid, created_at: new Date().toISOString(), bosh: metadata };
  const res = await ctx.host.run('snapshot-disk', [diskCid, cid, meta]);
  if (res.outcome === 'notFound') throw diskNotFound(diskCid);
  if (res.outcome !== 'done') fail(res, `Snapshotting disk '${diskCid}' failed`);
  const frozen = res.lines.find(([k]) => k === 'frozen');
  ctx.logger.info(
    `Snapshot ${cid} of disk ${diskCid}${frozen ? ` (filesystem frozen in VM ${frozen[1]} during the copy)` : ''}`,
  );
  return cid;
}

export async function deleteSnapshot(ctx: DockerContext, snapshotCid: SnapshotCid): Promise<void> {
  if (!isId('snap', snapshotCid)) return;
  const res = await ctx.host.run('delete-snapshot', [snapshotCid]);
  if (res.outcome !== 'done' && res.outcome !== 'notFound')
    fail(res, `Deleting snapshot '${snapshotCid}' failed`);
}
