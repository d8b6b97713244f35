import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cpi } from './cpi.ts';
import { DockerApi } from './docker.ts';
import { type HostProbe, QemuProbe } from './host-probe.ts';
import type { Reporter } from './report.ts';
import { loopDevices, mountTable, type Scope, walk } from './state.ts';
import { Addresses } from './vm.ts';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface Options {
  cpi?: string;
  config?: string;
  stemcell?: string;
  /** The Docker engine the CPI uses, when its config does not say it in this CPI's layout. */
  engine?: string;
  full: boolean;
  only?: Set<string>;
  keep: boolean;
}

export function parseArgs(argv: string[]): Options {
  const opts: Options = { full: false, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const value = () => {
      const [flag, inline] = a.split(/=(.*)/s);
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (a === '--full') opts.full = true;
    else if (a === '--keep') opts.keep = true;
    else if (a.startsWith('--cpi')) opts.cpi = value();
    else if (a.startsWith('--config')) opts.config = value();
    else if (a.startsWith('--stemcell')) opts.stemcell = value();
    else if (a.startsWith('--engine')) opts.engine = value();
    else if (a.startsWith('--only'))
      opts.only = new Set(
        value()
          .split(',')
          .map((s) => s.trim()),
      );
    else if (a === '--help' || a === '-h') {
      process.stdout.write(
        'usage: npm run conformance -- [--cpi "<command>"] [--config <cpi.json>] [--engine unix:///…] [--stemcell <image>] [--full] [--only contract,faults,...] [--keep]\n',
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (opts.config && !opts.cpi) opts.cpi = join(REPO, 'bin/cpi');
  return opts;
}

/** Fake credentials planted in the config and in create_vm env: none may ever leave the CPI. */
export interface Secrets {
  natsPassword: string;
  blobstorePassword: string;
  privateKey: string;
  token: string;
  envPassword: string;
  envPrivateKey: string;
  all: string[];
}

function makeSecrets(): Secrets {
  const r = () => randomBytes(12).toString('hex');
  const pem = (label: string) =>
    `-----BEGIN ${label}-----\n${randomBytes(96)
      .toString('base64')
      .match(/.{1,64}/g)
      ?.join('\n')}\n-----END ${label}-----\n`;
  const s = {
    natsPassword: `natsPW${r()}`,
    blobstorePassword: `blobPW${r()}`,
    privateKey: pem('RSA PRIVATE KEY'),
    token: `tok${r()}`,
    envPassword: `$6$${r()}$${r()}`,
    envPrivateKey: pem('PRIVATE KEY'),
  };
  return { ...s, all: Object.values(s) };
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export interface Suite {
  opts: Options;
  reporter: Reporter;
  cpi: Cpi;
  /** The config the CPI runs with (the given or default one, with fake secrets planted). */
  configPath: string;
  config: Record<string, unknown>;
  plugin: string;
  isDocker: boolean;
  dockerHost: string;
  docker: DockerApi;
  dataDir: string;
  /** True when the suite chose data_dir itself, and so removes it at the end. */
  ownsDataDir: boolean;
  directorUuid: string;
  scope: Scope;
  addresses: Addresses;
  subnetPrefix: string;
  stemcellImage: string;
  stemcellCid: string;
  secrets: Secrets;
  /** A directory beside data_dir that path-traversal IDs aim at; it must never change. */
  canaryDir: string;
  /** A file that shell-injection IDs try to create; it must never appear. */
  pwnedMarker: string;
  workDir: string;
  /** Counts for faults and fuzzing: small by default (CI), large with --full. */
  scale: { faultRuns: number; fuzzRuns: number; concurrency: number };
  cleanups: Array<() => Promise<void>>;
  /** For VMs the suite cannot docker exec into (qemu): the host-side view of VMs and disks. */
  hostProbe?: HostProbe;
}

/** The highest CPI API version the suite knows the result shapes of. */
export const SUITE_MAX_API_VERSION = 3;

/**
 * The api_version every later request carries, chosen as the Director chooses it: the lower of
 * its own maximum and the one `info` reports (protocol.md §1.5). A CPI whose info gives none is
 * spoken to in v1, as the CLI does.
 */
export async function negotiateApiVersion(cpi: Cpi): Promise<number> {
  const info = await cpi.call<Record<string, unknown> | null>('info', [], { apiVersion: null });
  const reported = info?.api_version;
  if (typeof reported !== 'number' || !Number.isInteger(reported) || reported < 1) return 1;
  return Math.min(SUITE_MAX_API_VERSION, reported);
}

/** The engine of a bosh-docker-cpi (Go) config: `Actions.Docker.host`. */
function engineOfGoConfig(config: Record<string, unknown>): string {
  const actions = isObject(config.Actions) ? config.Actions : {};
  const docker = isObject(actions.Docker) ? actions.Docker : {};
  return typeof docker.host === 'string' ? docker.host : 'unix:///var/run/docker.sock';
}

/** A /24 in 10.252.0.0/16 that no route and no Docker network uses yet. */
export function pickSubnet(networks: Awaited<ReturnType<DockerApi['networks']>>): string {
  const routes = execFileSync('ip', ['route'], { encoding: 'utf8' });
  const used = new Set<number>();
  for (const m of routes.matchAll(/10\.252\.(\d+)\./g)) used.add(Number(m[1]));
  for (const n of networks)
    for (const c of n.IPAM?.Config ?? []) {
      const m = /^10\.252\.(\d+)\./.exec(c.Subnet ?? '');
      if (m) used.add(Number(m[1]));
      // A wider network inside 10.252/16 blocks everything.
      if (/^10\.252\.0\.0\/(1[6-9]|2[0-3])$/.test(c.Subnet ?? '')) for (let i = 0; i < 256; i++) used.add(i);
    }
  for (let tries = 0; tries < 200; tries++) {
    const n = 16 + Math.floor(Math.random() * 224);
    if (!used.has(n)) return `10.252.${n}.`;
  }
  throw new Error('no free /24 in 10.252.0.0/16');
}

export async function setUp(opts: Options, reporter: Reporter): Promise<Suite> {
  const workDir = mkdtempSync(join(tmpdir(), 'cpi-conformance-'));
  chmodSync(workDir, 0o700);
  const secrets = makeSecrets();
  const tag = randomBytes(4).toString('hex');
  const directorUuid = `conformance-${randomUUID()}`;

  let base: Record<string, unknown>;
  let ownsDataDir = false;
  if (opts.config) {
    base = JSON.parse(readFileSync(opts.config, 'utf8')) as Record<string, unknown>;
  } else {
    ownsDataDir = true;
    base = {
      cloud: {
        plugin: 'docker',
        properties: {
          docker: { host: 'unix:///var/run/docker.sock', data_dir: `/var/lib/bosh-conformance-${tag}` },
          agent: { mbus: 'nats://nats:placeholder@127.0.0.1:4222', ntp: ['127.0.0.1'] },
        },
      },
    };
  }
  const cloud = isObject(base.cloud) ? base.cloud : {};
  const plugin = typeof cloud.plugin === 'string' ? cloud.plugin : 'unknown';
  const props = isObject(cloud.properties) ? cloud.properties : {};
  const iaas = isObject(props[plugin]) ? (props[plugin] as Record<string, unknown>) : {};
  const isDocker = plugin === 'docker';
  const dockerHost =
    opts.engine ?? (typeof iaas.host === 'string' ? iaas.host : undefined) ?? engineOfGoConfig(base);
  const dataDir = typeof iaas.data_dir === 'string' ? iaas.data_dir : '/var/lib/bosh-docker-cpi';

  // Plant fake secrets where real ones live: the mbus URL, blobstore credentials, a TLS-like key, a token.
  const agent = isObject(props.agent) ? { ...props.agent } : {};
  const mbus = typeof agent.mbus === 'string' ? agent.mbus : 'nats://nats:x@127.0.0.1:4222';
  agent.mbus = mbus.replace(/^(\w+:\/\/)(?:[^@/]*@)?/, `$1nats:${secrets.natsPassword}@`);
  agent.blobstore = {
    provider: 'dav',
    options: { endpoint: 'http://127.0.0.1:25250', user: 'agent', password: secrets.blobstorePassword },
  };
  const config = {
    ...base,
    cloud: {
      ...cloud,
      properties: {
        ...props,
        agent,
        conformance_fake_tls: { certificate: 'not-a-cert', private_key: secrets.privateKey },
        conformance_api_token: secrets.token,
      },
    },
  };
  const configPath = join(workDir, 'cpi.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2), { mode: 0o600 });

  const docker = new DockerApi(dockerHost);
  if (!(await docker.ping())) throw new Error(`the Docker engine at ${dockerHost} does not answer`);
  const subnetPrefix = pickSubnet(await docker.networks());

  const cpi = new Cpi(opts.cpi ?? join(REPO, 'bin/cpi'), configPath, directorUuid);
  if (!opts.cpi && !existsSync(join(REPO, 'dist/cpi')))
    throw new Error('dist/cpi is missing: run `npm run build` first');

  const canaryDir = `${dataDir}-canary`;
  mkdirSync(join(canaryDir, 'victim'), { recursive: true });
  writeFileSync(
    join(canaryDir, 'victim', 'disk.img'),
    'canary: a traversing ID must never reach this file\n',
  );
  writeFileSync(join(canaryDir, 'victim', 'metadata.json'), '{}');
  const pwnedMarker = `/tmp/cpi-conformance-pwned-${tag}`;

  let stemcellImage = opts.stemcell ?? '';
  if (!stemcellImage && plugin === 'qemu') {
    const { buildTestStemcell } = await import('../../test/qemu/support/stemcell.ts');
    stemcellImage = buildTestStemcell(join(workDir, 'stemcell')).imagePath;
  }
  if (!stemcellImage) {
    const { buildStemcell } = await import('../../test/support/stemcell.ts');
    stemcellImage = buildStemcell(join(workDir, 'stemcell')).imagePath;
  }
  const scope: Scope = {
    docker,
    dataDir,
    directors: new Set([directorUuid, '']),
    subnetPrefix,
    stemcellImageIds: new Set(),
  };
  const hostProbe =
    plugin === 'qemu'
      ? new QemuProbe(
          dataDir,
          typeof iaas.default_bridge === 'string' ? iaas.default_bridge : undefined,
          workDir,
        )
      : undefined;
  if (hostProbe) scope.hostResources = () => hostProbe.hostResources();
  const full = opts.full;
  const suite: Suite = {
    opts,
    reporter,
    cpi,
    configPath,
    config,
    plugin,
    isDocker,
    dockerHost,
    docker,
    dataDir,
    ownsDataDir,
    directorUuid,
    scope,
    addresses: new Addresses(subnetPrefix),
    subnetPrefix,
    stemcellImage,
    stemcellCid: '',
    secrets,
    canaryDir,
    pwnedMarker,
    workDir,
    scale: { faultRuns: full ? 54 : 12, fuzzRuns: full ? 400 : 60, concurrency: 20 },
    cleanups: [],
    ...(hostProbe ? { hostProbe } : {}),
  };
  reporter.log(`CPI: ${cpi.command}`);
  reporter.log(
    `config: ${configPath} (plugin ${plugin}, data_dir ${dataDir}, engine ${dockerHost}); subnet ${subnetPrefix}0/24`,
  );
  reporter.log(`director_uuid: ${directorUuid}; mode: ${full ? 'full' : 'default (CI-sized)'}`);

  cpi.apiVersion = await negotiateApiVersion(cpi);
  reporter.log(
    `api_version: ${cpi.apiVersion} (the lower of the suite's ${SUITE_MAX_API_VERSION} and info's)`,
  );
  const stemcellCid = await cpi.call<string>('create_stemcell', [
    stemcellImage,
    {},
    { tags: { suite: 'conformance' } },
  ]);
  suite.stemcellCid = stemcellCid;
  await refreshStemcellImages(suite);
  // One disk round trip first: a CPI may lay out its data_dir lazily, and that one-time layout
  // must not count as a leftover in the comparisons that follow.
  const warm = await cpi.call<string>('create_disk', [1, {}, null]);
  await cpi.call('delete_disk', [warm]);
  reporter.log(`stemcell: ${stemcellCid} from ${stemcellImage}`);
  return suite;
}

/** Remembers the image IDs of the run's stemcells (containers built from them are the run's). */
export async function refreshStemcellImages(
  suite: Suite,
  docker = suite.docker,
  ids = suite.scope.stemcellImageIds,
): Promise<void> {
  for (const image of await docker.images()) {
    const labels = image.Labels ?? {};
    if (
      Object.values(labels).includes(suite.stemcellCid) ||
      (image.RepoTags ?? []).some((t) => t.includes(suite.stemcellCid))
    )
      ids.add(image.Id);
  }
}

/**
 * Removes what the run created: first through the CPI (the way an operator would), then by
 * force for anything the CPI could not remove. Only the run's own resources are touched.
 */
export async function tearDown(suite: Suite): Promise<string[]> {
  const notes: string[] = [];
  for (const fn of suite.cleanups.reverse())
    await fn().catch((e) => notes.push(`cleanup step failed: ${(e as Error).message}`));
  if (suite.opts.keep) return [`--keep: left ${suite.dataDir} and the run's resources in place`];
  const { docker, scope } = suite;
  const ours = (labels: Record<string, string> | null) =>
    !!labels &&
    'io.bosh.cpi' in labels &&
    labels['io.bosh.cpi.role'] !== 'helper' &&
    scope.directors.has(labels['io.bosh.cpi.director'] ?? '\u0000');
  const containers = (await docker.containers()).filter(
    (c) => ours(c.Labels) || scope.stemcellImageIds.has(c.ImageID),
  );
  for (const c of containers) {
    const vm = c.Labels?.['io.bosh.cpi.vm'];
    if (vm) await suite.cpi.request('delete_vm', [vm]).catch(() => undefined);
    if (await docker.inspectContainer(c.Id)) {
      notes.push(`container ${c.Names[0]} needed a forced removal`);
      await docker.request('DELETE', `/containers/${c.Id}?force=1`);
    }
  }
  const fsEntries = existsSync(suite.dataDir) ? walk(suite.dataDir, 1) : [];
  for (const e of fsEntries) {
    const [kind, cid] = e.path.split('/');
    if (!cid || cid.startsWith('.')) continue;
    if (kind === 'disks') await suite.cpi.request('delete_disk', [cid]).catch(() => undefined);
    if (kind === 'snapshots') await suite.cpi.request('delete_snapshot', [cid]).catch(() => undefined);
  }
  if (suite.stemcellCid)
    await suite.cpi.request('delete_stemcell', [suite.stemcellCid]).catch(() => undefined);
  for (const v of await docker.volumes()) {
    const vm = v.Labels?.['io.bosh.cpi.vm'];
    if (vm && containers.some((c) => c.Labels?.['io.bosh.cpi.vm'] === vm)) {
      const res = await docker.request('DELETE', `/volumes/${encodeURIComponent(v.Name)}`);
      if (res.status < 300) notes.push(`volume ${v.Name} was left behind and removed by force`);
    }
  }
  for (const n of await docker.networks()) {
    const subnets = (n.IPAM?.Config ?? []).map((c) => c.Subnet ?? '');
    if (ours(n.Labels) || subnets.some((s) => s.startsWith(suite.subnetPrefix))) {
      const res = await docker.request('DELETE', `/networks/${n.Id}`);
      if (res.status < 300) notes.push(`network ${n.Name} was left behind and removed by force`);
    }
  }
  for (const id of scope.stemcellImageIds) {
    const res = await docker.request('DELETE', `/images/${id}?force=1`);
    if (res.status < 300)
      notes.push(`stemcell image ${id.slice(7, 19)} was left behind and removed by force`);
  }
  if (suite.ownsDataDir) {
    const under = (p: string) => p === suite.dataDir || p.startsWith(`${suite.dataDir}/`);
    const mounts = mountTable()
      .map((m) => m.target)
      .filter(under)
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) {
      try {
        execFileSync('umount', [m], { stdio: 'ignore' });
      } catch {
        execFileSync('umount', ['-l', m], { stdio: 'ignore' });
      }
    }
    for (const l of loopDevices())
      if (under(l.backFile)) execFileSync('losetup', ['-d', l.name], { stdio: 'ignore' });
    if (existsSync(suite.dataDir) && statSync(suite.dataDir).isDirectory()) {
      // Mount points of disks still recorded as attached are immutable while unmounted.
      spawnSync('chattr', ['-R', '-f', '-i', suite.dataDir], { stdio: 'ignore' });
      rmSync(suite.dataDir, { recursive: true, force: true });
    }
    rmSync(suite.canaryDir, { recursive: true, force: true });
  } else {
    rmSync(suite.canaryDir, { recursive: true, force: true });
  }
  rmSync(suite.pwnedMarker, { force: true });
  rmSync(suite.workDir, { recursive: true, force: true });
  docker.close();
  return notes;
}
