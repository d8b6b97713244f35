import { ensure, ensureEqual, ensureErrorType } from '../../lib/assert.ts';
import { describeDiff, isEmpty, settledDiff, snapshot } from '../../lib/state.ts';
import type { ContractRun } from './context.ts';
import { missing } from './context.ts';

/** Missing resources and the exact error types callers depend on. */
export async function runMissingResources(t: ContractRun): Promise<void> {
  const { suite, c } = t;
  const { cpi } = suite;
  await c('delete_vm of a missing VM is VMNotFound', async () => {
    ensureErrorType(
      await cpi.callError('delete_vm', [missing('vm')]),
      'Bosh::Clouds::VMNotFound',
      'delete_vm',
    );
    ensureErrorType(
      await cpi.callError('delete_vm', ['i-0123456789abcdef']),
      'Bosh::Clouds::VMNotFound',
      'delete_vm of a foreign-looking CID',
    );
  });
  await c('delete_disk of a missing disk is DiskNotFound', async () => {
    ensureErrorType(
      await cpi.callError('delete_disk', [missing('disk')]),
      'Bosh::Clouds::DiskNotFound',
      'delete_disk',
    );
    ensureErrorType(
      await cpi.callError('delete_disk', ['vol-0123456789abcdef']),
      'Bosh::Clouds::DiskNotFound',
      'delete_disk of a foreign-looking CID',
    );
  });
  await c('has_vm / has_disk of missing resources are false (real booleans)', async () => {
    ensureEqual(await cpi.call('has_vm', [missing('vm')]), false, 'has_vm');
    ensureEqual(await cpi.call('has_disk', [missing('disk')]), false, 'has_disk');
  });
  await c(
    'delete_stemcell of a missing stemcell succeeds quietly (the Director does not know StemcellNotFound)',
    async () => {
      ensureEqual(await cpi.call('delete_stemcell', [missing('stemcell')]), null, 'delete_stemcell result');
    },
  );
  await c(
    'get_disks / reboot_vm / set_vm_metadata of a missing VM are errors, not answers about nothing',
    async () => {
      for (const [m, args] of [
        ['get_disks', [missing('vm')]],
        ['reboot_vm', [missing('vm')]],
        ['set_vm_metadata', [missing('vm'), { director: 'd' }]],
      ] as const) {
        const e = await cpi.callError(m, [...args]);
        ensureErrorType(e, ['Bosh::Clouds::VMNotFound', 'Bosh::Clouds::CloudError'], m);
      }
    },
  );
  await c('create_vm from a missing stemcell fails and creates nothing', async () => {
    const before = await snapshot(suite.scope);
    const e = await cpi.callError('create_vm', [
      'agent-x',
      missing('stemcell'),
      {},
      suite.addresses.network(),
      [],
      {},
    ]);
    ensureErrorType(e, ['Bosh::Clouds::VMCreationFailed', 'Bosh::Clouds::CloudError'], 'create_vm');
    const d = await settledDiff(suite.scope, before);
    ensure(isEmpty(d), () => `it left:\n${describeDiff(d)}`);
  });
}
