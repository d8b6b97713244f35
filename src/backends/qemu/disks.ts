import { open, readdir, rename, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CloudProperties, DiskHint, Metadata } from '../../cpi/types.ts';
import { cloudError, diskNotAttached, diskNotFound, notSupported, vmNotFound } from '../../rpc/errors.ts';
import { readJsonIfExists, syncDirectory, writeJsonAtomic } from '../../util/atomic-file.ts';
import { runChecked } from '../../util/command.ts';
import { diskHint, updatePersistentDisks } from './agent-env.ts';
import type { QemuContext } from './context.ts';
import { attachedDiskCids, isPlugged, plug, unplug } from './hotplug.ts';
import { diskNodeName, diskSerial, isId, newId } from './ids.ts';
import { type AttachedDisk, runningPid } from './machine.ts';
import { withQmp } from './qmp.ts';
import type { DiskRecord, SnapshotRecord, VmRecord } from './records.ts';

/**
 * Persistent disks are qcow2 images, hot-plugged into running VMs as virtio-blk devices whose
 * serial is derived from the disk CID (the hint is {"id": serial}).
 *
 * create_disk leaves a disk blank by default, as OpenStack volumes are: the agent of an
 * OpenStack/KVM stemcell partitions and formats an unformatted disk itself when it mounts it.
 * cloud_properties `{"filesystem": "ext4"}` formats the whole device instead, for stemcells
 * whose agent expects pre-formatted disks (UsePreformattedPersistentDisk); resize_disk can
 * then grow that file system too.
 */
const MiB = 1024 * 1024;

const readDisk = (ctx: QemuContext, cid: string) => readJsonIfExists<DiskRecord>(ctx.data.disk(cid).record);
const readVmRecord = (ctx: QemuContext, cid: string) =>
  isId('vm', cid) ? readJsonIfExists<VmRecord>(ctx.data.vm(cid).record) : Promise.resolve(undefined);

function requireDiskId(diskCid: string): void {
  if (!isId('disk', diskCid)) throw diskNotFound(diskCid);
}

function filesystemOf(props: CloudProperties): 'ext4' | null {
  const fs = props.filesystem;
  if (fs === undefined || fs === null || fs === 'none') return null;
  if (fs === 'ext4') return 'ext4';
  throw cloudError(`cloud_properties.filesystem must be "ext4" or "none", got ${JSON.stringify(fs)}`);
}

export async function createDisk(
  ctx: QemuContext,
  sizeMiB: number,
  props: CloudProperties,
  vmCid: string | null,
): Promise<string> {
  const filesystem = filesystemOf(props);
  await ctx.data.ensure();
  await ctx.data.sweepStaging();
  const cid = newId('disk');
  const staging = await ctx.data.staging('disk');
  try {
    const image = join(staging, 'disk.qcow2');
    if (filesystem === 'ext4') {
      const raw = join(staging, 'disk.raw');
      await (await open(raw, 'w', 0o600)).close();
      await truncate(raw, sizeMiB * MiB);
      await runChecked('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=1,lazy_journal_init=1', raw], {
        timeoutMs: 10 * 60_000,
      });
      await ctx.img.convert(raw, 'raw', image, 'qcow2');
      await rm(raw, { force: true });
    } else {
      await ctx.img.create(image, sizeMiB * MiB);
    }
    const record: DiskRecord = {
      cid,
      serial: diskSerial(cid),
      size_mib: sizeMiB,
      filesystem,
      cloud_properties: props,
      created_at: new Date().toISOString(),
      attached_to: null,
      metadata: {},
    };
    await writeJsonAtomic(join(staging, 'disk.json'), record);
    await rename(staging, ctx.data.disk(cid).dir);
    await syncDirectory(ctx.data.disks);
    ctx.logger.info(
      `Created disk ${cid} (${sizeMiB} MiB${filesystem ? `, ${filesystem}` : ', blank'}${vmCid ? `, for VM ${vmCid}` : ''})`,
    );
    return cid;
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw e;
  }
}

export async function hasDisk(ctx: QemuContext, diskCid: string): Promise<boolean> {
  return isId('disk', diskCid) && (await readDisk(ctx, diskCid)) !== undefined;
}

/** Runs `step` with the disk's lock and record; DiskNotFound when there is none. */
function withDisk<T>(
  ctx: QemuContext,
  diskCid: string,
  step: (record: DiskRecord) => Promise<T>,
): Promise<T> {
  requireDiskId(diskCid);
  return ctx.locked(
    ctx.data.disk(diskCid).dir,
    async () => {
      const record = await readDisk(ctx, diskCid);
      if (!record) throw diskNotFound(diskCid);
      return step(record);
    },
    () => {
      throw diskNotFound(diskCid);
    },
  );
}

const saveDisk = (ctx: QemuContext, record: DiskRecord) =>
  writeJsonAtomic(ctx.data.disk(record.cid).record, record);

/** The VM that really holds the disk, if any: a record naming a VM that is gone is stale. */
async function holder(ctx: QemuContext, record: DiskRecord): Promise<string | undefined> {
  if (!record.attached_to) return undefined;
  return (await readVmRecord(ctx, record.attached_to)) ? record.attached_to : undefined;
}

export async function deleteDisk(ctx: QemuContext, diskCid: string): Promise<void> {
  await withDisk(ctx, diskCid, async (record) => {
    const vm = await holder(ctx, record);
    if (vm) throw cloudError(`Disk '${diskCid}' is attached to VM '${vm}'; detach it before deleting it`);
    await ctx.data.removeDir(ctx.data.disk(diskCid).dir);
    ctx.logger.info(`Deleted disk ${diskCid}`);
  });
}

export async function setDiskMetadata(ctx: QemuContext, diskCid: string, metadata: Metadata): Promise<void> {
  await withDisk(ctx, diskCid, (record) => saveDisk(ctx, { ...record, metadata }));
}

/** Disk CIDs whose records say they are attached to the VM. */
export async function disksAttachedTo(ctx: QemuContext, vmCid: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(ctx.data.disks);
  } catch {
    return [];
  }
  const cids: string[] = [];
  for (const name of names) {
    if (isId('disk', name) && (await readDisk(ctx, name))?.attached_to === vmCid) cids.push(name);
  }
  return cids.sort();
}

export const attachedDisk = (ctx: QemuContext, cid: string): AttachedDisk => ({
  cid,
  serial: diskSerial(cid),
  image: ctx.data.disk(cid).image,
});

/** After the VM's QEMU is gone: its disks are recorded as detached (the caller holds the VM's lock). */
export async function releaseDisksOf(ctx: QemuContext, vmCid: string): Promise<void> {
  for (const cid of await disksAttachedTo(ctx, vmCid)) {
    await ctx.locked(
      ctx.data.disk(cid).dir,
      async () => {
        const record = await readDisk(ctx, cid);
        if (record?.attached_to === vmCid) await saveDisk(ctx, { ...record, attached_to: null });
      },
      () => undefined,
    );
  }
}

/** Locks the VM, then the disk (always in this order, so two calls never wait on each other). */
function withVmAndDisk<T>(
  ctx: QemuContext,
  vmCid: string,
  diskCid: string,
  step: (vm: VmRecord, disk: DiskRecord) => Promise<T>,
  onVmMissing: () => Promise<T>,
): Promise<T> {
  requireDiskId(diskCid);
  if (!isId('vm', vmCid)) return onVmMissing();
  return ctx.locked(
    ctx.data.vm(vmCid).dir,
    async () => {
      const vm = await readVmRecord(ctx, vmCid);
      if (!vm) return onVmMissing();
      return withDisk(ctx, diskCid, (disk) => step(vm, disk));
    },
    onVmMissing,
  );
}

export async function attachDisk(ctx: QemuContext, vmCid: string, diskCid: string): Promise<DiskHint> {
  return withVmAndDisk(
    ctx,
    vmCid,
    diskCid,
    async (_vm, disk) => {
      const other = await holder(ctx, disk);
      if (other && other !== vmCid)
        throw cloudError(
          `Disk '${diskCid}' is attached to VM '${other}'; detach it there before attaching it to '${vmCid}'`,
        );
      if (!(await runningPid(ctx, vmCid)))
        throw cloudError(`VM '${vmCid}' is not running (its QEMU is gone); reboot_vm starts it again`);
      await withQmp(ctx.data.vm(vmCid).qmp, async (qmp) => {
        if (!(await isPlugged(qmp, disk.serial))) await plug(qmp, attachedDisk(ctx, diskCid));
        await saveDisk(ctx, { ...disk, attached_to: vmCid });
        await updatePersistentDisks(ctx, vmCid, await attachedDiskCids(ctx.data, qmp), qmp);
      });
      ctx.logger.info(`Attached disk ${diskCid} to VM ${vmCid} (virtio serial ${disk.serial})`);
      return diskHint(diskCid);
    },
    () => {
      throw vmNotFound(vmCid);
    },
  );
}

export async function detachDisk(ctx: QemuContext, vmCid: string, diskCid: string): Promise<void> {
  await withVmAndDisk(
    ctx,
    vmCid,
    diskCid,
    async (_vm, disk) => {
      if (await runningPid(ctx, vmCid)) {
        await withQmp(ctx.data.vm(vmCid).qmp, async (qmp) => {
          const plugged = await isPlugged(qmp, disk.serial);
          if (!plugged && disk.attached_to !== vmCid) throw diskNotAttached(vmCid, diskCid);
          if (plugged) await unplug(qmp, disk.serial, ctx.props.detach_timeout_seconds * 1000);
          await saveDisk(ctx, { ...disk, attached_to: null });
          await updatePersistentDisks(ctx, vmCid, await attachedDiskCids(ctx.data, qmp), qmp);
        });
      } else {
        if (disk.attached_to !== vmCid) throw diskNotAttached(vmCid, diskCid);
        await saveDisk(ctx, { ...disk, attached_to: null });
        await updatePersistentDisks(ctx, vmCid, await disksAttachedTo(ctx, vmCid), undefined);
      }
      ctx.logger.info(`Detached disk ${diskCid} from VM ${vmCid}`);
    },
    async () => {
      // The VM is gone; a record that still names it is stale.
      if (isId('disk', diskCid))
        await ctx.locked(
          ctx.data.disk(diskCid).dir,
          async () => {
            const record = await readDisk(ctx, diskCid);
            if (record?.attached_to === vmCid) await saveDisk(ctx, { ...record, attached_to: null });
          },
          () => undefined,
        );
      throw vmNotFound(vmCid);
    },
  );
}

/** From QMP query-block while QEMU runs; from the records when it does not (they name what a restart attaches). */
export async function getDisks(ctx: QemuContext, vmCid: string): Promise<string[]> {
  if (!(await readVmRecord(ctx, vmCid))) throw vmNotFound(vmCid);
  if (await runningPid(ctx, vmCid))
    return withQmp(ctx.data.vm(vmCid).qmp, (qmp) => attachedDiskCids(ctx.data, qmp));
  return disksAttachedTo(ctx, vmCid);
}

const EXT_MAGIC_OFFSET = 1024 + 56;

/** True when the disk holds an ext2/3/4 file system on the whole device (no partition table). */
async function hasWholeDeviceExt(ctx: QemuContext, image: string, scratch: string): Promise<boolean> {
  const head = join(scratch, 'head.raw');
  await ctx.img.head(image, 'qcow2', head, 4096);
  const handle = await open(head, 'r');
  try {
    const magic = Buffer.alloc(2);
    await handle.read(magic, 0, 2, EXT_MAGIC_OFFSET);
    return magic.readUInt16LE(0) === 0xef53;
  } finally {
    await handle.close();
  }
}

/**
 * Grows a detached disk. A whole-device ext file system grows with it: the content is copied to
 * a sparse raw file, checked and resized there, and converted back; the original stays
 * untouched until the new image is renamed over it. A blank or partitioned disk only gets
 * bigger (the agent owns its partitions).
 */
export async function resizeDisk(ctx: QemuContext, diskCid: string, newSizeMiB: number): Promise<void> {
  await withDisk(ctx, diskCid, async (record) => {
    const vm = await holder(ctx, record);
    if (vm) throw cloudError(`Disk '${diskCid}' is attached to VM '${vm}'; detach it before resizing it`);
    const paths = ctx.data.disk(diskCid);
    const current = (await ctx.img.info(paths.image, 'qcow2')).virtualSize;
    const target = newSizeMiB * MiB;
    if (target < current)
      throw notSupported(
        `Disk '${diskCid}' is ${Math.ceil(current / MiB)} MiB; shrinking it to ${newSizeMiB} MiB is not supported`,
      );
    if (target === current) return;
    const scratch = await ctx.data.staging('resize');
    try {
      if (await hasWholeDeviceExt(ctx, paths.image, scratch)) {
        const raw = join(scratch, 'disk.raw');
        const grown = join(scratch, 'disk.qcow2');
        await ctx.img.convert(paths.image, 'qcow2', raw, 'raw');
        await truncate(raw, target);
        // e2fsck exits 1 when it corrected something: fine for a file system about to grow.
        await runChecked('e2fsck', ['-f', '-p', raw], { timeoutMs: 60 * 60_000, okExitCodes: [0, 1] });
        await runChecked('resize2fs', [raw], { timeoutMs: 60 * 60_000 });
        await ctx.img.convert(raw, 'raw', grown, 'qcow2');
        await rename(grown, paths.image);
        await syncDirectory(paths.dir);
        ctx.logger.info(`Resized disk ${diskCid} and its ext4 file system to ${newSizeMiB} MiB`);
      } else {
        await ctx.img.resize(paths.image, target);
        ctx.logger.info(`Resized disk ${diskCid} to ${newSizeMiB} MiB (no whole-device file system to grow)`);
      }
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
    await saveDisk(ctx, { ...record, size_mib: newSizeMiB });
  });
}

interface JobInfo {
  id: string;
  status: string;
  error?: string;
}

/**
 * A point-in-time copy of a disk. Attached to a running VM: a QEMU backup job (sync=full) into
 * a new qcow2, so the copy is consistent as of the moment the job starts (crash-consistent;
 * the guest is not asked to flush). Detached: qemu-img copies it.
 */
export async function snapshotDisk(ctx: QemuContext, diskCid: string, metadata: Metadata): Promise<string> {
  requireDiskId(diskCid);
  const known = await readDisk(ctx, diskCid);
  if (!known) throw diskNotFound(diskCid);
  const vmCid =
    known.attached_to && (await readVmRecord(ctx, known.attached_to)) ? known.attached_to : undefined;
  if (!vmCid) return withDisk(ctx, diskCid, (record) => snapshotLocked(ctx, record, undefined, metadata));
  return withVmAndDisk(
    ctx,
    vmCid,
    diskCid,
    (_vm, record) => snapshotLocked(ctx, record, record.attached_to === vmCid ? vmCid : undefined, metadata),
    () => withDisk(ctx, diskCid, (record) => snapshotLocked(ctx, record, undefined, metadata)),
  );
}

async function snapshotLocked(
  ctx: QemuContext,
  disk: DiskRecord,
  vmCid: string | undefined,
  metadata: Metadata,
): Promise<string> {
  const cid = newId('snap');
  const staging = await ctx.data.staging('snapshot');
  const target = join(staging, 'snapshot.qcow2');
  try {
    const source = ctx.data.disk(disk.cid).image;
    let taken: SnapshotRecord['taken'] = 'offline';
    const running = vmCid !== undefined && (await runningPid(ctx, vmCid)) !== undefined;
    const qmpPath = vmCid ? ctx.data.vm(vmCid).qmp : '';
    if (running && (await withQmp(qmpPath, (qmp) => isPlugged(qmp, disk.serial)))) {
      taken = 'backup-job';
      await ctx.img.create(target, (await ctx.img.info(source, 'qcow2')).virtualSize);
      await backup(qmpPath, disk.serial, target, cid);
    } else {
      await ctx.img.convert(source, 'qcow2', target, 'qcow2');
    }
    const record: SnapshotRecord = {
      cid,
      disk_cid: disk.cid,
      size_mib: disk.size_mib,
      created_at: new Date().toISOString(),
      taken,
      metadata,
    };
    await writeJsonAtomic(join(staging, 'snapshot.json'), record);
    await ctx.data.ensure();
    await rename(staging, ctx.data.snapshot(cid).dir);
    await syncDirectory(ctx.data.snapshots);
    ctx.logger.info(
      `Snapshot ${cid} of disk ${disk.cid} (${taken === 'backup-job' ? `backup job in VM ${vmCid}` : 'offline copy'})`,
    );
    return cid;
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw e;
  }
}

/** Runs a blockdev-backup job into `target`; the job is polled over short QMP sessions so other calls can use QMP meanwhile. */
async function backup(qmpPath: string, serial: string, target: string, snapCid: string): Promise<void> {
  const node = `snapn-${snapCid.slice(5, 17)}`;
  const jobId = `snapjob-${snapCid.slice(5, 17)}`;
  await withQmp(qmpPath, async (qmp) => {
    await qmp.execute('blockdev-add', {
      driver: 'qcow2',
      'node-name': node,
      file: { driver: 'file', filename: target },
    });
    try {
      await qmp.execute('blockdev-backup', {
        'job-id': jobId,
        device: diskNodeName(serial),
        target: node,
        sync: 'full',
        'auto-dismiss': false,
      });
    } catch (e) {
      await qmp.execute('blockdev-del', { 'node-name': node }).catch(() => undefined);
      throw e;
    }
  });
  let job: JobInfo | undefined;
  try {
    for (;;) {
      job = await withQmp(qmpPath, async (qmp) =>
        (await qmp.execute<JobInfo[]>('query-jobs')).find((j) => j.id === jobId),
      );
      if (!job || job.status === 'concluded' || job.status === 'null') break;
      await sleep(250);
    }
  } finally {
    await withQmp(qmpPath, async (qmp) => {
      if (job && job.status !== 'concluded' && job.status !== 'null')
        await qmp.execute('job-cancel', { id: jobId }).catch(() => undefined);
      await qmp.execute('job-dismiss', { id: jobId }).catch(() => undefined);
      await qmp.execute('blockdev-del', { 'node-name': node }).catch(() => undefined);
    });
  }
  if (!job) throw cloudError(`The backup job of disk serial ${serial} vanished`);
  if (job.error) throw cloudError(`The backup job of disk serial ${serial} failed: ${job.error}`);
}

export async function deleteSnapshot(ctx: QemuContext, snapshotCid: string): Promise<void> {
  if (!isId('snap', snapshotCid)) return;
  const dir = ctx.data.snapshot(snapshotCid).dir;
  await ctx.locked(
    dir,
    async () => {
      await ctx.data.removeDir(dir);
      ctx.logger.info(`Deleted snapshot ${snapshotCid}`);
    },
    () => undefined,
  );
}
