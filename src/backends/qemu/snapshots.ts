import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DiskCid, Metadata, SnapshotCid, VmCid } from '../../cpi/types.ts';
import { cloudError, diskNotFound } from '../../rpc/errors.ts';
import { syncDirectory, writeJsonAtomic } from '../../util/atomic-file.ts';
import type { QemuContext } from './context.ts';
import { readDisk, readVmRecord, requireDiskId, withDisk, withVmAndDisk } from './disk-store.ts';
import { isPlugged } from './hotplug.ts';
import { diskNodeName, isId, newId } from './ids.ts';
import { runningPid } from './machine.ts';
import { withQmp } from './qmp.ts';
import type { DiskRecord, SnapshotRecord } from './records.ts';
import { grantFile, revokeFile } from './run-as.ts';

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
export async function snapshotDisk(
  ctx: QemuContext,
  diskCid: DiskCid,
  metadata: Metadata,
): Promise<SnapshotCid> {
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
  vmCid: VmCid | undefined,
  metadata: Metadata,
): Promise<SnapshotCid> {
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
      // The VM's QEMU writes the copy: hand it the target (run-as.ts) for the job's duration.
      const runAs = (await readVmRecord(ctx, vmCid))?.run_as;
      await grantFile(ctx, runAs, target);
      try {
        await backup(qmpPath, disk.serial, target, cid);
      } finally {
        await revokeFile(runAs, target);
      }
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
async function backup(qmpPath: string, serial: string, target: string, snapCid: SnapshotCid): Promise<void> {
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

export async function deleteSnapshot(ctx: QemuContext, snapshotCid: SnapshotCid): Promise<void> {
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
