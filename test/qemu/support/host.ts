import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cpi, writeConfig } from '../../support/cpi.ts';

/** Host-side helpers of the QEMU tests: a private bridge, a data_dir, the guest's channels. */

export const GUEST_PORT = 7777;

export interface TestBridge {
  name: string;
  /** The first three octets, e.g. "10.250.37". */
  prefix: string;
  hostIp: string;
  remove(): void;
}

function usedPrefixes(): Set<string> {
  const text = execFileSync('ip', ['-4', '-o', 'route', 'show', 'table', 'all'], { encoding: 'utf8' });
  const addrs = execFileSync('ip', ['-4', '-o', 'addr'], { encoding: 'utf8' });
  const used = new Set<string>();
  for (const m of `${text}\n${addrs}`.matchAll(/\b10\.250\.(\d+)\.\d+/g)) used.add(`10.250.${m[1]}`);
  // A route that covers all of 10.250.0.0/16 (or more) leaves nothing free.
  if (/\b10\.(250\.0\.0\/1[0-6]|0\.0\.0\/[0-8])\b/.test(text))
    throw new Error('10.250.0.0/16 is routed already; no free test subnet');
  return used;
}

/** A bridge with the host at .1 of a /24 in 10.250.0.0/16 that no route or address uses yet. */
export function createBridge(): TestBridge {
  const used = usedPrefixes();
  const free = Array.from({ length: 254 }, (_, i) => `10.250.${i + 1}`).filter((p) => !used.has(p));
  const prefix = free[Math.floor(Math.random() * free.length)];
  if (!prefix) throw new Error('No free /24 in 10.250.0.0/16');
  const name = `bqt${randomBytes(4).toString('hex')}`;
  execFileSync('ip', ['link', 'add', name, 'type', 'bridge']);
  execFileSync('ip', ['addr', 'add', `${prefix}.1/24`, 'dev', name]);
  execFileSync('ip', ['link', 'set', name, 'up']);
  return {
    name,
    prefix,
    hostIp: `${prefix}.1`,
    remove: () => {
      spawnSync('ip', ['link', 'delete', name]);
    },
  };
}

export function newDataDir(): string {
  return `/var/lib/bosh-qemu-test-${randomBytes(4).toString('hex')}`;
}

/** Per-method wall times of every CPI call a test makes, for the measurements in the report. */
export const timings = new Map<string, number[]>();

export class TimedCpi extends Cpi {
  override async call<T = unknown>(
    method: string,
    args: unknown[],
    apiVersion = this.apiVersion,
  ): Promise<T> {
    const started = performance.now();
    try {
      return await super.call<T>(method, args, apiVersion);
    } finally {
      const list = timings.get(method) ?? [];
      list.push(performance.now() - started);
      timings.set(method, list);
    }
  }
}

export function timingTable(): string {
  const rows = [...timings.entries()].sort(([a], [b]) => a.localeCompare(b));
  return rows
    .map(([method, ms]) => {
      const sorted = [...ms].sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
      return `${method.padEnd(30)} n=${String(ms.length).padStart(2)} median=${Math.round(median)} ms max=${Math.round(sorted.at(-1) ?? 0)} ms`;
    })
    .join('\n');
}

const configDirs: string[] = [];

/** A config file for the qemu plugin (`agent`: its agent section); its temporary directory goes in `removeConfigs`. */
export function qemuConfig(
  dataDir: string,
  bridge: TestBridge | undefined,
  extra: Record<string, unknown> = {},
  agent: Record<string, unknown> = {
    mbus: 'nats://nats:nats-secret-password@127.0.0.1:4222',
    ntp: ['0.pool.ntp.org'],
  },
): string {
  const qemu = {
    data_dir: dataDir,
    accel: 'auto',
    default_ram: 256,
    ...(bridge ? { default_bridge: bridge.name } : {}),
    ...extra,
  };
  return trackConfig(writeConfig({ qemu, agent }, 'qemu'));
}

export function trackConfig(path: string): string {
  configDirs.push(dirname(path));
  return path;
}

export function removeConfigs(): void {
  for (const dir of configDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** What the guest printed on its serial console (QEMU's chardev log file). */
export function consoleText(dataDir: string, vmCid: string): string {
  const path = `${dataDir}/vms/${vmCid}/console.log`;
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}

/**
 * Waits for a "BOSHTEST ..." console line matching `pattern`; with `boot: n`, only lines the
 * guest printed during its n-th boot count.
 */
export async function waitForConsole(
  dataDir: string,
  vmCid: string,
  pattern: RegExp,
  opts: { timeoutMs?: number; boot?: number } = {},
): Promise<string> {
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  for (;;) {
    const boots = consoleText(dataDir, vmCid)
      .split(/\r?\n/)
      .filter((l) => l.startsWith('BOSHTEST '))
      .reduce<string[][]>((acc, line) => {
        if (line.startsWith('BOSHTEST boot ')) acc.push([]);
        acc.at(-1)?.push(line);
        return acc;
      }, []);
    const lines = opts.boot === undefined ? boots.flat() : (boots[opts.boot - 1] ?? []);
    const found = lines.find((l) => pattern.test(l));
    if (found) return found;
    if (Date.now() > deadline)
      throw new Error(
        `No console line matching ${pattern} from ${vmCid}; console:\n${consoleText(dataDir, vmCid).slice(-3000)}`,
      );
    await sleep(250);
  }
}

/** Sends one command to the guest's stand-in agent over TCP and returns its answer. */
export function guest(ip: string, command: string, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(GUEST_PORT, ip);
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`guest ${ip}: no answer to '${command}' within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${command}\n`));
    socket.on('data', (c: string) => {
      answer += c;
    });
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(answer.trim());
    });
  });
}

export function ping(ip: string): boolean {
  return spawnSync('busybox', ['ping', '-c', '1', '-W', '3', ip]).status === 0;
}

/** Live (non-zombie) processes whose command line mentions `text`. */
export function processesMentioning(text: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (/^\d+ \(.*\) Z/.test(stat)) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Taps the CPI made (named qt<hash>n<index>) that still exist. */
export function cpiTaps(): string[] {
  return readdirSync('/sys/class/net').filter((n) => /^qt[0-9a-f]{10}n\d$/.test(n));
}

/** Last-resort cleanup for a failed test: kill its VMs, drop its taps and data_dir. */
export function forceCleanup(dataDir: string, bridge?: TestBridge): void {
  for (const pid of processesMentioning(dataDir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  if (existsSync(`${dataDir}/vms`)) {
    for (const vm of readdirSync(`${dataDir}/vms`)) {
      const pidFile = `${dataDir}/vms/${vm}/qemu.pid`;
      if (existsSync(pidFile)) {
        try {
          process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  }
  if (bridge) {
    const ports = spawnSync('ip', ['-o', 'link', 'show', 'master', bridge.name], { encoding: 'utf8' }).stdout;
    for (const m of ports.matchAll(/^\d+: ([^:@]+)/gm)) spawnSync('ip', ['link', 'delete', m[1] as string]);
    bridge.remove();
  }
  rmSync(dataDir, { recursive: true, force: true });
}

/** Files left under data_dir (empty directories and the cached KVM verdict do not count). */
export function leftoverFiles(dataDir: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else if (path !== `${dataDir}/accel.json`) out.push(path);
    }
  };
  if (existsSync(dataDir)) walk(dataDir);
  return out;
}

export { sleep };
