import { existsSync } from 'node:fs';
import { ensure } from '../lib/assert.ts';
import type { Suite } from '../lib/env.ts';
import { createVm } from '../lib/vm.ts';
import { corpus, type Fixture } from './bad-input/corpus.ts';
import { fuzz } from './bad-input/fuzz.ts';
import { outside } from './bad-input/outside.ts';
import { runCases } from './bad-input/run-cases.ts';

/**
 * Malformed requests (a corpus of 200+ cases, then property-based inputs): each gets a well-formed
 * error and changes nothing, neither the run's resources nor anything outside data_dir.
 * The parts: bad-input/expect.ts (what an answer must be), corpus.ts, run-cases.ts (batches that
 * name a case that changed state), outside.ts (what must never change), fuzz.ts.
 */
export async function runBadInput(suite: Suite): Promise<void> {
  const { cpi, reporter } = suite;
  const vm = await createVm(cpi, suite.stemcellCid, suite.addresses);
  const disk = await cpi.call<string>('create_disk', [16, {}, null]);
  const snap = await cpi.call<string>('snapshot_disk', [disk, {}]);
  const container = suite.isDocker ? ((await suite.docker.vmContainer(vm.cid))?.Id ?? '') : '';
  const helper = suite.isDocker
    ? (await suite.docker.containers()).find((c) => c.Labels?.['io.bosh.cpi.role'] === 'helper')
    : undefined;
  const f: Fixture = {
    vm: vm.cid,
    vmAgent: vm.agentId,
    container,
    disk,
    snap,
    stemcell: suite.stemcellCid,
    helperName: helper?.Names[0]?.replace(/^\//, '') ?? '',
    helperImage: helper?.Image ?? '',
  };
  suite.cleanups.push(async () => {
    await cpi.request('delete_snapshot', [snap]);
    await cpi.request('delete_vm', [vm.cid]);
    await cpi.request('delete_disk', [disk]);
  });
  const outsideBefore = await outside(suite, f);

  const cases = corpus(suite, f, cpi);
  reporter.log(`   corpus: ${cases.length} malformed requests`);
  await reporter.check(
    'bad input',
    `the corpus holds at least 200 malformed requests (${cases.length})`,
    () => ensure(cases.length >= 200, `only ${cases.length}`),
  );
  await runCases(suite, cases, '');
  const { passed, failed } = reporter.counts('bad input');
  reporter.log(`   corpus: ${passed - 1} cases answered correctly, ${failed} not`);

  await fuzz(suite, f);

  await reporter.check(
    'bad input',
    'nothing outside the CPI was touched (canary tree, /etc/passwd, shell-injection marker)',
    async () => {
      ensure(!existsSync(suite.pwnedMarker), `${suite.pwnedMarker} exists: a hostile ID reached a shell`);
      const now = await outside(suite, f);
      ensure(now.canary === outsideBefore.canary, `${suite.canaryDir} changed: a traversing ID reached it`);
      ensure(now.etcPasswd === outsideBefore.etcPasswd, '/etc/passwd was modified');
    },
  );
  await reporter.check('bad input', 'the fixture VM, its disk and snapshot survived the corpus', async () => {
    const now = await outside(suite, f);
    ensure(await cpi.call('has_vm', [vm.cid]), 'has_vm of the fixture VM is false');
    ensure(await cpi.call('has_disk', [disk]), 'has_disk of the fixture disk is false');
    if (suite.isDocker) {
      ensure(
        now.fixtureContainer === outsideBefore.fixtureContainer,
        'the fixture VM container was replaced or removed',
      );
      ensure(now.helper === outsideBefore.helper, 'the CPI helper container was removed');
    }
    const restored = await cpi.call<string>('create_disk', [16, { snapshot_cid: snap }, null]);
    await cpi.call('delete_disk', [restored]);
  });
}
