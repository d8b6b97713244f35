import { readdir } from 'node:fs/promises';
import type { DiskCid, VmCid } from '../../cpi/types.ts';
import { diskNotFound } from '../../rpc/errors.ts';
import { readJsonIfExists, writeJsonAtomic } from '../../util/atomic-file.ts';
import type { QemuContext } from './context.ts';
import { diskSerial, isId, parseId } from './ids.ts';
import type { AttachedDisk } from './machine.ts';
import type { DiskRecord, VmRecord } from './records.ts';

/** Disk records and the locks around them, shared by the disk operations. */

export const readDisk = (ctx: QemuContext, cid: DiskCid) =>
  readJsonIfExists<DiskRecord>(ctx.data.disk(cid).record);
export const readVmRecord = (ctx: QemuContext, cid: VmCid) =>
  isId('vm', cid) ? readJsonIfExists<VmRecord>(ctx.data.vm(cid).record) : Promise.resolve(undefined);

export function requireDiskId(diskCid: DiskCid): void {
  if (!isId('disk', diskCid)) throw diskNotFound(diskCid);
}

/** Runs `step` with the disk's lock and record; DiskNotFound when there is none. */
export function withDisk<T>(
  ctx: QemuContext,
  diskCid: DiskCid,
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

export const saveDisk = (ctx: QemuContext, record: DiskRecord) =>
  writeJsonAtomic(ctx.data.disk(record.cid).record, record);

/** The VM that really holds the disk, if any: a record naming a VM that is gone is stale. */
export async function holder(ctx: QemuContext, record: DiskRecord): Promise<VmCid | undefined> {
  if (!record.attached_to) return undefined;
  return (await readVmRecord(ctx, record.attached_to)) ? record.attached_to : undefined;
}

/** Disk CIDs whose records say they are attached to the VM. */
export async function disksAttachedTo(ctx: QemuContext, vmCid: VmCid): Promise<DiskCid[]> {
  let names: string[];
  try {
    names = await readdir(ctx.data.disks);
  } catch {
    return [];
  }
  const cids: DiskCid[] = [];
  for (const name of names) {
    const cid = parseId('disk', name);
    if (cid && (await readDisk(ctx, cid))?.attached_to === vmCid) cids.push(cid);
  }
  return cids.sort();
}

export const attachedDisk = (ctx: QemuContext, cid: DiskCid): AttachedDisk => ({
  cid,
  serial: diskSerial(cid),
  image: ctx.data.disk(cid).image,
});

/** Locks the VM, then the disk (always in this order, so two calls never wait on each other). */
export function withVmAndDisk<T>(
  ctx: QemuContext,
  vmCid: VmCid,
  diskCid: DiskCid,
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
