import { readFile, rm, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DiskCid, VmCid } from '../../cpi/types.ts';
import { CommandError, runChecked } from '../../util/command.ts';
import type { QemuContext } from './context.ts';
import { diskDeviceId, diskNodeName } from './ids.ts';
import type { Nic } from './network.ts';
import { QmpClient, withQmp } from './qmp.ts';
import type { VmRecord } from './records.ts';
import { prepareVmDir, sandboxArgs } from './run-as.ts';

/**
 * The QEMU process of a VM: its command line, start and stop. QEMU daemonizes (it outlives the
 * CPI process), writes a pid file and serves QMP on a unix socket in the VM's directory.
 *
 * Machine type `pc` (i440fx) on purpose: virtio-blk disks hot-plug into its root PCI bus
 * through ACPI, and its IDE controller carries the config drive as a CD whose medium can be
 * changed at run time. q35 would need PCIe root ports reserved ahead for each hot-plug.
 */
export const CONFIG_DRIVE_DEVICE = 'config-drive';
const CONFIG_DRIVE_NODE = 'config-drive-media';
const LAUNCH_TIMEOUT_MS = 120_000;

export interface AttachedDisk {
  cid: DiskCid;
  serial: string;
  image: string;
}

/** The blockdev-add arguments of a persistent disk (the same for a cold start and a hot plug). */
export function persistentBlockdev(disk: AttachedDisk): Record<string, unknown> {
  return {
    driver: 'qcow2',
    'node-name': diskNodeName(disk.serial),
    file: { driver: 'file', filename: disk.image },
  };
}

export function persistentDevice(disk: AttachedDisk): Record<string, unknown> {
  return {
    driver: 'virtio-blk-pci',
    id: diskDeviceId(disk.serial),
    drive: diskNodeName(disk.serial),
    serial: disk.serial,
  };
}

function nicArgs(nic: Nic): string[] {
  return [
    '-netdev',
    `tap,id=net${nic.index},ifname=${nic.tap},script=no,downscript=no`,
    '-device',
    JSON.stringify({
      driver: 'virtio-net-pci',
      id: `nic${nic.index}`,
      netdev: `net${nic.index}`,
      mac: nic.mac,
    }),
  ];
}

/**
 * The guest CPU per accelerator. KVM: the host's own CPU. TCG: `qemu64`, whose few features QEMU
 * emulates cheaply; `max` makes TCG emulate every feature it knows (AVX2, …), which the guest
 * kernel and the agent then use: measured with the real bosh-agent on a bookworm stemcell
 * (issue 11/13), create_vm to agent ping took 50.5 s with qemu64 against 83.6 s with max.
 */
export const CPU_MODEL: Record<VmRecord['accel'], string> = { kvm: 'host', tcg: 'qemu64' };

export function qemuArgs(ctx: QemuContext, vm: VmRecord, disks: AttachedDisk[]): string[] {
  const p = ctx.data.vm(vm.cid);
  const json = (v: unknown) => JSON.stringify(v);
  const args = [
    '-name',
    `guest=${vm.cid}`,
    '-machine',
    `pc,accel=${vm.accel}`,
    '-cpu',
    CPU_MODEL[vm.accel],
    '-smp',
    String(vm.cpu),
    '-m',
    String(vm.ram_mib),
    '-nodefaults',
    '-no-user-config',
    ...sandboxArgs(ctx.props, vm.run_as),
    '-display',
    'none',
    '-daemonize',
    '-pidfile',
    p.pid,
    '-chardev',
    `socket,id=qmp,path=${p.qmp},server=on,wait=off`,
    '-mon',
    'chardev=qmp,mode=control',
    '-chardev',
    `socket,id=console,path=${p.console},server=on,wait=off,logfile=${p.consoleLog},logappend=on`,
    '-serial',
    'chardev:console',
    '-blockdev',
    json({ driver: 'qcow2', 'node-name': 'root', file: { driver: 'file', filename: p.root } }),
    '-device',
    json({ driver: 'virtio-blk-pci', id: 'root-disk', drive: 'root', bootindex: 1 }),
  ];
  if (vm.ephemeral) {
    args.push(
      '-blockdev',
      json({ driver: 'qcow2', 'node-name': 'ephemeral', file: { driver: 'file', filename: p.ephemeral } }),
      '-device',
      json({
        driver: 'virtio-blk-pci',
        id: 'ephemeral-disk',
        drive: 'ephemeral',
        serial: vm.ephemeral.serial,
      }),
    );
  }
  args.push(
    '-blockdev',
    json({
      driver: 'raw',
      'node-name': CONFIG_DRIVE_NODE,
      'read-only': true,
      file: { driver: 'file', filename: p.configDrive, 'read-only': true },
    }),
    '-device',
    json({ driver: 'ide-cd', id: CONFIG_DRIVE_DEVICE, drive: CONFIG_DRIVE_NODE, bus: 'ide.1' }),
  );
  for (const nic of vm.nics) args.push(...nicArgs(nic));
  for (const disk of disks)
    args.push('-blockdev', json(persistentBlockdev(disk)), '-device', json(persistentDevice(disk)));
  return args;
}

/** QEMU refused to start; `transient` when the cause may pass (memory, a busy resource). */
export class LaunchError extends Error {
  constructor(
    message: string,
    readonly transient: boolean,
  ) {
    super(message);
  }
}

const TRANSIENT_LAUNCH =
  /cannot set up guest memory|Cannot allocate memory|Resource temporarily unavailable|Device or resource busy/i;

/** Starts the VM's QEMU and returns once it runs (QEMU's parent exits after its set-up). */
export async function startVm(ctx: QemuContext, vm: VmRecord, disks: AttachedDisk[]): Promise<number> {
  const p = ctx.data.vm(vm.cid);
  await Promise.all([p.pid, p.qmp, p.console].map((f) => rm(f, { force: true })));
  // QEMU creates the console log with the umask's mode; what the guest prints may be private.
  await writeFile(p.consoleLog, '', { flag: 'a', mode: 0o600 });
  await prepareVmDir(ctx, vm.run_as, vm.cid);
  const args = qemuArgs(ctx, vm, disks);
  ctx.logger.debug(`${ctx.props.qemu_binary} ${args.join(' ')}`);
  try {
    await ctx.logger.timed('qemu launch', () =>
      runChecked(ctx.props.qemu_binary, args, { timeoutMs: LAUNCH_TIMEOUT_MS }),
    );
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    const transient =
      e.result === undefined ? false : e.result.timedOut || TRANSIENT_LAUNCH.test(e.result.stderr);
    throw new LaunchError(`QEMU did not start: ${e.message}`, transient);
  }
  const pid = await runningPid(ctx, vm.cid);
  if (pid === undefined) throw new LaunchError('QEMU exited right after it started', false);
  const status = await withQmp(p.qmp, (qmp) => qmp.execute<{ status: string }>('query-status'));
  if (status.status !== 'running')
    throw new LaunchError(`QEMU started but the VM is ${status.status}`, false);
  ctx.logger.info(`QEMU pid ${pid} runs VM ${vm.cid} (${vm.accel}, ${vm.cpu} CPU, ${vm.ram_mib} MiB)`);
  return pid;
}

/** The pid of the VM's QEMU when it runs; the command line is checked so a reused pid is not mistaken for it. */
export async function runningPid(ctx: QemuContext, vmCid: VmCid): Promise<number | undefined> {
  let pid: number;
  try {
    pid = Number((await readFile(ctx.data.vm(vmCid).pid, 'utf8')).trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  return (await isQemuOf(pid, vmCid)) ? pid : undefined;
}

async function isQemuOf(pid: number, vmCid: VmCid): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    if (/^\d+ \(.*\) Z/.test(stat)) return false;
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    return cmdline.includes(`guest=${vmCid}`);
  } catch {
    return false;
  }
}

async function waitForExit(pid: number, vmCid: VmCid, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await isQemuOf(pid, vmCid))) return true;
    await sleep(100);
  }
  return !(await isQemuOf(pid, vmCid));
}

/** Stops the VM's QEMU: QMP quit (QEMU flushes and closes its images), then SIGTERM, then SIGKILL. */
export async function stopVm(ctx: QemuContext, vmCid: VmCid): Promise<void> {
  const pid = await runningPid(ctx, vmCid);
  if (pid === undefined) return;
  const graceMs = ctx.props.stop_timeout_seconds * 1000;
  try {
    const qmp = await QmpClient.connect(ctx.data.vm(vmCid).qmp, Math.min(graceMs, 10_000));
    try {
      await qmp.execute('quit').catch(() => undefined);
      await qmp.waitForClose(graceMs);
    } finally {
      qmp.close();
    }
  } catch (e) {
    ctx.logger.warn(`QMP quit of VM ${vmCid} failed (${(e as Error).message}); terminating pid ${pid}`);
  }
  if (await waitForExit(pid, vmCid, graceMs)) return;
  ctx.logger.warn(`QEMU pid ${pid} of VM ${vmCid} did not quit within ${graceMs} ms; sending SIGTERM`);
  signal(pid, 'SIGTERM');
  if (await waitForExit(pid, vmCid, 5000)) return;
  signal(pid, 'SIGKILL');
  if (!(await waitForExit(pid, vmCid, 10_000)))
    throw new Error(`QEMU pid ${pid} of VM ${vmCid} survived SIGKILL`);
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}
