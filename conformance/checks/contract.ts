import { CheckError, ensure } from '../lib/assert.ts';
import type { Suite } from '../lib/env.ts';
import type { Created } from './contract/context.ts';
import { runDiskLifecycle } from './contract/disk-lifecycle.ts';
import { runEnvelope } from './contract/envelope.ts';
import { runMissingResources } from './contract/missing-resources.ts';
import { runStemcells } from './contract/stemcells.ts';
import { runVmLifecycle } from './contract/vm-lifecycle.ts';

export { checkSettingsShape } from './contract/settings-shape.ts';

/** Every method of the contract (protocol.md §3); the suite exercises each at least once. */
export const METHODS = [
  'info',
  'create_stemcell',
  'delete_stemcell',
  'create_vm',
  'delete_vm',
  'has_vm',
  'reboot_vm',
  'set_vm_metadata',
  'calculate_vm_cloud_properties',
  'create_disk',
  'delete_disk',
  'has_disk',
  'attach_disk',
  'detach_disk',
  'set_disk_metadata',
  'get_disks',
  'resize_disk',
  'update_disk',
  'snapshot_disk',
  'delete_snapshot',
  'create_network',
  'delete_network',
  'current_vm_id',
  'configure_networks',
  'ping',
] as const;

/**
 * The contract (protocol.md): each part in its own file under contract/, in the order a
 * Director would meet them; a part that needs a VM runs only when one could be created.
 */
export async function runContract(suite: Suite): Promise<void> {
  const { cpi, reporter, docker } = suite;
  const c = (name: string, fn: () => unknown) => reporter.check('contract', name, fn);
  const dockerOnly = async (name: string, fn: () => unknown) => {
    if (suite.isDocker) return c(name, fn);
    reporter.skip('contract', name, 'the CPI is not the Docker one');
    return false;
  };
  const t = { suite, c, dockerOnly };
  const maxApi = await runEnvelope(t);
  await runMissingResources(t);
  const created: Created = { vms: [], disks: [], snaps: [] };
  const vm = await runVmLifecycle(t, maxApi, created);
  if (vm) {
    await runDiskLifecycle(t, vm, created);
    await runStemcells(t);
  }
  // Leave nothing behind for later categories.
  for (const d of created.disks) await cpi.request('delete_disk', [d]);
  for (const v of created.vms) await cpi.request('delete_vm', [v]);
  if (suite.isDocker) {
    await c('after deleting everything, no container of the deleted VMs remains', async () => {
      for (const v of created.vms) ensure(!(await docker.vmContainer(v)), `container of ${v} remains`);
    });
  }
}

/** Per method: every response the suite received was framed correctly (one JSON object, exit 0, ...). */
export async function finishFraming(suite: Suite, requireAll = true): Promise<void> {
  const runs = suite.cpi.allRuns.filter((r) => !r.killed);
  for (const method of METHODS) {
    const of = runs.filter((r) => r.label.startsWith(`${method}(`));
    if (of.length === 0 && !requireAll) continue;
    await suite.reporter.check(
      'contract',
      `framing: all ${of.length} ${method} responses of the run are one JSON object each, exit 0`,
      () => {
        if (of.length === 0 && requireAll) throw new CheckError(`${method} was never called`);
        const bad = of.filter((r) => r.framing.length);
        if (bad.length)
          throw new CheckError(
            bad
              .slice(0, 3)
              .map((r) => `${r.label}: ${r.framing.join('; ')}`)
              .join('\n'),
          );
        const badLog = of.filter((r) => typeof r.response?.log !== 'string');
        if (badLog.length) throw new CheckError('log is not a string');
      },
    );
  }
}
