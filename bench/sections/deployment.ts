import { statSync } from 'node:fs';
import type { Bench } from '../lib/context.ts';
import { must } from '../lib/cpi.ts';

export interface DeploymentResult {
  vms: number;
  stemcellMiB: number;
  calls: number;
  /** ms per phase, and the total. */
  phases: Record<string, number>;
  total: number;
}

const VMS = 10;

/** Like Promise.all, but waits for every call to finish before throwing (nothing left in flight for the cleanup). */
async function settled<T>(promises: Array<Promise<T>>): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

/**
 * A deploy and a delete the way the Director runs them with one canary and max_in_flight 10:
 * upload the stemcell; per instance create_vm, set_vm_metadata, create_disk, attach_disk,
 * set_disk_metadata (the canary first, then the other nine in parallel); then per instance (all
 * in parallel) detach_disk, delete_vm, delete_disk; then delete_stemcell. The CPI creates its
 * own network for the instances (and removes it with the last VM).
 */
export async function deployment(
  bench: Bench,
  imagePath: string,
  log: (s: string) => void,
): Promise<DeploymentResult> {
  const imageBytes = statSync(imagePath).size;
  const phases: Record<string, number> = {};
  let calls = 0;
  const call = async <T>(method: string, args: unknown[]): Promise<T> => {
    calls++;
    const r = must(method, await bench.cpi.call<T>(method, args));
    if (method === 'create_vm') bench.vmCids.add((r.result as [string])[0]);
    return r.result;
  };
  const phase = async <T>(name: string, step: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    const value = await step();
    phases[name] = Math.round(performance.now() - started);
    log(`  deployment: ${name} ${phases[name]} ms`);
    return value;
  };
  const started = performance.now();
  const stemcell = await phase('create_stemcell', () =>
    call<string>('create_stemcell', [
      imagePath,
      { name: 'bosh-bench', version: '2', os: 'busybox' },
      { tags: {} },
    ]),
  );
  const net = bench.deploymentSubnet;
  const instance = async (i: number) => {
    const ip = `10.253.${net.third}.${10 + i}`;
    const args = bench.vmArgs(stemcell, `agent-dep-${i}`, bench.networksFor(ip, net, false));
    const [vmCid] = await call<[string]>('create_vm', args);
    const meta = {
      director: 'bench',
      deployment: 'bench-dep',
      instance_group: 'web',
      index: String(i),
      name: `web/${i}`,
    };
    await call('set_vm_metadata', [vmCid, meta]);
    const disk = await call<string>('create_disk', [1024, {}, vmCid]);
    await call('attach_disk', [vmCid, disk]);
    await call('set_disk_metadata', [
      disk,
      { deployment: 'bench-dep', instance_group: 'web', instance_index: String(i) },
    ]);
    return { vmCid, disk };
  };
  const canary = await phase('canary instance (vm, metadata, disk, attach)', () => instance(0));
  const others = await phase(`${VMS - 1} more instances in parallel`, () =>
    settled(Array.from({ length: VMS - 1 }, (_, i) => instance(i + 1))),
  );
  await phase(`delete ${VMS} instances in parallel (detach, delete vm, delete disk)`, () =>
    settled(
      [canary, ...others].map(async ({ vmCid, disk }) => {
        await call('detach_disk', [vmCid, disk]);
        await call('delete_vm', [vmCid]);
        await call('delete_disk', [disk]);
      }),
    ),
  );
  await phase('delete_stemcell', () => call('delete_stemcell', [stemcell]));
  return {
    vms: VMS,
    stemcellMiB: Math.round((imageBytes / 1048576) * 10) / 10,
    calls,
    phases,
    total: Math.round(performance.now() - started),
  };
}
