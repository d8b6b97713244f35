import { chmod, chown, readdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { VmCid } from '../../cpi/types.ts';
import { readJsonIfExists } from '../../util/atomic-file.ts';
import type { QemuProperties } from './config.ts';
import type { QemuContext } from './context.ts';
import { parseId } from './ids.ts';
import type { VmRecord } from './records.ts';

/**
 * QEMU parses what a guest sends (devices, disk formats); a guest that breaks out of it should not
 * be root on the host, nor reach other VMs. So each VM's QEMU drops to a uid of its own once it
 * has opened what it needs at start (`-runas uid:gid`, numeric: no user accounts are created),
 * and runs under seccomp (`-sandbox`). The gid is shared and only lets QEMU traverse the
 * directories on the way to its files (0710 root:gid); each file it must open later (a
 * hot-plugged disk, a snapshot target, a new config drive) is handed to that VM's uid for as long
 * as it needs it, then back to root.
 */
export interface RunAs {
  uid: number;
  gid: number;
}

/** Uids handed to VMs: uid_base + 1 … uid_base + UID_SLOTS; uid_base itself is the shared gid. */
export const UID_SLOTS = 65_536;

/**
 * The sandbox QEMU enters before it runs guest code. `spawn=deny` is left out: `-daemonize` forks
 * after the filter is in place. `elevateprivileges=deny` would refuse the set*id of `-runas`, so it
 * is only set when QEMU keeps running as root.
 */
export function sandboxArgs(props: Pick<QemuProperties, 'sandbox'>, runAs: RunAs | undefined): string[] {
  const args: string[] = [];
  if (props.sandbox)
    args.push('-sandbox', `on,obsolete=deny,resourcecontrol=deny${runAs ? '' : ',elevateprivileges=deny'}`);
  if (runAs) args.push('-runas', `${runAs.uid}:${runAs.gid}`);
  return args;
}

function slotOf(vmCid: VmCid): number {
  let h = 2166136261;
  for (const c of vmCid) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  return h % UID_SLOTS;
}

/**
 * A uid no other VM of this data_dir has (probing from a slot the VM's ID picks), or undefined
 * when the operator runs QEMU as root (`vm_uid_base: null`).
 */
export async function allocateRunAs(ctx: QemuContext, vmCid: VmCid): Promise<RunAs | undefined> {
  const base = ctx.props.vm_uid_base;
  if (base === null) return undefined;
  const taken = new Set<number>();
  for (const name of await readdir(ctx.data.vms).catch(() => [] as string[])) {
    const other = parseId('vm', name);
    if (!other || other === vmCid) continue;
    const record = await readJsonIfExists<VmRecord>(ctx.data.vm(other).record);
    if (record?.run_as) taken.add(record.run_as.uid);
  }
  const start = slotOf(vmCid);
  for (let i = 0; i < UID_SLOTS; i++) {
    const uid = base + 1 + ((start + i) % UID_SLOTS);
    if (!taken.has(uid)) return { uid, gid: base };
  }
  return { uid: base + 1 + start, gid: base };
}

/** Directories from data_dir down to `file`'s own: traversable by the QEMU group, listable by none. */
async function openPath(ctx: QemuContext, file: string, gid: number): Promise<void> {
  const root = ctx.data.root;
  const dirs: string[] = [];
  for (let d = dirname(file); d.startsWith(root); d = dirname(d)) {
    dirs.push(d);
    if (d === root) break;
  }
  for (const d of dirs.reverse()) {
    await chown(d, 0, gid);
    await chmod(d, 0o710);
  }
}

/** Lets the VM's QEMU open `file` (read-write) from now on. */
export async function grantFile(ctx: QemuContext, runAs: RunAs | undefined, file: string): Promise<void> {
  if (!runAs) return;
  await openPath(ctx, file, runAs.gid);
  await chown(file, runAs.uid, runAs.gid);
  await chmod(file, 0o600);
}

/** Takes `file` back from the VM's QEMU (it stays open where QEMU still holds it). */
export async function revokeFile(runAs: RunAs | undefined, file: string): Promise<void> {
  if (!runAs) return;
  await chown(file, 0, 0).catch(() => undefined);
}

/** The VM directory itself, before QEMU starts (its QMP socket and logs live there). */
export async function prepareVmDir(ctx: QemuContext, runAs: RunAs | undefined, vmCid: VmCid): Promise<void> {
  if (!runAs) return;
  await openPath(ctx, ctx.data.vm(vmCid).record, runAs.gid);
}
