import { type AgentSettings, withPersistentDisks } from '../../agent/settings.ts';
import type { DiskCid, DiskHint, VmCid } from '../../cpi/types.ts';
import { readJsonIfExists, writeJsonAtomic } from '../../util/atomic-file.ts';
import { writeConfigDrive } from './config-drive.ts';
import type { QemuContext } from './context.ts';
import { diskSerial } from './ids.ts';
import { CONFIG_DRIVE_DEVICE } from './machine.ts';
import type { QmpClient } from './qmp.ts';
import { grantFile, type RunAs } from './run-as.ts';

/**
 * The agent settings of a VM: kept in settings.json (0600, the source for rewrites) and
 * delivered on the config drive. After an attach or detach the drive is rebuilt with
 * `disks.persistent` and its medium swapped in the running VM, so callers that use CPI API v1
 * (which rely on the settings rather than the returned hint) see the disks too.
 */
/**
 * What the agent gets for a persistent disk, as the attach_disk hint and in `disks.persistent`.
 * Its virtio resolver first globs /dev/disk/by-id/*<disk CID>, which finds the disk when the CID
 * is its serial; else it falls back to `path`, which udev's by-id link (to ../../vdX) satisfies
 * for any serial. `id` is the serial for resolvers that read it.
 */
export const diskHint = (diskCid: DiskCid): Record<string, string> => {
  const serial = diskSerial(diskCid);
  return { id: serial, path: `/dev/disk/by-id/virtio-${serial}` };
};

export async function writeSettings(ctx: QemuContext, vmCid: VmCid, settings: AgentSettings): Promise<void> {
  const p = ctx.data.vm(vmCid);
  await writeJsonAtomic(p.settings, settings, 0o600);
  await writeConfigDrive(
    { vmCid, hostname: settings.agent_id, settings },
    p.configDriveStaging,
    p.configDrive,
  );
}

/** Rewrites disks.persistent and, when the VM runs, puts the new config drive into its CD drive. */
export async function updatePersistentDisks(
  ctx: QemuContext,
  vmCid: VmCid,
  diskCids: DiskCid[],
  qmp: QmpClient | undefined,
  runAs?: RunAs,
): Promise<void> {
  const p = ctx.data.vm(vmCid);
  const settings = await readJsonIfExists<AgentSettings>(p.settings);
  if (!settings) throw new Error(`the agent settings of VM '${vmCid}' are missing`);
  const disks: Record<string, DiskHint> = {};
  for (const cid of [...diskCids].sort()) disks[cid] = diskHint(cid);
  await writeSettings(ctx, vmCid, withPersistentDisks(settings, disks));
  if (qmp) {
    await grantFile(ctx, runAs, p.configDrive);
    // force: the guest may hold the tray locked while it has the drive open; the content is read-only.
    await qmp.execute('blockdev-change-medium', {
      id: CONFIG_DRIVE_DEVICE,
      filename: p.configDrive,
      format: 'raw',
      'read-only-mode': 'read-only',
      force: true,
    });
  }
}
