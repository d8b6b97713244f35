import { ensure, ensureEqual, short } from '../../lib/assert.ts';
import { KNOWN_ERROR_TYPES } from '../../lib/cpi.ts';
import type { ContractRun } from './context.ts';

/** create_stemcell and delete_stemcell, beyond the one the suite set up with. */
export async function runStemcells(t: ContractRun): Promise<void> {
  const { suite, c } = t;
  const { cpi } = suite;
  await c('create_stemcell (v2, two arguments) and delete_stemcell twice', async () => {
    const cid = await cpi.call<string>('create_stemcell', [suite.stemcellImage, {}], { apiVersion: 2 });
    ensure(typeof cid === 'string' && cid !== '', `create_stemcell returned ${short(cid)}`);
    ensureEqual(await cpi.call('delete_stemcell', [cid]), null, 'delete_stemcell');
    ensureEqual(await cpi.call('delete_stemcell', [cid]), null, 'second delete_stemcell');
  });
  await c('create_stemcell of a missing image fails', async () => {
    const e = await cpi.callError('create_stemcell', ['/nonexistent/conformance/image', {}]);
    ensure(KNOWN_ERROR_TYPES.has(e.type), e.type);
  });
}
