import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * What the backend-neutral fault and data-safety checks need from a CPI whose VMs they cannot
 * `docker exec` into: the host-side things a VM owns (so a VM the CPI says is gone can be proven
 * gone), when a VM's guest is up (hot-unplug needs it), and a detached disk's bytes, written
 * and read on the host the way the CPI stores them.
 */
export interface HostProbe {
  /** Host resources outside data_dir the run owns (processes, network devices), keyed for a diff. */
  hostResources(): Record<string, string>;
  /** What still exists on the host for this VM (processes, devices, its directory). */
  leftoversOf(vmCid: string): string[];
  /** Resolves once the VM's guest has booted far enough to take hotplug requests. */
  waitReady(vmCid: string, timeoutMs?: number): Promise<void>;
  /** Writes `bytes` random bytes at offset 0 of a detached disk; returns their sha256. */
  writeDisk(diskCid: string, bytes: number): string;
  /** sha256 of the first `bytes` bytes of a detached disk. */
  checksumDisk(diskCid: string, bytes: number): string;
}

/** Live (non-zombie) processes whose command line mentions `text`, as "pid cmd". */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${entry}/stat`, 'utf8'))) continue;
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.includes(text)) found.push(`${entry} ${cmd.split('\0')[0]}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/**
 * This repository's QEMU backend, read from the outside: data_dir/{vms,disks}/<cid>/, QEMU
 * processes naming their VM directory, tap devices enslaved to the config's bridge.
 */
export class QemuProbe implements HostProbe {
  constructor(
    private readonly dataDir: string,
    private readonly bridge: string | undefined,
    private readonly workDir: string,
    private readonly readyPattern = new RegExp(process.env.CONFORMANCE_QEMU_READY ?? '^BOSHTEST ready', 'm'),
  ) {}

  private taps(): string[] {
    if (!this.bridge) return [];
    const out = spawnSync('ip', ['-o', 'link', 'show', 'master', this.bridge], { encoding: 'utf8' }).stdout;
    return [...(out ?? '').matchAll(/^\d+: ([^:@]+)/gm)].map((m) => m[1] as string);
  }

  hostResources(): Record<string, string> {
    const found: Record<string, string> = {};
    for (const p of processesMentioning(`${this.dataDir}/`)) {
      const [pid, cmd] = p.split(' ');
      found[`process ${pid}`] = cmd ?? '';
    }
    for (const tap of this.taps()) found[`tap ${tap}`] = `on ${this.bridge}`;
    return found;
  }

  leftoversOf(vmCid: string): string[] {
    const dir = join(this.dataDir, 'vms', vmCid);
    const out = processesMentioning(dir).map((p) => `process ${p}`);
    if (existsSync(dir)) out.push(`directory ${dir} (${readdirSync(dir).join(', ')})`);
    // Tap names derive from the VM CID; any tap left on the bridge by a gone VM shows in the diff.
    return out;
  }

  async waitReady(vmCid: string, timeoutMs = 300_000): Promise<void> {
    const log = join(this.dataDir, 'vms', vmCid, 'console.log');
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (existsSync(log) && this.readyPattern.test(readFileSync(log, 'utf8'))) return;
      await sleep(500);
    }
    throw new Error(`the guest of ${vmCid} printed no ${this.readyPattern} within ${timeoutMs / 1000} s`);
  }

  private image(diskCid: string): { path: string; format: string } {
    const path = join(this.dataDir, 'disks', diskCid, 'disk.qcow2');
    const info = JSON.parse(
      execFileSync('qemu-img', ['info', '--output=json', path], { encoding: 'utf8' }),
    ) as { format: string };
    return { path, format: info.format };
  }

  writeDisk(diskCid: string, bytes: number): string {
    const { path, format } = this.image(diskCid);
    const data = randomBytes(bytes);
    const src = join(this.workDir, `write-${diskCid}`);
    writeFileSync(src, data);
    try {
      execFileSync('qemu-io', ['-f', format, '-c', `write -s ${src} 0 ${bytes}`, path], { stdio: 'pipe' });
    } finally {
      rmSync(src, { force: true });
    }
    return createHash('sha256').update(data).digest('hex');
  }

  checksumDisk(diskCid: string, bytes: number): string {
    const { path, format } = this.image(diskCid);
    const raw = join(this.workDir, `read-${diskCid}.raw`);
    try {
      // Opened read-only without a write lock holder: the disk must be detached (QEMU holds it otherwise).
      execFileSync('qemu-img', ['convert', '-f', format, '-O', 'raw', path, raw], { stdio: 'pipe' });
      return createHash('sha256').update(readFileSync(raw).subarray(0, bytes)).digest('hex');
    } finally {
      rmSync(raw, { force: true });
    }
  }
}
