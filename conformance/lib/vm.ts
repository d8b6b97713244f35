import { randomUUID } from 'node:crypto';
import type { Cpi } from './cpi.ts';
import { type DockerApi, execIn } from './docker.ts';

export const SETTINGS_PATH = '/var/vcap/bosh/warden-cpi-agent-env.json';

/** Hands out addresses in the run's own /24 (10.252.N.0/24) so concurrent VMs never collide. */
export class Addresses {
  private next = 10;
  constructor(readonly prefix: string) {}

  take(): string {
    const ip = `${this.prefix}${this.next}`;
    this.next = this.next >= 250 ? 10 : this.next + 1;
    return ip;
  }

  /**
   * For requests that must fail (bad input, provocations): an address never handed out by take(),
   * so a request that wrongly succeeds cannot collide with a live VM.
   */
  spare(): Record<string, unknown> {
    return this.network(`${this.prefix}254`);
  }

  network(ip = this.take()): Record<string, unknown> {
    return {
      default: {
        type: 'manual',
        ip,
        netmask: '255.255.255.0',
        gateway: `${this.prefix}1`,
        dns: [],
        default: ['dns', 'gateway'],
        cloud_properties: {},
      },
    };
  }
}

export interface CreatedVm {
  cid: string;
  agentId: string;
  networks: Record<string, unknown>;
  env: Record<string, unknown>;
}

/** A create_vm the way the Director sends it (v2 and later: the result is [cid, networks]; v1: the CID). */
export async function createVm(
  cpi: Cpi,
  stemcellCid: string,
  addresses: Addresses,
  opts: {
    env?: Record<string, unknown>;
    cloudProperties?: Record<string, unknown>;
    apiVersion?: number;
  } = {},
): Promise<CreatedVm> {
  const agentId = `agent-${randomUUID()}`;
  const networks = addresses.network();
  const env = opts.env ?? { bosh: { group: 'conformance', groups: ['conformance'] } };
  const result = await cpi.call(
    'create_vm',
    [agentId, stemcellCid, opts.cloudProperties ?? {}, networks, [], env],
    {
      apiVersion: opts.apiVersion ?? cpi.apiVersion,
    },
  );
  const cid = Array.isArray(result) ? result[0] : result;
  if (typeof cid !== 'string') throw new Error(`create_vm returned ${JSON.stringify(result)}, no VM CID`);
  return { cid, agentId, networks, env };
}

/** The VM's container (the Docker CPI labels it io.bosh.cpi.vm=<cid>). */
export async function containerOf(docker: DockerApi, vmCid: string): Promise<string> {
  const c = await docker.vmContainer(vmCid);
  if (!c) throw new Error(`no container for VM ${vmCid}`);
  return c.Id;
}

export async function waitRunning(docker: DockerApi, vmCid: string, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let state = 'absent';
  while (Date.now() < deadline) {
    const c = await docker.vmContainer(vmCid);
    state = c?.State ?? 'absent';
    if (c && c.State === 'running') return c.Id;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`VM ${vmCid} is not running after ${timeoutMs / 1000} s (state ${state})`);
}

export interface SettingsFile {
  mode: string;
  settings: Record<string, unknown>;
  text: string;
}

/** Reads the agent settings file the way the agent would find it, with its permission bits. */
export async function readSettings(docker: DockerApi, vmCid: string): Promise<SettingsFile> {
  const id = await containerOf(docker, vmCid);
  const out = await execIn(
    docker.host,
    id,
    `stat -c %a ${SETTINGS_PATH} && echo ---- && cat ${SETTINGS_PATH}`,
  );
  if (out.code !== 0)
    throw new Error(
      `reading ${SETTINGS_PATH} in VM ${vmCid} failed: ${out.stderr.trim() || out.stdout.trim()}`,
    );
  const [mode = '', text = ''] = out.stdout.split('\n----\n');
  try {
    return { mode: mode.trim(), text, settings: JSON.parse(text) as Record<string, unknown> };
  } catch {
    throw new Error(`the settings file of VM ${vmCid} is not JSON: ${text.slice(0, 300)}`);
  }
}

export function persistentOf(settings: Record<string, unknown>): Record<string, unknown> {
  const disks = settings.disks as { persistent?: Record<string, unknown> } | undefined;
  return disks?.persistent ?? {};
}

/** The path inside the VM a disk hint points at (string hints, or the `path` of an object hint). */
export function hintPath(hint: unknown): string {
  if (typeof hint === 'string') return hint;
  if (hint && typeof hint === 'object' && typeof (hint as { path?: unknown }).path === 'string')
    return (hint as { path: string }).path;
  throw new Error(`disk hint ${JSON.stringify(hint)} names no path inside the VM`);
}

/** Disk paths mounted inside the VM (from its own mount table). */
export async function mountsInVm(docker: DockerApi, vmCid: string): Promise<string[]> {
  const id = await containerOf(docker, vmCid);
  const out = await execIn(docker.host, id, 'cat /proc/mounts');
  if (out.code !== 0) throw new Error(`reading the mounts of VM ${vmCid} failed: ${out.stderr.trim()}`);
  return [
    ...new Set(
      out.stdout
        .split('\n')
        .map((l) => l.split(' ')[1] ?? '')
        .filter((p) => p.startsWith('/warden-cpi-dev/')),
    ),
  ];
}

/** Writes `mib` MiB of random data to a file on the disk at `path` (inside the VM) and returns its SHA-256. */
export async function writeData(
  docker: DockerApi,
  vmCid: string,
  path: string,
  mib = 2,
  file = 'conformance.bin',
): Promise<string> {
  const id = await containerOf(docker, vmCid);
  const out = await execIn(
    docker.host,
    id,
    `set -e; dd if=/dev/urandom of=${path}/${file} bs=1048576 count=${mib} 2>/dev/null; sync; sha256sum ${path}/${file}`,
    120_000,
  );
  if (out.code !== 0) throw new Error(`writing to ${path} in VM ${vmCid} failed: ${out.stderr.trim()}`);
  return out.stdout.split(' ')[0] ?? '';
}

export async function checksum(
  docker: DockerApi,
  vmCid: string,
  path: string,
  file = 'conformance.bin',
): Promise<string> {
  const id = await containerOf(docker, vmCid);
  const out = await execIn(docker.host, id, `sha256sum ${path}/${file}`, 120_000);
  if (out.code !== 0) throw new Error(`reading ${path}/${file} in VM ${vmCid} failed: ${out.stderr.trim()}`);
  return out.stdout.split(' ')[0] ?? '';
}

/** Size in KiB of the filesystem mounted at `path` in the VM. */
export async function fsSizeKiB(docker: DockerApi, vmCid: string, path: string): Promise<number> {
  const id = await containerOf(docker, vmCid);
  const out = await execIn(docker.host, id, `df -k ${path} | tail -1`);
  const blocks = Number(out.stdout.trim().split(/\s+/)[1]);
  if (out.code !== 0 || !Number.isFinite(blocks))
    throw new Error(`df ${path} in VM ${vmCid} failed: ${out.stderr || out.stdout}`);
  return blocks;
}

/** Runs a shell script inside a VM. */
export async function execInVm(docker: DockerApi, vmCid: string, script: string, timeoutMs = 60_000) {
  return execIn(docker.host, await containerOf(docker, vmCid), script, timeoutMs);
}
