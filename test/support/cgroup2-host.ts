import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before } from 'node:test';
import type { CgroupTarget } from './cgroup-scenarios.ts';
import { REPO } from './cpi.ts';
import { freeSubnet } from './docker.ts';
import { makeCertificates } from './engine.ts';

/**
 * A cgroup v2 Docker host: a QEMU VM (TCG; KVM does not work on this machine) running Debian bookworm
 * with docker.io, reached over TCP with mutual TLS like any remote engine. Its disk image is built once by
 * scripts/cgroup2-host/build-image.sh and cached under /var/tmp; each start gets a throw-away overlay,
 * a bridge and tap of its own in an unused 10.247.x.0/24, and certificates made here for its address
 * (handed to the guest on a CD labelled CPIHOST, with the address on the kernel command line).
 */
export interface Cgroup2Host {
  ip: string;
  /** tcp://<ip>:2376 */
  endpoint: string;
  /** ca.pem, cert.pem, key.pem of the client side. */
  tlsDir: string;
  /** The docker CLI's arguments that reach this engine. */
  cliArgs: string[];
  /** Seconds from starting QEMU to the engine's first answer. */
  bootSeconds: number;
  consoleLog: string;
  destroy(): void;
}

const IMAGE_DIR = process.env.CGROUP2_HOST_IMAGE_DIR ?? '/var/tmp/bosh-cpi-cgroup2-host';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function buildCgroup2HostImage(): void {
  execFileSync('bash', [join(REPO, 'scripts/cgroup2-host/build-image.sh'), IMAGE_DIR], { stdio: 'inherit' });
}

export async function startCgroup2Host(
  opts: { memoryMiB?: number; bootTimeoutMs?: number } = {},
): Promise<Cgroup2Host> {
  buildCgroup2HostImage();
  const id = randomUUID().slice(0, 6);
  const dir = join(IMAGE_DIR, `run-${id}`);
  mkdirSync(dir, { recursive: true });
  const subnet = freeSubnet('10.247');
  const ip = subnet.ip(2);
  const bridge = `bc2${id}`;
  const tap = `tc2${id}`;
  const pidFile = join(dir, 'qemu.pid');
  const consoleLog = join(dir, 'console.log');
  const run = (cmd: string, ...args: string[]) =>
    execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });

  const destroy = () => {
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      if (pid > 1 && existsSync(`/proc/${pid}`)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {}
      }
    }
    spawnSync('ip', ['link', 'del', tap]);
    spawnSync('ip', ['link', 'del', bridge]);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    run('ip', 'link', 'add', bridge, 'type', 'bridge');
    run('ip', 'addr', 'add', `${subnet.gateway}/24`, 'dev', bridge);
    run('ip', 'link', 'set', bridge, 'up');
    run('ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap');
    run('ip', 'link', 'set', tap, 'master', bridge);
    run('ip', 'link', 'set', tap, 'up');
    const certs = join(dir, 'certs');
    mkdirSync(certs);
    makeCertificates(certs, ip);
    const iso = join(dir, 'cpihost.iso');
    run(
      'genisoimage',
      '-quiet',
      '-V',
      'CPIHOST',
      '-r',
      '-J',
      '-o',
      iso,
      join(certs, 'ca.pem'),
      join(certs, 'server.pem'),
      join(certs, 'server-key.pem'),
    );
    const overlay = join(dir, 'disk.qcow2');
    run(
      'qemu-img',
      'create',
      '-q',
      '-f',
      'qcow2',
      '-F',
      'qcow2',
      '-b',
      join(IMAGE_DIR, 'disk.qcow2'),
      overlay,
    );
    const started = Date.now();
    run(
      'qemu-system-x86_64',
      '-machine',
      'pc,accel=tcg',
      '-cpu',
      'qemu64',
      '-smp',
      '1',
      '-m',
      String(opts.memoryMiB ?? 3072),
      '-kernel',
      join(IMAGE_DIR, 'vmlinuz'),
      '-initrd',
      join(IMAGE_DIR, 'initrd.img'),
      '-append',
      `root=LABEL=cpihostroot rw console=ttyS0 net.ifnames=0 cpihost.ip=${ip}/24 cpihost.gw=${subnet.gateway}`,
      '-drive',
      `file=${overlay},if=virtio,format=qcow2`,
      '-drive',
      `file=${iso},media=cdrom,if=ide,format=raw,readonly=on`,
      '-netdev',
      `tap,id=n0,ifname=${tap},script=no,downscript=no`,
      '-device',
      `virtio-net-pci,netdev=n0,mac=52:54:00:${id.slice(0, 2)}:${id.slice(2, 4)}:${id.slice(4, 6)}`,
      '-serial',
      `file:${consoleLog}`,
      '-display',
      'none',
      '-daemonize',
      '-pidfile',
      pidFile,
    );
    const endpoint = `tcp://${ip}:2376`;
    const cliArgs = [
      '-H',
      endpoint,
      '--tlsverify',
      `--tlscacert=${join(certs, 'ca.pem')}`,
      `--tlscert=${join(certs, 'cert.pem')}`,
      `--tlskey=${join(certs, 'key.pem')}`,
    ];
    const deadline = started + (opts.bootTimeoutMs ?? 600_000);
    for (;;) {
      const v = spawnSync('docker', [...cliArgs, 'version', '--format', '{{.Server.Version}}'], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      if (v.status === 0) break;
      if (Date.now() > deadline)
        throw new Error(
          `the cgroup v2 host did not answer on ${endpoint} within ${(opts.bootTimeoutMs ?? 600_000) / 1000} s; console:\n${readFileSync(consoleLog, 'utf8').slice(-3000)}`,
        );
      await sleep(2000);
    }
    return {
      ip,
      endpoint,
      tlsDir: certs,
      cliArgs,
      bootSeconds: (Date.now() - started) / 1000,
      consoleLog,
      destroy,
    };
  } catch (e) {
    destroy();
    throw e;
  }
}

/**
 * Registers before/after hooks that bring up a cgroup v2 host for the file's tests (or use the one
 * CGROUP2_HOST=tcp://IP:2376 and CGROUP2_HOST_TLS_DIR (ca.pem, cert.pem, key.pem) name), and returns
 * the target for cgroupScenarios.
 */
export function cgroup2Target(): () => CgroupTarget {
  let host: Pick<Cgroup2Host, 'endpoint' | 'tlsDir' | 'cliArgs'> | undefined;
  let booted: Cgroup2Host | undefined;
  before(async () => {
    const running = process.env.CGROUP2_HOST;
    const tlsDir = process.env.CGROUP2_HOST_TLS_DIR;
    if (running && tlsDir) {
      const tls = [
        `--tlscacert=${tlsDir}/ca.pem`,
        `--tlscert=${tlsDir}/cert.pem`,
        `--tlskey=${tlsDir}/key.pem`,
      ];
      host = { endpoint: running, tlsDir, cliArgs: ['-H', running, '--tlsverify', ...tls] };
      return;
    }
    booted = await startCgroup2Host();
    host = booted;
    console.log(
      `cgroup v2 host ${booted.endpoint} answered ${booted.bootSeconds.toFixed(0)} s after QEMU started`,
    );
  });
  after(() => booted?.destroy());
  return () => {
    if (!host) throw new Error('the cgroup v2 host did not start');
    return {
      cgroupVersion: 2,
      dockerProperties: {
        host: host.endpoint,
        tls: {
          ca: `${host.tlsDir}/ca.pem`,
          certificate: `${host.tlsDir}/cert.pem`,
          private_key: `${host.tlsDir}/key.pem`,
        },
      },
      cliArgs: host.cliArgs,
    };
  };
}
