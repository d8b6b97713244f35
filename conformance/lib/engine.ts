import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { freeSubnet } from '../../test/support/docker.ts';
import { sleep } from './assert.ts';
import { DockerApi } from './docker.ts';
import { mountTable } from './state.ts';

/**
 * A second, private dockerd for the engine-restart faults. The shared engine at
 * /var/run/docker.sock is never touched: this one has its own data root, exec root, pidfile,
 * socket and a bridge of its own, and only the process this class started is ever signalled.
 */
export class PrivateEngine {
  readonly tag = randomBytes(3).toString('hex');
  readonly dataRoot = `/var/lib/bosh-conformance-engine-${this.tag}`;
  readonly execRoot = `/run/bce-${this.tag}`;
  readonly pidFile = `/run/bce-${this.tag}.pid`;
  /**
   * Its own bridge interface: `--bridge=none` (and `--default-address-pool` on a restart) make
   * dockerd delete the docker0 interface, breaking the shared engine's default network.
   */
  readonly bridge = `bce${this.tag}`;
  readonly socket: string;
  readonly host: string;
  readonly api: DockerApi;
  private child: ChildProcess | undefined;

  constructor(private readonly logDir: string) {
    const preferred = '/run/conformance-docker.sock';
    this.socket = existsSync(preferred) ? `/run/conformance-docker-${this.tag}.sock` : preferred;
    this.host = `unix://${this.socket}`;
    this.api = new DockerApi(this.host);
  }

  static available(): string | undefined {
    if (process.getuid?.() !== 0) return 'the suite is not running as root';
    try {
      execFileSync('sh', ['-c', 'command -v dockerd'], { stdio: 'ignore' });
    } catch {
      return 'no dockerd binary on PATH';
    }
    return undefined;
  }

  get pid(): number | undefined {
    return this.child?.exitCode === null ? this.child.pid : undefined;
  }

  async start(timeoutMs = 60_000): Promise<void> {
    if (spawnSync('ip', ['link', 'show', this.bridge], { stdio: 'ignore' }).status !== 0) {
      const subnet = freeSubnet('10.252');
      execFileSync('ip', ['link', 'add', this.bridge, 'type', 'bridge']);
      execFileSync('ip', ['addr', 'add', `${subnet.gateway}/24`, 'dev', this.bridge]);
      execFileSync('ip', ['link', 'set', this.bridge, 'up']);
    }
    mkdirSync(this.dataRoot, { recursive: true });
    mkdirSync(this.execRoot, { recursive: true });
    const log = openSync(join(this.logDir, `dockerd-${this.tag}.log`), 'a');
    this.child = spawn(
      'dockerd',
      [
        `--data-root=${this.dataRoot}`,
        `--exec-root=${this.execRoot}`,
        `--pidfile=${this.pidFile}`,
        `-H=${this.host}`,
        `--bridge=${this.bridge}`,
        '--iptables=false',
        '--ip-masq=false',
        '--ip-forward=false',
        '--log-level=warn',
      ],
      { stdio: ['ignore', log, log], detached: true },
    );
    closeSync(log);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null)
        throw new Error(`dockerd exited with ${this.child.exitCode}: ${this.logTail()}`);
      if (await this.api.ping()) return;
      await sleep(250);
    }
    throw new Error(`dockerd did not answer within ${timeoutMs / 1000} s: ${this.logTail()}`);
  }

  /** Stops the private engine (SIGTERM: running containers stop and come back on the next start). */
  async stop(timeoutMs = 90_000): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || !child.pid) return;
    // Only ever the process this object spawned, and only if it still is that dockerd.
    const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8');
    if (!cmdline.includes(`--data-root=${this.dataRoot}`))
      throw new Error(`PID ${child.pid} is not the private dockerd`);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(child.pid, 'SIGTERM');
    const timer = sleep(timeoutMs).then(() => {
      if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
    });
    await Promise.race([exited, timer]);
    await exited;
  }

  logTail(): string {
    try {
      return readFileSync(join(this.logDir, `dockerd-${this.tag}.log`), 'utf8').slice(-1500);
    } catch {
      return '(no log)';
    }
  }

  /** Stops the engine and removes its data root, exec root, pidfile and socket. */
  async destroy(): Promise<void> {
    await this.stop().catch(() => undefined);
    this.api.close();
    const under = (p: string) =>
      [this.dataRoot, this.execRoot].some((root) => p === root || p.startsWith(`${root}/`));
    const mounts = mountTable()
      .map((m) => m.target)
      .filter(under)
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) {
      try {
        execFileSync('umount', ['-l', m], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
    for (const p of [this.dataRoot, this.execRoot, this.pidFile, this.socket])
      rmSync(p, { recursive: true, force: true });
    spawnSync('ip', ['link', 'del', this.bridge], { stdio: 'ignore' });
  }
}
