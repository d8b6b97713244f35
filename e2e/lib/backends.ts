import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { run, runOk } from './util.ts';

/** What the suite knows of the objects the CPI made (from create-env's state file or its own calls). */
export interface MadeIds {
  directorUuid?: string;
  vms: Set<string>;
  disks: Set<string>;
  stemcells: Set<string>;
}

export const newMadeIds = (): MadeIds => ({ vms: new Set(), disks: new Set(), stemcells: new Set() });
const allIds = (ids: MadeIds) => [...ids.vms, ...ids.disks, ...ids.stemcells];

export interface Subnet {
  /** e.g. 10.213.7 */
  prefix: string;
  cidr: string;
  gateway: string;
  netmask: string;
  ip: (host: number) => string;
}

/** A /24 in 10.200-254.x.0 that no local address, route or Docker network uses. */
export async function unusedSubnet(): Promise<Subnet> {
  const used = (await run('ip', ['-4', '-o', 'addr'])).stdout + (await run('ip', ['-4', 'route'])).stdout;
  const nets = await run('sh', [
    '-c',
    'docker network inspect $(docker network ls -q) --format "{{range .IPAM.Config}}{{.Subnet}} {{end}}" 2>/dev/null',
  ]);
  const taken = used + nets.stdout;
  for (let i = 0; i < 200; i++) {
    const prefix = `10.${200 + Math.floor(Math.random() * 55)}.${Math.floor(Math.random() * 256)}`;
    if (taken.includes(`${prefix}.`)) continue;
    return {
      prefix,
      cidr: `${prefix}.0/24`,
      gateway: `${prefix}.1`,
      netmask: '255.255.255.0',
      ip: (host) => `${prefix}.${host}`,
    };
  }
  throw new Error('no unused 10.2xx.x.0/24 subnet found');
}

export interface E2eBackend {
  name: 'docker' | 'qemu';
  cpiJob: string;
  /** Job properties of the CPI besides agent.mbus (the release's defaults otherwise). */
  cpiProperties(): Record<string, unknown>;
  /** Plugin config for calling bin/cpi directly (director mode). */
  cpiConfig(agent: Record<string, unknown>): Record<string, unknown>;
  setUp(subnet: Subnet): Promise<void>;
  networkCloudProperties(): Record<string, unknown>;
  vmCloudProperties(): Record<string, unknown>;
  /** Changes when the VM is recreated or restarted: the container's start time, the QEMU pid. */
  vmIncarnation(vmCid: string): Promise<string>;
  /** The agent's recent ERROR lines (its log in a container, the serial console of a QEMU VM). */
  agentErrors(vmCid: string): Promise<string>;
  /** What the CPI left behind that mentions one of its objects. Empty means clean. */
  leftovers(ids: MadeIds): Promise<string[]>;
  tearDown(): Promise<void>;
}

const lastErrors = (log: string) =>
  log
    .split('\n')
    .filter((l) => /ERROR|error|fail/i.test(l))
    .slice(-5)
    .map((l) => l.slice(0, 400))
    .join('\n') || log.split('\n').slice(-5).join('\n');

const DOCKER_LABEL_DIRECTOR = 'io.bosh.cpi.director';
const DOCKER_LABEL_VM = 'io.bosh.cpi.vm';

async function filesMentioning(dir: string, ids: string[]): Promise<string[]> {
  if (!existsSync(dir) || ids.length === 0) return [];
  const found: string[] = [];
  const walk = (d: string, depth: number) => {
    if (depth > 4) return;
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      if (ids.some((id) => n.includes(id))) found.push(p);
      walk(p, depth + 1);
    }
  };
  walk(dir, 0);
  return found;
}

async function loopDevicesMentioning(ids: string[]): Promise<string[]> {
  const loops = (await run('losetup', ['-a'])).stdout.split('\n');
  return loops.filter((l) => l && ids.some((id) => l.includes(id))).map((l) => `loop device ${l}`);
}

/**
 * A remote engine (`tcp://IP:port`, with `tlsDir` holding ca.pem, cert.pem, key.pem) is reached with TLS,
 * and the test subnet is routed via its host, so the VMs answer at their own addresses as on a local engine
 * (the host must forward to its containers: the cgroup v2 test host accepts eth0 in DOCKER-USER).
 */
export function dockerBackend(
  host: string,
  dataDir = '/var/lib/bosh-docker-cpi',
  tlsDir?: string,
): E2eBackend {
  let subnet: Subnet | undefined;
  const remoteIp = /^tcp:\/\/([\d.]+):\d+$/.exec(host)?.[1];
  const tlsFiles = tlsDir
    ? { ca: `${tlsDir}/ca.pem`, cert: `${tlsDir}/cert.pem`, key: `${tlsDir}/key.pem` }
    : undefined;
  const cliTls = tlsFiles
    ? ['--tlsverify', `--tlscacert=${tlsFiles.ca}`, `--tlscert=${tlsFiles.cert}`, `--tlskey=${tlsFiles.key}`]
    : [];
  const docker = (...args: string[]) => run('docker', ['-H', host, ...cliTls, ...args]);
  // Inline PEM: the release job's CPI runs elsewhere than this machine's files.
  const tls = () =>
    tlsFiles
      ? {
          tls: {
            ca: readFileSync(tlsFiles.ca, 'utf8'),
            certificate: readFileSync(tlsFiles.cert, 'utf8'),
            private_key: readFileSync(tlsFiles.key, 'utf8'),
          },
        }
      : {};
  return {
    name: 'docker',
    cpiJob: 'docker_cpi',
    cpiProperties: () => ({ docker: { host, ...tls() } }),
    cpiConfig: (agent) => ({
      cloud: { plugin: 'docker', properties: { docker: { host, ...tls() }, agent } },
    }),
    async setUp(s) {
      subnet = s;
      if (remoteIp) await runOk('ip', ['route', 'replace', s.cidr, 'via', remoteIp]);
    },
    // None: the CPI makes (and removes) the Docker network of the manual subnet itself.
    networkCloudProperties: () => ({}),
    vmCloudProperties: () => ({}),
    async vmIncarnation(vmCid) {
      const r = await docker(
        'ps',
        '-a',
        '--filter',
        `label=${DOCKER_LABEL_VM}=${vmCid}`,
        '--format',
        '{{.ID}}',
      );
      const id = r.stdout.trim();
      if (!id) throw new Error(`no container for VM ${vmCid}`);
      return (await docker('inspect', id, '--format', '{{.Id}} {{.State.StartedAt}}')).stdout.trim();
    },
    async agentErrors(vmCid) {
      const r = await docker('ps', '-aq', '--filter', `label=${DOCKER_LABEL_VM}=${vmCid}`);
      const log = await docker('exec', r.stdout.trim(), 'tail', '-n', '300', '/var/vcap/bosh/log/current');
      return lastErrors(log.stdout);
    },
    async leftovers(ids) {
      const found: string[] = [];
      const idList = allIds(ids);
      const lines = async (...args: string[]) =>
        (await docker(...args)).stdout.split('\n').filter((l) => l.trim() !== '');
      if (ids.directorUuid) {
        const label = `label=${DOCKER_LABEL_DIRECTOR}=${ids.directorUuid}`;
        for (const c of await lines('ps', '-a', '--filter', label, '--format', '{{.Names}}'))
          found.push(`container ${c}`);
        for (const v of await lines('volume', 'ls', '--filter', label, '--format', '{{.Name}}'))
          found.push(`volume ${v}`);
        for (const n of await lines('network', 'ls', '--filter', label, '--format', '{{.Name}}'))
          found.push(`network ${n}`);
        for (const i of await lines('images', '--filter', label, '--format', '{{.Repository}}:{{.Tag}}'))
          found.push(`image ${i}`);
      }
      for (const c of await lines('ps', '-a', '--format', '{{.Names}} {{.Labels}}'))
        if (idList.some((id) => c.includes(id))) found.push(`container ${c}`);
      for (const v of await lines('volume', 'ls', '--format', '{{.Name}}'))
        if (idList.some((id) => v.includes(id))) found.push(`volume ${v}`);
      for (const i of await lines('images', '--format', '{{.Repository}}:{{.Tag}}'))
        if (idList.some((id) => i.includes(id))) found.push(`image ${i}`);
      if (subnet) {
        const nets = await docker(
          'network',
          'inspect',
          ...(await lines('network', 'ls', '-q')),
          '--format',
          '{{.Name}} {{range .IPAM.Config}}{{.Subnet}} {{end}}',
        );
        for (const n of nets.stdout.split('\n'))
          if (n.includes(subnet.cidr)) found.push(`network ${n.trim()}`);
      }
      if (!remoteIp) {
        found.push(...(await loopDevicesMentioning(idList)));
        found.push(...(await filesMentioning(dataDir, idList)).map((f) => `file ${f}`));
      }
      return [...new Set(found)];
    },
    async tearDown() {
      if (remoteIp && subnet) await run('ip', ['route', 'del', subnet.cidr, 'via', remoteIp]);
    },
  };
}

export function qemuBackend(
  dataDir = '/var/lib/bosh-qemu-cpi',
  qemuProps: Record<string, unknown> = {},
): E2eBackend {
  const bridge = `e2ebr${process.pid % 100000}`;
  let made = false;
  return {
    name: 'qemu',
    cpiJob: 'qemu_cpi',
    cpiProperties: () => ({ qemu: { ...qemuProps } }),
    cpiConfig: (agent) => ({ cloud: { plugin: 'qemu', properties: { qemu: { ...qemuProps }, agent } } }),
    async setUp(subnet) {
      await runOk('ip', ['link', 'add', bridge, 'type', 'bridge']);
      made = true;
      await runOk('ip', ['addr', 'add', `${subnet.gateway}/24`, 'dev', bridge]);
      await runOk('ip', ['link', 'set', bridge, 'up']);
    },
    networkCloudProperties: () => ({ bridge }),
    vmCloudProperties: () => ({ cpu: 1, ram: 1024 }),
    async vmIncarnation(vmCid) {
      const pidFile = join(dataDir, 'vms', vmCid, 'qemu.pid');
      if (!existsSync(pidFile)) throw new Error(`no QEMU pid file for VM ${vmCid}`);
      return (await runOk('cat', [pidFile])).trim();
    },
    async agentErrors(vmCid) {
      return lastErrors(await agentLogOfQemuVm(join(dataDir, 'vms', vmCid, 'root.qcow2')));
    },
    async leftovers(ids) {
      const idList = allIds(ids);
      const found: string[] = [];
      const ps = (await run('ps', ['-eo', 'pid,args'])).stdout.split('\n');
      for (const p of ps)
        if (p.includes('qemu-system') && idList.some((id) => p.includes(id)))
          found.push(`process ${p.trim()}`);
      const taps = (await run('ip', ['-o', 'link', 'show', 'master', bridge])).stdout.split('\n');
      for (const t of taps) if (t.trim()) found.push(`tap ${t.split(':')[1]?.trim()}`);
      const qtaps = (await run('ip', ['-o', 'link', 'show', 'type', 'tun'])).stdout.split('\n');
      for (const t of qtaps)
        if (/ qt[0-9a-f]{10}n\d/.test(t) && t.includes(`master ${bridge}`)) found.push(`tap ${t}`);
      found.push(...(await loopDevicesMentioning(idList)));
      found.push(...(await filesMentioning(dataDir, idList)).map((f) => `file ${f}`));
      return [...new Set(found)];
    },
    async tearDown() {
      if (made) await run('ip', ['link', 'del', bridge]);
    },
  };
}

/**
 * The agent's log inside a QEMU VM's root disk (the agent logs to /var/vcap/bosh/log, not to the
 * console), read while the VM runs: a flattened raw copy (qemu-img -U), its first partition on a
 * read-only loop device, the files read with debugfs.
 */
async function agentLogOfQemuVm(rootDisk: string): Promise<string> {
  if (!existsSync(rootDisk)) return `(no ${rootDisk})`;
  const tmp = mkdtempSync('/var/tmp/e2e-root-');
  const raw = join(tmp, 'root.raw');
  let loop = '';
  try {
    await runOk('qemu-img', ['convert', '-U', '-O', 'raw', rootDisk, raw]);
    const table = JSON.parse(await runOk('sfdisk', ['-J', raw])) as {
      partitiontable: { partitions: Array<{ start: number }> };
    };
    const start = table.partitiontable.partitions[0]?.start ?? 0;
    loop = (await runOk('losetup', ['-r', '-f', '--show', '-o', String(start * 512), raw])).trim();
    const listing = await run('debugfs', ['-R', 'ls /var/vcap/bosh/log', loop]);
    const rotated = (listing.stdout.match(/@[0-9a-f]+\.[su]/g) ?? []).sort();
    let text = '';
    for (const f of [...rotated.slice(-1), 'current'])
      text += (await run('debugfs', ['-R', `cat /var/vcap/bosh/log/${f}`, loop])).stdout;
    return text || '(the agent log is empty)';
  } finally {
    if (loop) await run('losetup', ['-d', loop]);
    rmSync(tmp, { recursive: true, force: true });
  }
}
