import { assembleBackend } from '../../cpi/assemble.ts';
import type { Backend, BackendContext, BackendModule } from '../../cpi/backend.ts';
import { asCpiFailure, CpiFailure, cloudError } from '../../rpc/errors.ts';
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

/** The QEMU backend's one error boundary: failures of the tools underneath become CloudErrors, retryable when they may pass. */
export function toCpiFailure(e: unknown): CpiFailure {
  if (e instanceof CpiFailure) return e;
  if (e instanceof QmpConnectionError) return cloudError(e.message, true);
  if (e instanceof LockError) return cloudError(e.message, e.reasonKind === 'busy');
  if (e instanceof LaunchError) return cloudError(e.message, e.transient);
  if (e instanceof QmpError || e instanceof CommandError) return cloudError(e.message);
  return asCpiFailure(e);
}

export function create(context: BackendContext): Backend {
  const ctx = new QemuContext(
    parseQemuProperties(context.properties),
    context.agent,
    context.directorUuid,
    context.logger,
  );
  return assembleBackend({
    context: ctx,
    methods: { ...stemcells, ...vms, ...disks, resizeDisk },
    snapshots: { snapshotDisk, deleteSnapshot },
    failure: toCpiFailure,
    close: () => {},
  });
}

export default { create } satisfies BackendModule;
