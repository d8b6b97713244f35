import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { buildAgentSettings } from '../../agent/settings.ts';
import { parseVmSizing } from '../../cpi/cloud-properties.ts';
import type { CloudProperties, CreatedVm, CreateVmInput, Metadata, VmCid } from '../../cpi/types.ts';
import { CpiFailure, ErrorType, vmCreationFailed, vmNotFound } from '../../rpc/errors.ts';
import { readJsonIfExists, writeJsonAtomic } from '../../util/atomic-file.ts';
import { CommandError } from '../../util/command.ts';
import { LockError } from '../../util/file-lock.ts';
import { chooseAccel } from './accel.ts';
import { writeSettings } from './agent-env.ts';
import type { QemuContext } from './context.ts';
import { attachedDisk, disksAttachedTo } from './disk-store.ts';
import { releaseDisksOf } from './disks.ts';
import { ephemeralSerial, isId, newId, parseId } from './ids.ts';
import { type AttachedDisk, LaunchError, runningPid, startVm, stopVm } from './machine.ts';
import { createTaps, deleteTaps, planNics } from './network.ts';
import { exists } from './paths.ts';
import { type QmpClient, QmpConnectionError, withQmp } from './qmp.ts';
import type { VmRecord } from './records.ts';
import { allocateRunAs } from './run-as.ts';
import { collectStemcell, readStemcell } from './stemcells.ts';

const MiB = 1024 * 1024;

interface VmShape {
  cpu: number;
  ramMiB: number;
  ephemeralMiB: number | undefined;
  rootMiB: number | undefined;
}

function vmShape(ctx: QemuContext, props: CloudProperties): VmShape {
  const sizing = parseVmSizing(props, { fractionalCpu: false });
  return {
    cpu: sizing.cpu ?? ctx.props.default_cpu,
    ramMiB: sizing.ramMiB ?? ctx.props.default_ram,
    // The agent of an OpenStack/KVM stemcell needs an ephemeral disk, or 1 GiB free on the root disk
    // to partition, else its bootstrap fails; the stemcell's image fills the root disk.
    ephemeralMiB: sizing.ephemeralDiskMiB ?? (ctx.props.default_ephemeral_disk_size || undefined),
    rootMiB: sizing.rootDiskMiB,
  };
}

export async function readVm(ctx: QemuContext, vmCid: VmCid): Promise<VmRecord | undefined> {
  if (!isId('vm', vmCid)) return undefined;
  return readJsonIfExists<VmRecord>(ctx.data.vm(vmCid).record);
}

export async function hasVm(ctx: QemuContext, vmCid: VmCid): Promise<boolean> {
  return (await readVm(ctx, vmCid)) !== undefined;
}

/** A create_vm failure: a retry can help only when the cause may pass (memory, a busy lock, a slow start). */
function creationFailure(agentId: string, e: unknown): CpiFailure {
  if (e instanceof CpiFailure && e.type === ErrorType.VMCreationFailed) return e;
  const message = `Creating a VM for agent '${agentId}' failed: ${e instanceof Error ? e.message : String(e)}`;
  const transient =
    (e instanceof CpiFailure && e.okToRetry) ||
    (e instanceof LaunchError && e.transient) ||
    e instanceof QmpConnectionError ||
    (e instanceof LockError && e.reasonKind === 'busy') ||
    (e instanceof CommandError && e.result?.timedOut === true);
  return vmCreationFailed(message, transient);
}

export async function createVm(ctx: QemuContext, input: CreateVmInput): Promise<CreatedVm> {
  const shape = vmShape(ctx, input.cloudProperties);
  if (!isId('stemcell', input.stemcellCid))
    throw vmCreationFailed(`Stemcell '${input.stemcellCid}' not found`, false);
  await ctx.data.ensure();
  await ctx.data.sweepStaging();
  await sweepAbandonedVms(ctx);
  const vmCid = newId('vm');
  const p = ctx.data.vm(vmCid);
  const nics = planNics(vmCid, input.networks, ctx.props);
  await mkdir(p.dir, { mode: 0o700 });
  // The new directory's lock is held until the VM is complete or gone again, so a concurrent
  // sweep never mistakes it for the leftover of a dead create_vm.
  const created = await ctx.locked(
    p.dir,
    async () => {
      try {
        await prepareAndStart(ctx, input, vmCid, shape, nics);
        return true;
      } catch (e) {
        await discardVm(ctx, vmCid, e);
        throw creationFailure(input.agentId, e);
      }
    },
    () => false,
  );
  if (!created)
    throw vmCreationFailed(`The directory of the new VM ${vmCid} vanished while it was created`, true);
  return { vmCid, networks: input.networks };
}

async function prepareAndStart(
  ctx: QemuContext,
  input: CreateVmInput,
  vmCid: VmCid,
  shape: VmShape,
  nics: ReturnType<typeof planNics>,
): Promise<void> {
  const p = ctx.data.vm(vmCid);
  const stemcellPaths = ctx.data.stemcell(input.stemcellCid);
  // Under the stemcell's lock, so a concurrent delete_stemcell either fails us here or sees us.
  const stemcell = await ctx.locked(
    stemcellPaths.dir,
    async () => {
      const record = await readStemcell(ctx, input.stemcellCid);
      if (record) await writeJsonAtomic(p.creating, { stemcell_cid: input.stemcellCid });
      return record;
    },
    () => undefined,
  );
  if (!stemcell) throw vmCreationFailed(`Stemcell '${input.stemcellCid}' not found`, false);
  const accel = await chooseAccel(ctx.props, ctx.data, ctx.logger);

  let rootSize: number | undefined;
  if (shape.rootMiB !== undefined) {
    if (shape.rootMiB * MiB < stemcell.virtual_size)
      throw vmCreationFailed(
        `cloud_properties.root_disk.size ${shape.rootMiB} MiB is smaller than the stemcell's ${Math.ceil(stemcell.virtual_size / MiB)} MiB`,
        false,
      );
    rootSize = shape.rootMiB * MiB;
  }
  await ctx.img.create(p.root, rootSize, { backing: stemcellPaths.image, backingFormat: 'qcow2' });
  const ephemeral = shape.ephemeralMiB
    ? { serial: ephemeralSerial(vmCid), size_mib: shape.ephemeralMiB }
    : null;
  if (ephemeral) await ctx.img.create(p.ephemeral, ephemeral.size_mib * MiB);

  const settings = buildAgentSettings({
    agentId: input.agentId,
    vmCid,
    agent: ctx.agent,
    networks: input.networks,
    env: input.env,
    // The agent configures the NICs itself, matching them by MAC.
    preconfiguredNetworks: false,
    macs: Object.fromEntries(nics.map((n) => [n.network, n.mac])),
    systemDisk: '/dev/vda',
    // Both forms: the virtio resolver uses the id (serial), the others the path.
    ephemeralDisk: ephemeral ? { path: '/dev/vdb', id: ephemeral.serial } : null,
    persistentDisks: {},
  });
  await writeSettings(ctx, vmCid, settings);
  await createTaps(nics, ctx.logger);

  const record: VmRecord = {
    cid: vmCid,
    agent_id: input.agentId,
    stemcell_cid: input.stemcellCid,
    director_uuid: ctx.directorUuid,
    created_at: new Date().toISOString(),
    cpu: shape.cpu,
    ram_mib: shape.ramMiB,
    accel,
    nics,
    ephemeral,
  };
  const runAs = await allocateRunAs(ctx, vmCid);
  if (runAs) record.run_as = runAs;
  await ctx.logger.timed('start VM', () => startVm(ctx, record, []));
  // The VM exists from here on.
  await writeJsonAtomic(p.record, record);
  await rm(p.creating, { force: true });
  ctx.logger.info(`Created VM ${vmCid} for agent ${input.agentId} from stemcell ${input.stemcellCid}`);
}

/** Removes whatever a failed or abandoned create_vm left: the process, the taps, the directory. */
async function discardVm(ctx: QemuContext, vmCid: VmCid, cause: unknown): Promise<void> {
  ctx.logger.warn(
    `Creating VM ${vmCid} failed (${cause instanceof Error ? cause.message : String(cause)}); removing what was created`,
  );
  try {
    await stopVm(ctx, vmCid);
    await deleteTaps(vmCid);
    await ctx.data.removeDir(ctx.data.vm(vmCid).dir);
  } catch (e) {
    ctx.logger.error(`Cleanup of VM ${vmCid} incomplete: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * Stops QEMU (persistent disks are closed, never deleted, and recorded as detached), deletes the
 * taps and the VM's directory. A VM that was never completed is cleaned the same way and then
 * reported as not found.
 */
export async function deleteVm(ctx: QemuContext, vmCid: VmCid): Promise<void> {
  if (!isId('vm', vmCid)) throw vmNotFound(vmCid);
  const p = ctx.data.vm(vmCid);
  const existed = await ctx.locked(
    p.dir,
    async () => {
      const record = await readJsonIfExists<VmRecord>(p.record);
      await stopVm(ctx, vmCid);
      await deleteTaps(vmCid);
      await releaseDisksOf(ctx, vmCid);
      await ctx.data.removeDir(p.dir);
      if (record) {
        ctx.logger.info(`Deleted VM ${vmCid}`);
        await collectStemcell(ctx, record.stemcell_cid);
      }
      return record !== undefined;
    },
    async () => {
      await deleteTaps(vmCid);
      return false;
    },
  );
  if (!existed) throw vmNotFound(vmCid);
}

async function attachedForColdStart(ctx: QemuContext, vmCid: VmCid): Promise<AttachedDisk[]> {
  return (await disksAttachedTo(ctx, vmCid)).map((cid) => attachedDisk(ctx, cid));
}

/**
 * A running VM is rebooted by its guest: QEMU presses ctrl-alt-delete, which the guest's init turns
 * into an orderly reboot (file systems synced and unmounted, so nothing the agent wrote is lost).
 * Only when the guest has not reset within reboot_timeout_seconds, or cannot act on keys (paused,
 * powered down), is it reset by force (QMP system_reset). Hot-plugged disks stay either way.
 * A VM whose QEMU is gone (the host rebooted, the guest powered off) is started again with the
 * disks recorded as attached to it.
 */
export async function rebootVm(ctx: QemuContext, vmCid: VmCid): Promise<void> {
  if (!isId('vm', vmCid)) throw vmNotFound(vmCid);
  const p = ctx.data.vm(vmCid);
  await ctx.locked(
    p.dir,
    async () => {
      const record = await readJsonIfExists<VmRecord>(p.record);
      if (!record) throw vmNotFound(vmCid);
      if (await runningPid(ctx, vmCid)) {
        const how = await withQmp(p.qmp, (qmp) =>
          rebootRunning(qmp, ctx.props.reboot_timeout_seconds * 1000),
        );
        if (how !== 'gone') {
          if (how === 'forced')
            ctx.logger.warn(
              `VM ${vmCid} did not reboot within ${ctx.props.reboot_timeout_seconds}s of ctrl-alt-delete; reset it by force`,
            );
          ctx.logger.info(`Rebooted VM ${vmCid} (${how}); its disks stay attached`);
          return;
        }
        await waitForExit(ctx, vmCid);
      }
      ctx.logger.warn(`QEMU of VM ${vmCid} is not running; starting it again`);
      await createTaps(record.nics, ctx.logger);
      await startVm(ctx, record, await attachedForColdStart(ctx, vmCid));
    },
    () => {
      throw vmNotFound(vmCid);
    },
  );
}

/** QEMU exits when the guest powers off instead of rebooting; give it a moment to be gone. */
async function waitForExit(ctx: QemuContext, vmCid: VmCid): Promise<void> {
  for (let i = 0; i < 100 && (await runningPid(ctx, vmCid)); i++)
    await new Promise((r) => setTimeout(r, 100));
}

/**
 * 'clean': the guest reset itself after ctrl-alt-delete; 'forced': system_reset after the timeout or
 * because the guest could not act; 'gone': the guest powered off and QEMU exited.
 */
export async function rebootRunning(qmp: QmpClient, timeoutMs: number): Promise<'clean' | 'forced' | 'gone'> {
  const forceReset = async () => {
    await qmp.execute('system_reset');
    // A guest that powered itself down stays paused until it is told to run.
    const status = await qmp.execute<{ status: string }>('query-status');
    if (status.status !== 'running') await qmp.execute('cont');
    return 'forced' as const;
  };
  const status = await qmp.execute<{ status: string }>('query-status');
  if (status.status !== 'running') return forceReset();
  const keys = ['ctrl', 'alt', 'delete'].map((data) => ({ type: 'qcode', data }));
  await qmp.execute('send-key', { keys });
  try {
    const event = await qmp.waitForEvent((e) => e.event === 'RESET' || e.event === 'SHUTDOWN', timeoutMs);
    if (event?.event === 'RESET') return 'clean';
    if (event?.event === 'SHUTDOWN') {
      // Without -no-shutdown QEMU exits after a guest power-off; if it is still there, reset it.
      if (await qmp.waitForClose(5_000)) return 'gone';
    }
  } catch (e) {
    if (e instanceof QmpConnectionError) return 'gone';
    throw e;
  }
  return forceReset();
}

/** Stored in the VM's metadata.json (an operator can read it there). */
export async function setVmMetadata(ctx: QemuContext, vmCid: VmCid, metadata: Metadata): Promise<void> {
  if (!isId('vm', vmCid)) throw vmNotFound(vmCid);
  const p = ctx.data.vm(vmCid);
  await ctx.locked(
    p.dir,
    async () => {
      if (!(await readJsonIfExists<VmRecord>(p.record))) throw vmNotFound(vmCid);
      await writeJsonAtomic(p.metadata, metadata, 0o600);
    },
    () => {
      throw vmNotFound(vmCid);
    },
  );
}

/** How old a VM directory without vm.json must be before it counts as abandoned. */
const ABANDONED_AFTER_MS = 10 * 60 * 1000;

/**
 * VM directories that never got their vm.json and that no process works on: left by a
 * create_vm that died. A create_vm in progress holds its directory's lock, so it is skipped.
 */
export async function sweepAbandonedVms(ctx: QemuContext): Promise<void> {
  let names: string[];
  try {
    names = await readdir(ctx.data.vms);
  } catch {
    return;
  }
  for (const name of names) {
    const vmCid = parseId('vm', name);
    if (!vmCid) continue;
    const p = ctx.data.vm(vmCid);
    if (await exists(p.record)) continue;
    // creating.json is written under the directory's lock: with the lock free, its creator died
    // (kill -9), maybe after starting QEMU, which would hold the VM's IP until swept. Without it, a
    // young directory may be a create_vm that has not taken its lock yet.
    if (!(await exists(p.creating))) {
      const age = await stat(p.dir).then(
        (st) => Date.now() - st.mtimeMs,
        () => 0,
      );
      if (age < ABANDONED_AFTER_MS) continue;
    }
    await ctx.lockedIfFree(p.dir, async () => {
      if (!(await exists(p.record)))
        await discardVm(ctx, vmCid, new Error('abandoned by a CPI process that died'));
    });
  }
}
