/**
 * A deployment-sized run through the real bin/cpi, on one engine and then on two: N VMs, each
 * with a persistent disk, created and torn down with the Director's kind of parallelism
 * (max_in_flight). The second engine is a private dockerd on this machine reached over TCP+TLS
 * (test/support/engine.ts), so both engines share this machine's CPUs and disk: the numbers show
 * the CPI's overhead for several hosts, not the capacity separate machines would add.
 *
 *   npx tsx bench/multi-host.ts [--vms 10] [--parallel 5] [--rounds 2]
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { Cpi, writeConfig } from '../test/support/cpi.ts';
import {
  docker,
  dockerTry,
  ensureDockerRunning,
  freeSubnet,
  removeAllFor,
  removeDataDir,
} from '../test/support/docker.ts';
import { startTestEngine } from '../test/support/engine.ts';
import { buildStemcell } from '../test/support/stemcell.ts';

const { values } = parseArgs({
  options: {
    vms: { type: 'string', default: '10' },
    parallel: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '2' },
  },
});
const VMS = Number(values.vms);
const PARALLEL = Number(values.parallel);
const ROUNDS = Number(values.rounds);

ensureDockerRunning();
const director = `bench-hosts-${randomUUID().slice(0, 8)}`;
const dataDirs = {
  local: `/var/lib/bosh-cpi-bench-${director}-local`,
  remote: `/var/lib/bosh-cpi-bench-${director}-remote`,
};
const work = mkdtempSync(join(tmpdir(), 'cpi-bench-hosts-'));
const agent = { mbus: 'nats://nats:bench@127.0.0.1:4222', ntp: [] };
const subnets = { local: freeSubnet('10.254'), remote: freeSubnet('10.254') };
while (subnets.remote.base === subnets.local.base) subnets.remote = freeSubnet('10.254');
const engine = await startTestEngine();
const configs: string[] = [];
/** Everything created, so that a failed run still releases its disks' mounts before the data dirs go. */
const leftovers = new Map<string, Cpi>();

function cpiFor(docker: Record<string, unknown>): Cpi {
  const path = writeConfig({ docker, agent });
  configs.push(path);
  const cpi = new Cpi(path, 2);
  cpi.context = { director_uuid: director };
  return cpi;
}

const networkNames = { z1: `${director}-z1`, z2: `${director}-z2` };

const oneEngine = cpiFor({ data_dir: dataDirs.local });
const twoEngines = cpiFor({
  hosts: [
    { name: 'z1', host: 'unix:///var/run/docker.sock', data_dir: dataDirs.local },
    {
      name: 'z2',
      host: engine.tcp,
      tls: {
        ca: engine.tlsFiles.ca,
        certificate: engine.tlsFiles.certificate,
        private_key: engine.tlsFiles.privateKey,
      },
      data_dir: dataDirs.remote,
    },
  ],
});

/** Runs `work` over the items, `limit` at a time; after a failure no new item starts, and all end before it throws. */
async function inParallel<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (!failed && next < items.length) {
      try {
        await work(items[next++] as T);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  });
  const outcomes = await Promise.allSettled(runners);
  const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failure) throw failure.reason;
}

interface Result {
  deployS: number;
  teardownS: number;
  createVmMs: number[];
  split: Record<string, number>;
}

/** AZ placement as a cloud config would do it: instance i in z1 or z2, each AZ with its own subnet. */
async function deployment(cpi: Cpi, stemcell: string, azs: Array<'z1' | 'z2'>, count = VMS): Promise<Result> {
  const createVmMs: number[] = [];
  const made: Array<{ vm: string; disk: string }> = [];
  const t0 = performance.now();
  await inParallel([...Array(count).keys()], PARALLEL, async (i) => {
    const az = azs[i % azs.length] as 'z1' | 'z2';
    const subnet = az === 'z1' ? subnets.local : subnets.remote;
    const props = cpi === oneEngine ? {} : { host: az };
    const networks = {
      default: {
        type: 'manual',
        ip: subnet.ip(20 + i),
        netmask: '255.255.255.0',
        gateway: subnet.gateway,
        dns: [],
        default: ['dns', 'gateway'],
        // A network the bench made: the CPI never removes it, nor does another tree's CPI on the shared engine.
        cloud_properties: { name: networkNames[az] },
      },
    };
    const c0 = performance.now();
    const [vm] = await cpi.call<[string]>('create_vm', [`agent-${i}`, stemcell, props, networks, [], {}]);
    createVmMs.push(performance.now() - c0);
    leftovers.set(vm, cpi);
    await cpi.call('set_vm_metadata', [vm, { deployment: 'bench', instance_group: 'web', index: String(i) }]);
    const disk = await cpi.call<string>('create_disk', [256, {}, vm]);
    leftovers.set(disk, cpi);
    await cpi.call('attach_disk', [vm, disk]);
    made.push({ vm, disk });
  });
  const deployS = (performance.now() - t0) / 1000;
  const split: Record<string, number> = {};
  for (const { vm } of made) {
    const host = vm.split('@')[1] ?? 'default';
    split[host] = (split[host] ?? 0) + 1;
  }
  const t1 = performance.now();
  await inParallel(made, PARALLEL, async ({ vm, disk }) => {
    await cpi.call('detach_disk', [vm, disk]);
    await cpi.call('delete_vm', [vm]);
    await cpi.call('delete_disk', [disk]);
    leftovers.delete(vm);
    leftovers.delete(disk);
  });
  return { deployS, teardownS: (performance.now() - t1) / 1000, createVmMs, split };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

try {
  docker('network', 'create', '--subnet', subnets.local.cidr, networkNames.z1);
  engine.docker('network', 'create', '--subnet', subnets.remote.cidr, networkNames.z2);
  const image = buildStemcell(join(work, 'stemcell'), { paddingMiB: 64 }).imagePath;
  const rows: string[] = [];
  for (const [label, cpi, azs] of [
    ['1 engine               ', oneEngine, ['z1']],
    ['2 engines, AZs z1+z2   ', twoEngines, ['z1', 'z2']],
    ['2 engines, all VMs in z1', twoEngines, ['z1']],
  ] as const) {
    const s0 = performance.now();
    const stemcell = await cpi.call<string>('create_stemcell', [image, {}]);
    const stemcellS = (performance.now() - s0) / 1000;
    // One warm-up VM per host: the first VM on a host prepares its data_dir and helper container.
    await deployment(cpi, stemcell, [...azs], azs.length);
    for (let round = 1; round <= ROUNDS; round++) {
      const r = await deployment(cpi, stemcell, [...azs]);
      rows.push(
        `${label}  round ${round}  stemcell ${stemcellS.toFixed(1)} s  deploy ${r.deployS.toFixed(1)} s  ` +
          `teardown ${r.teardownS.toFixed(1)} s  total ${(r.deployS + r.teardownS).toFixed(1)} s  ` +
          `create_vm median ${median(r.createVmMs).toFixed(0)} ms  VMs per host ${JSON.stringify(r.split)}`,
      );
      console.log(rows[rows.length - 1]);
    }
    await cpi.call('delete_stemcell', [stemcell]);
  }
  console.log(`\n${VMS} VMs with a 256 MiB disk each, ${PARALLEL} in flight:\n${rows.join('\n')}`);
} finally {
  for (const [cid, cpi] of leftovers) if (cid.startsWith('vm-')) await cpi.run('delete_vm', [cid]);
  for (const [cid, cpi] of leftovers) if (cid.startsWith('disk-')) await cpi.run('delete_disk', [cid]);
  removeAllFor(director);
  dockerTry('network', 'rm', networkNames.z1);
  await engine.destroy();
  removeDataDir(dataDirs.local);
  removeDataDir(dataDirs.remote);
  for (const c of configs) rmSync(dirname(c), { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
}
