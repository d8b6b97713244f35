import type { Backend, BackendContext, BackendModule } from '../../cpi/backend.ts';
import { calculateVmCloudProperties } from '../../cpi/cloud-properties.ts';
import { guardBackend } from '../../cpi/guard.ts';
import { CpiFailure, cloudError } from '../../rpc/errors.ts';
import { CommandError } from '../../util/command.ts';
import { LockError } from '../../util/file-lock.ts';
import { parseQemuProperties } from './config.ts';
import { QemuContext } from './context.ts';
import * as disks from './disks.ts';
import { LaunchError } from './machine.ts';
import { QmpConnectionError, QmpError } from './qmp.ts';
import { resizeDisk } from './resize.ts';
import { deleteSnapshot, snapshotDisk } from './snapshots.ts';
import * as stemcells from './stemcells.ts';
import * as vms from './vms.ts';

/** Failures of the tools underneath become CloudErrors; only those that may pass are retryable. */
function toCpiFailure(e: unknown): unknown {
  if (e instanceof CpiFailure) return e;
  if (e instanceof QmpConnectionError) return cloudError(e.message, true);
  if (e instanceof LockError) return cloudError(e.message, e.reasonKind === 'busy');
  if (e instanceof LaunchError) return cloudError(e.message, e.transient);
  if (e instanceof QmpError || e instanceof CommandError) return cloudError(e.message);
  return e;
}

export function create(context: BackendContext): Backend {
  const ctx = new QemuContext(
    parseQemuProperties(context.properties),
    context.agent,
    context.directorUuid,
    context.logger,
  );
  const backend: Backend = {
    createStemcell: (path, cloudProps, tags) => stemcells.createStemcell(ctx, path, cloudProps, tags),
    deleteStemcell: (cid) => stemcells.deleteStemcell(ctx, cid),
    createVm: (input) => vms.createVm(ctx, input),
    deleteVm: (cid) => vms.deleteVm(ctx, cid),
    hasVm: (cid) => vms.hasVm(ctx, cid),
    rebootVm: (cid) => vms.rebootVm(ctx, cid),
    setVmMetadata: (cid, metadata) => vms.setVmMetadata(ctx, cid, metadata),
    calculateVmCloudProperties,
    createDisk: (size, cloudProps, vmCid) => disks.createDisk(ctx, size, cloudProps, vmCid),
    deleteDisk: (cid) => disks.deleteDisk(ctx, cid),
    hasDisk: (cid) => disks.hasDisk(ctx, cid),
    attachDisk: (vmCid, diskCid) => disks.attachDisk(ctx, vmCid, diskCid),
    detachDisk: (vmCid, diskCid) => disks.detachDisk(ctx, vmCid, diskCid),
    setDiskMetadata: (cid, metadata) => disks.setDiskMetadata(ctx, cid, metadata),
    getDisks: (vmCid) => disks.getDisks(ctx, vmCid),
    resizeDisk: (cid, size) => resizeDisk(ctx, cid, size),
    snapshotDisk: (cid, metadata) => snapshotDisk(ctx, cid, metadata),
    deleteSnapshot: (cid) => deleteSnapshot(ctx, cid),
  };
  return guardBackend(backend, toCpiFailure);
}

export default { create } satisfies BackendModule;
