import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpiRunner, must } from './cpi.ts';
import { RawEngine } from './engine.ts';
import { Host, removeDataDir } from './host.ts';

export interface Options {
  quick: boolean;
  only: Set<string> | undefined;
  /** Size of the incompressible filler in the create_stemcell benchmark's rootfs. */
  paddingMiB: number;
  /** Repetitions of each per-method measurement. */
  reps: number;
  startupReps: number;
  stemcellReps: number;
  parallelReps: number;
  parallelN: number[];
  /** The engine to run on (unix:///path); /var/run/docker.sock unless given. */
  dockerHost?: string;
  /** Pins docker.api_version in the CPI's config (as a peer's config may). */
  apiVersion?: string;
}

/** Options of a method-by-method comparison (ab.ts, peer.ts): no stemcell padding, no parallel sections. */
export const comparisonOptions = (
  reps: number,
  engine: Pick<Options, 'dockerHost' | 'apiVersion'> = {},
): Options => ({
  quick: true,
  only: undefined,
  paddingMiB: 0,
  reps,
  startupReps: reps,
  stemcellReps: 1,
  parallelReps: 1,
  parallelN: [1],
  ...engine,
});

interface NetworkChoice {
  name: string;
  subnet: string;
  third: number;
}

/** Everything the sections share, and every resource they create (so cleanup can find it). */
export class Bench {
  readonly id = randomBytes(4).toString('hex');
  readonly directorUuid = `bench-${this.id}-${randomUUID().slice(0, 8)}`;
  readonly dataDir = `/var/lib/bosh-bench-${this.id}`;
  readonly tmp = mkdtempSync(join(tmpdir(), 'bosh-bench-'));
  readonly configPath = join(this.tmp, 'cpi.json');
  readonly cpi: CpiRunner;
  readonly engine: RawEngine;
  readonly host = new Host();
  /** Pre-made network (not CPI-managed) for per-method and parallel VMs. */
  network!: NetworkChoice;
  /** Subnet left to the CPI to create (and remove) in the deployment-shaped run. */
  deploymentSubnet!: NetworkChoice;
  readonly vmCids = new Set<string>();
  readonly rawNames = new Set<string>();
  private nextHost = 10;

  constructor(readonly opts: Options) {
    const host = opts.dockerHost ?? 'unix:///var/run/docker.sock';
    if (!host.startsWith('unix://'))
      throw new Error(`the benchmark needs a local engine (unix://…), not ${host}`);
    this.engine = new RawEngine(host.slice('unix://'.length));
    writeFileSync(
      this.configPath,
      JSON.stringify({
        cloud: {
          plugin: 'docker',
          properties: {
            docker: {
              host,
              data_dir: this.dataDir,
              ...(opts.apiVersion ? { api_version: opts.apiVersion } : {}),
            },
            agent: { mbus: 'nats://nats:nats@127.0.0.1:4222', ntp: [] },
          },
        },
      }),
    );
    this.cpi = new CpiRunner(this.configPath, this.directorUuid);
  }

  /** Picks two unused /24s in 10.253.0.0/16 (none of the engine's networks nor the host's routes overlap). */
  async chooseNetworks(): Promise<void> {
    const networks = await this.engine.ok<Array<{ IPAM: { Config: Array<{ Subnet?: string }> | null } }>>(
      'GET',
      '/networks',
    );
    const used = new Set<number>();
    for (const n of networks)
      for (const c of n.IPAM.Config ?? []) {
        const m = /^10\.253\.(\d+)\./.exec(c.Subnet ?? '');
        if (m) used.add(Number(m[1]));
        if (/^10\.253\.0\.0\/16$|^10\.0\.0\.0\/8$/.test(c.Subnet ?? ''))
          throw new Error(`network ${c.Subnet} covers 10.253/16`);
      }
    const routes = this.host.out('ip -4 route');
    for (const m of routes.matchAll(/^10\.253\.(\d+)\./gm)) used.add(Number(m[1]));
    const free: number[] = [];
    for (let tries = 0; free.length < 2 && tries < 1000; tries++) {
      const third = 16 + Math.floor(Math.random() * 224);
      if (!used.has(third) && !free.includes(third)) free.push(third);
    }
    const [a, b] = free as [number, number];
    this.network = { name: `bosh-bench-${this.id}`, subnet: `10.253.${a}.0/24`, third: a };
    this.deploymentSubnet = { name: `bosh-10-253-${b}-0-24`, subnet: `10.253.${b}.0/24`, third: b };
    await this.engine.ok('POST', '/networks/create', {
      Name: this.network.name,
      CheckDuplicate: true,
      Driver: 'bridge',
      IPAM: { Driver: 'default', Config: [{ Subnet: this.network.subnet, Gateway: `10.253.${a}.1` }] },
      Labels: { 'io.bosh.cpi': 'bench', 'io.bosh.cpi.director': this.directorUuid },
    });
  }

  /** A fresh address on the pre-made network (wraps; VMs are deleted long before that). */
  nextIp(net: NetworkChoice = this.network): string {
    const ip = `10.253.${net.third}.${this.nextHost}`;
    this.nextHost = this.nextHost >= 250 ? 10 : this.nextHost + 1;
    return ip;
  }

  networksFor(ip: string, net: NetworkChoice = this.network, named = true): Record<string, unknown> {
    return {
      default: {
        type: 'manual',
        ip,
        netmask: '255.255.255.0',
        gateway: `10.253.${net.third}.1`,
        dns: [],
        default: ['dns', 'gateway'],
        cloud_properties: named ? { name: net.name } : {},
      },
    };
  }

  /** create_vm through the CPI (serially); the VM is remembered for cleanup. */
  createVmSync(stemcellCid: string, agentId = `agent-${randomUUID().slice(0, 8)}`) {
    const r = must(
      'create_vm',
      this.cpi.callSync<[string, unknown]>('create_vm', this.vmArgs(stemcellCid, agentId)),
    );
    this.vmCids.add(r.result[0]);
    return { ms: r.ms, vmCid: r.result[0] };
  }

  vmArgs(stemcellCid: string, agentId: string, networks = this.networksFor(this.nextIp())): unknown[] {
    return [agentId, stemcellCid, {}, networks, [], { bosh: { group: 'bench' } }];
  }

  /** Set by SIGINT/SIGTERM: the sections stop at their next repetition. */
  interrupted = false;

  checkInterrupted(): void {
    if (this.interrupted) throw new Error('interrupted');
  }

  /** Removes every container, volume, network and image this run made, and the data_dir. */
  async cleanup(log: (line: string) => void): Promise<void> {
    await sweep(this.engine, this.host, this.directorUuid, this.dataDir, this.vmCids, log);
    rmSync(this.tmp, { recursive: true, force: true });
    this.engine.close();
  }
}

/**
 * Removes what a run (or a killed run: bench/cleanup.ts) left: containers, networks and images
 * labelled with its director UUID, the ephemeral volumes of its VMs, and its data_dir.
 */
export async function sweep(
  engine: RawEngine,
  host: Host,
  directorUuid: string,
  dataDir: string,
  vmCids: Set<string>,
  log: (line: string) => void,
): Promise<void> {
  const byDirector = encodeURIComponent(JSON.stringify({ label: [`io.bosh.cpi.director=${directorUuid}`] }));
  const problems: string[] = [];
  const attempt = async (what: string, step: () => Promise<unknown>) => {
    try {
      await step();
    } catch (e) {
      problems.push(`${what}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  const containers = await engine.ok<Array<{ Id: string; Labels: Record<string, string> | null }>>(
    'GET',
    `/containers/json?all=1&filters=${byDirector}`,
  );
  for (const c of containers) {
    const vm = c.Labels?.['io.bosh.cpi.vm'];
    if (vm) vmCids.add(vm);
  }
  await Promise.all(
    containers.map((c) =>
      attempt(`container ${c.Id}`, () =>
        engine.ok('DELETE', `/containers/${c.Id}?force=1`, undefined, [404]),
      ),
    ),
  );
  const volumes = await engine.ok<{
    Volumes: Array<{ Name: string; Labels: Record<string, string> | null }> | null;
  }>('GET', '/volumes');
  let volumeCount = 0;
  for (const v of volumes.Volumes ?? []) {
    const vm = v.Labels?.['io.bosh.cpi.vm'];
    if ((vm && vmCids.has(vm)) || v.Labels?.['io.bosh.cpi.director'] === directorUuid) {
      volumeCount++;
      await attempt(`volume ${v.Name}`, () => engine.ok('DELETE', `/volumes/${v.Name}`, undefined, [404]));
    }
  }
  const networks = await engine.ok<Array<{ Id: string }>>('GET', `/networks?filters=${byDirector}`);
  for (const n of networks)
    await attempt(`network ${n.Id}`, () => engine.ok('DELETE', `/networks/${n.Id}`, undefined, [404]));
  const images = await engine.ok<Array<{ Id: string }>>('GET', `/images/json?filters=${byDirector}`);
  for (const i of images)
    await attempt(`image ${i.Id}`, () => engine.ok('DELETE', `/images/${i.Id}?force=1`, undefined, [404]));
  await attempt('data_dir', async () => removeDataDir(host, dataDir));
  log(
    `cleanup: ${containers.length} containers, ${volumeCount} volumes, ${networks.length} networks, ${images.length} images, data_dir ${dataDir}` +
      (problems.length ? `; PROBLEMS: ${problems.join('; ')}` : ''),
  );
}
