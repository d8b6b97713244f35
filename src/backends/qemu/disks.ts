import { open, rename, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import type { CloudProperties, DiskCid, DiskHint, Metadata, VmCid } from '../../cpi/types.ts';
import { cloudError, diskNotAttached, vmNotFound } from '../../rpc/errors.ts';
import { syncDirectory, writeJsonAtomic } from '../../util/atomic-file.ts';
import { runChecked } from '../../util/command.ts';
import { diskHint, updatePersistentDisks } from './agent-env.ts';
import type { QemuContext } from './context.ts';
import {
  attachedDisk,
  disksAttachedTo,
  holder,
  readDisk,
  readVmRecord,
  saveDisk,
  withDisk,
  withVmAndDisk,
} from './disk-store.ts';
import { attachedDiskCids, isPlugged, plug, releaseNode, unplug } from './hotplug.ts';
import { diskSerial, isId, newId } from './ids.ts';
import { runningPid } from './machine.ts';
import { withQmp } from './qmp.ts';
import type { DiskRecord } from './records.ts';
import { grantFile, type RunAs, revokeFile } from './run-as.ts';

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
  vmCid: VmCid | null,
): Promise<DiskCid> {
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

export async function hasDisk(ctx: QemuContext, diskCid: DiskCid): Promise<boolean> {
  return isId('disk', diskCid) && (await readDisk(ctx, diskCid)) !== undefined;
}

export async function deleteDisk(ctx: QemuContext, diskCid: DiskCid): Promise<void> {
  await withDisk(ctx, diskCid, async (record) => {
    const vm = await holder(ctx, record);
    if (vm) throw cloudError(`Disk '${diskCid}' is attached to VM '${vm}'; detach it before deleting it`);
    await ctx.data.removeDir(ctx.data.disk(diskCid).dir);
    ctx.logger.info(`Deleted disk ${diskCid}`);
  });
}

export async function setDiskMetadata(ctx: QemuContext, diskCid: DiskCid, metadata: Metadata): Promise<void> {
  await withDisk(ctx, diskCid, (record) => saveDisk(ctx, { ...record, metadata }));
}

/** After the VM's QEMU is gone: its disks are recorded as detached (the caller holds the VM's lock). */
export async function releaseDisksOf(ctx: QemuContext, vmCid: VmCid): Promise<void> {
  for (const cid of await disksAttachedTo(ctx, vmCid)) await releaseStaleRecord(ctx, cid, vmCid);
}

/** Records the disk as detached if its record still names the VM (which is gone). */
async function releaseStaleRecord(ctx: QemuContext, diskCid: DiskCid, vmCid: VmCid): Promise<void> {
  await ctx.locked(
    ctx.data.disk(diskCid).dir,
    async () => {
      const record = await readDisk(ctx, diskCid);
      if (record?.attached_to === vmCid) await saveDisk(ctx, { ...record, attached_to: null });
    },
    () => undefined,
  );
}

export async function attachDisk(ctx: QemuContext, vmCid: VmCid, diskCid: DiskCid): Promise<DiskHint> {
  const attach = async (disk: DiskRecord, runAs: RunAs | undefined): Promise<DiskHint> => {
    const other = await holder(ctx, disk);
    if (other && other !== vmCid)
      throw cloudError(
        `Disk '${diskCid}' is attached to VM '${other}'; detach it there before attaching it to '${vmCid}'`,
      );
    if (!(await runningPid(ctx, vmCid)))
      throw cloudError(`VM '${vmCid}' is not running (its QEMU is gone); reboot_vm starts it again`);
    await withQmp(ctx.data.vm(vmCid).qmp, async (qmp) => {
      if (!(await isPlugged(qmp, disk.serial))) {
        const plugged = attachedDisk(ctx, diskCid);
        // QEMU no longer runs as root: the disk is handed to this VM's uid (run-as.ts).
        await grantFile(ctx, runAs, plugged.image);
        await plug(qmp, plugged);
      }
      await saveDisk(ctx, { ...disk, attached_to: vmCid });
      await updatePersistentDisks(ctx, vmCid, await attachedDiskCids(ctx.data, qmp), qmp, runAs);
    });
    ctx.logger.info(`Attached disk ${diskCid} to VM ${vmCid} (virtio serial ${disk.serial})`);
    return diskHint(diskCid);
  };
  return withVmAndDisk(
    ctx,
    vmCid,
    diskCid,
    (vm, disk) => attach(disk, vm.run_as),
    () => {
      throw vmNotFound(vmCid);
    },
  );
}

export async function detachDisk(ctx: QemuContext, vmCid: VmCid, diskCid: DiskCid): Promise<void> {
  await withVmAndDisk(
    ctx,
    vmCid,
    diskCid,
    async (vm, disk) => {
      if (await runningPid(ctx, vmCid)) {
        await withQmp(ctx.data.vm(vmCid).qmp, async (qmp) => {
          const plugged = await isPlugged(qmp, disk.serial);
          if (!plugged) await releaseNode(qmp, disk.serial);
          if (!plugged && disk.attached_to !== vmCid) throw diskNotAttached(vmCid, diskCid);
          if (plugged) await unplug(qmp, disk.serial, ctx.props.detach_timeout_seconds * 1000);
          await revokeFile(vm.run_as, attachedDisk(ctx, diskCid).image);
          await saveDisk(ctx, { ...disk, attached_to: null });
          await updatePersistentDisks(ctx, vmCid, await attachedDiskCids(ctx.data, qmp), qmp, vm.run_as);
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
      if (isId('disk', diskCid)) await releaseStaleRecord(ctx, diskCid, vmCid);
      throw vmNotFound(vmCid);
    },
  );
}

/** From QMP query-block while QEMU runs; from the records when it does not (they name what a restart attaches). */
export async function getDisks(ctx: QemuContext, vmCid: VmCid): Promise<DiskCid[]> {
  if (!(await readVmRecord(ctx, vmCid))) throw vmNotFound(vmCid);
  if (await runningPid(ctx, vmCid))
    return withQmp(ctx.data.vm(vmCid).qmp, (qmp) => attachedDiskCids(ctx.data, qmp));
  return disksAttachedTo(ctx, vmCid);
}
