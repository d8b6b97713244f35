import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeSubnet } from './docker.ts';

/**
 * A second, private Docker engine on this machine, reached over TCP with mutual TLS (certificates
 * made here with openssl). It has its own data root, exec root, pidfile and sockets, its own
 * default bridge (an interface made here, in 10.254.0.0/16) and leaves iptables and ip_forward
 * alone, so it never touches the shared engine at /var/run/docker.sock. Only this engine is ever
 * stopped, by the PID it wrote.
 *
 * Two dockerd options delete the docker0 interface, breaking the shared engine's default bridge
 * network, and so must never be used here: `--bridge=none` (at every start) and
 * `--default-address-pool` (at every restart, when dockerd clears its stale bridge network). Networks
 * this engine gets therefore always name their subnet (manual networks do).
 */
export interface TestEngine {
  id: string;
  /** unix:///run/…/docker.sock */
  socket: string;
  /** tcp://127.0.0.1:<port> (TLS, client certificate required) */
  tcp: string;
  tls: { ca: string; certificate: string; privateKey: string };
  /** PEM file paths of the client side. */
  tlsFiles: { ca: string; certificate: string; privateKey: string };
  /** A CA this engine does not trust (for TLS failure tests). */
  otherCaFile: string;
  logFile: string;
  docker(...args: string[]): string;
  dockerTry(...args: string[]): { code: number; stdout: string; stderr: string };
  running(): boolean;
  /** The dockerd's PID while it runs. */
  pid(): number | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Stops the engine and removes its containers' leftovers, data root, exec root and certificates. */
  destroy(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * A CA, a server certificate for `serverIp` and a client certificate, all EC P-256, valid one day:
 * ca.pem, server.pem, server-key.pem, cert.pem, key.pem (and other-ca.pem, a CA nobody trusts).
 */
export function makeCertificates(dir: string, serverIp = '127.0.0.1'): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    dir,
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca-key.pem',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=cpi-test-ca',
  );
  openssl(dir, 'req', ...ec, '-keyout', 'server-key.pem', '-out', 'server.csr', '-subj', `/CN=${serverIp}`);
  writeFileSync(join(dir, 'server.ext'), `subjectAltName=IP:${serverIp}\nextendedKeyUsage=serverAuth\n`);
  openssl(
    dir,
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca-key.pem',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '1',
    '-extfile',
    'server.ext',
  );
  openssl(dir, 'req', ...ec, '-keyout', 'key.pem', '-out', 'client.csr', '-subj', '/CN=cpi-test-client');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  openssl(
    dir,
    'x509',
    '-req',
    '-in',
    'client.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca-key.pem',
    '-CAcreateserial',
    '-out',
    'cert.pem',
    '-days',
    '1',
    '-extfile',
    'client.ext',
  );
  openssl(
    dir,
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'other-ca-key.pem',
    '-out',
    'other-ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=untrusted-ca',
  );
}

export interface TestEngineOptions {
  /**
   * Runs dockerd in a mount namespace of its own whose mounts are `shared` (like a systemd host's /)
   * or `private` (like this machine's /). Everything mounted in it (the CPI's loop mounts and binds,
   * found through the engine's processes) goes away when the engine stops, as at a host reboot;
   * each start makes a fresh namespace.
   */
  mountNamespace?: 'shared' | 'private';
}

/** A test engine, started. */
export async function startTestEngine(options: TestEngineOptions = {}): Promise<TestEngine> {
  const engine = await prepareTestEngine(options);
  try {
    await engine.start();
  } catch (e) {
    await engine.destroy();
    throw e;
  }
  return engine;
}

/** A test engine with its certificates, roots and bridge made, not yet started. */
export async function prepareTestEngine(options: TestEngineOptions = {}): Promise<TestEngine> {
  const id = randomUUID().slice(0, 8);
  const dataRoot = `/var/lib/bosh-cpi-test-engine-${id}`;
  const execRoot = `/run/bosh-cpi-test-engine-${id}`;
  const certDir = mkdtempSync(join(tmpdir(), `cpi-engine-${id}-`));
  mkdirSync(dataRoot, { recursive: true, mode: 0o700 });
  mkdirSync(execRoot, { recursive: true, mode: 0o700 });
  makeCertificates(certDir);
  writeFileSync(join(certDir, 'daemon.json'), '{}');
  const port = await freePort();
  const bridge = `bcpi${id.slice(0, 6)}`;
  const bridgeNet = freeSubnet('10.254');
  execFileSync('ip', ['link', 'add', bridge, 'type', 'bridge']);
  execFileSync('ip', ['addr', 'add', `${bridgeNet.gateway}/24`, 'dev', bridge]);
  execFileSync('ip', ['link', 'set', bridge, 'up']);
  const socket = `unix://${execRoot}/docker.sock`;
  const pidFile = `${execRoot}/docker.pid`;
  const logFile = join(certDir, 'dockerd.log');
  const args = [
    '--config-file',
    join(certDir, 'daemon.json'),
    '--data-root',
    join(dataRoot, 'root'),
    '--exec-root',
    join(execRoot, 'exec'),
    '--pidfile',
    pidFile,
    '-H',
    socket,
    '-H',
    `tcp://127.0.0.1:${port}`,
    '--tlsverify',
    '--tlscacert',
    join(certDir, 'ca.pem'),
    '--tlscert',
    join(certDir, 'server.pem'),
    '--tlskey',
    join(certDir, 'server-key.pem'),
    `--bridge=${bridge}`,
    '--iptables=false',
    '--ip-masq=false',
    '--ip-forward=false',
  ];
  const cli = (...a: string[]) => ['-H', socket, ...a];
  const pid = (): number | undefined => {
    if (!existsSync(pidFile)) return undefined;
    const n = Number(readFileSync(pidFile, 'utf8').trim());
    return Number.isInteger(n) && n > 1 && existsSync(`/proc/${n}`) ? n : undefined;
  };
  const read = (name: string) => readFileSync(join(certDir, name), 'utf8');

  const engine: TestEngine = {
    id,
    socket,
    tcp: `tcp://127.0.0.1:${port}`,
    tls: { ca: read('ca.pem'), certificate: read('cert.pem'), privateKey: read('key.pem') },
    tlsFiles: {
      ca: join(certDir, 'ca.pem'),
      certificate: join(certDir, 'cert.pem'),
      privateKey: join(certDir, 'key.pem'),
    },
    otherCaFile: join(certDir, 'other-ca.pem'),
    logFile,
    docker: (...a) =>
      execFileSync('docker', cli(...a), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim(),
    dockerTry: (...a) => {
      const r = spawnSync('docker', cli(...a), { encoding: 'utf8' });
      return { code: r.status ?? -1, stdout: (r.stdout ?? '').trim(), stderr: (r.stderr ?? '').trim() };
    },
    running: () => pid() !== undefined,
    pid,
    async start() {
      if (pid()) return;
      const log = openSync(logFile, 'a');
      const [command, argv] = options.mountNamespace
        ? ['unshare', ['-m', `--propagation=${options.mountNamespace}`, 'dockerd', ...args]]
        : ['dockerd', args];
      const child = spawn(command as string, argv as string[], {
        detached: true,
        stdio: ['ignore', log, log],
      });
      child.unref();
      closeSync(log);
      for (let i = 0; i < 150; i++) {
        if (engine.dockerTry('version', '--format', '{{.Server.Version}}').code === 0) return;
        if (child.exitCode !== null) break;
        await sleep(200);
      }
      throw new Error(
        `the test engine did not start; see ${logFile}:\n${readFileSync(logFile, 'utf8').slice(-2000)}`,
      );
    },
    async stop() {
      const p = pid();
      if (!p) return;
      process.kill(p, 'SIGTERM');
      // dockerd stops its containers first (10 s each at most); killed early, it would leave its
      // containerd and shims behind, and the next start would find their tasks still there.
      for (let i = 0; i < 900 && existsSync(`/proc/${p}`); i++) await sleep(100);
      if (existsSync(`/proc/${p}`)) process.kill(p, 'SIGKILL');
      for (let i = 0; i < 50 && existsSync(`/proc/${p}`); i++) await sleep(100);
    },
    async destroy() {
      if (engine.running()) {
        const all = engine.docker('ps', '-aq').split('\n').filter(Boolean);
        if (all.length) engine.dockerTry('rm', '-f', ...all);
      }
      await engine.stop();
      for (const root of [dataRoot, execRoot]) {
        // Anything the engine left mounted under its roots (it unmounts its own on a clean stop).
        const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
          .split('\n')
          .map((l) => l.split(' ')[4] ?? '')
          .filter((m) => m.startsWith(`${root}/`))
          .sort((a, b) => b.length - a.length);
        for (const m of mounts) spawnSync('umount', ['-l', m]);
        spawnSync('rm', ['-rf', '--one-file-system', root]);
      }
      spawnSync('ip', ['link', 'del', bridge]);
      rmSync(certDir, { recursive: true, force: true });
    },
  };
  return engine;
}
