import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CPI_BIN, request } from '../support/cpi.ts';
import {
  createBridge,
  forceCleanup,
  guest,
  newDataDir,
  processesMentioning,
  qemuConfig,
  removeConfigs,
  sleep,
  type TestBridge,
  TimedCpi,
  waitForConsole,
} from './support/host.ts';
import { buildTestStemcell } from './support/stemcell.ts';

/**
 * The Director kills a CPI that takes too long (kill -9, no clean-up). Under TCG, small: one VM
 * boot, then attach_disk, detach_disk and delete_vm each killed at points spread over their
 * calibrated duration, and create_vm killed once. After each kill the retry finishes the job, the
 * CPI's view (get_disks, has_vm) is true, and the data written in the guest reads back the same.
 */
const dataDir = newDataDir();
let bridge: TestBridge;
let work: string;
let configPath: string;
let cpi: TimedCpi;
let stemcellCid: string;

const network = (ip: string) => ({
  default: {
    type: 'manual',
    ip,
    netmask: '255.255.255.0',
    gateway: bridge.hostIp,
    default: ['dns', 'gateway'],
    cloud_properties: {},
  },
});

/** Runs one CPI call and kills it with SIGKILL after `ms` (if it has not answered by then). */
function killAfter(method: string, args: unknown[], ms: number): Promise<'killed' | 'finished'> {
  return new Promise((resolve, reject) => {
    const child = spawn(CPI_BIN, [configPath], { stdio: ['pipe', 'ignore', 'ignore'] });
    child.on('error', reject);
    child.stdin.on('error', () => {});
    child.stdin.end(request(method, args, 2, { director_uuid: 'kill-points' }));
    const timer = setTimeout(() => child.kill('SIGKILL'), Math.max(1, Math.round(ms)));
    child.on('close', (_code, signal) => {
      clearTimeout(timer);
      resolve(signal === 'SIGKILL' ? 'killed' : 'finished');
    });
  });
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const value = await fn();
  return [value, performance.now() - t0];
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'qemu-kill-'));
  const stemcell = buildTestStemcell(join(work, 'stemcell'));
  bridge = createBridge();
  configPath = qemuConfig(dataDir, bridge);
  cpi = new TimedCpi(configPath);
  stemcellCid = await cpi.call<string>('create_stemcell', [stemcell.imagePath, {}]);
});

after(() => {
  removeConfigs();
  forceCleanup(dataDir, bridge);
  rmSync(work, { recursive: true, force: true });
});

test('kill -9 inside attach_disk, detach_disk, delete_vm and create_vm: retries finish the job, the data stays', async () => {
  const ip = `${bridge.prefix}.30`;
  const [[vm], createMs] = await timed(() =>
    cpi.call<[string]>('create_vm', ['agent-k1', stemcellCid, { cpu: 1, ram: 256 }, network(ip), [], {}]),
  );
  // What a call costs before it does anything (process start, config): kill points lie after it.
  let startMs = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 3; i++) startMs = Math.min(startMs, (await timed(() => cpi.call('has_vm', [vm])))[1]);
  const at = (total: number, fraction: number) => {
    const start = Math.min(startMs, 0.6 * total);
    return start + fraction * Math.max(total - start, 20);
  };
  await waitForConsole(dataDir, vm, /^BOSHTEST ready/, { timeoutMs: 300_000 });
  const disk = await cpi.call<string>('create_disk', [32, {}, vm]);
  const value = `precious-${Date.now()}`;

  // Calibration, and the data.
  const [, attachMs] = await timed(() => cpi.call('attach_disk', [vm, disk]));
  assert.match(await guest(ip, `mount ${disk}`), /^OK /);
  assert.equal(await guest(ip, `write ${disk} ${value}`), 'OK');
  assert.equal(await guest(ip, `umount ${disk}`), 'OK');
  const [, detachMs] = await timed(() => cpi.call('detach_disk', [vm, disk]));
  console.log(
    `# uninterrupted: create_vm ${Math.round(createMs)} ms, attach_disk ${Math.round(attachMs)} ms, detach_disk ${Math.round(detachMs)} ms, has_vm ${Math.round(startMs)} ms`,
  );

  const outcomes: string[] = [];
  for (const fraction of [0.1, 0.3, 0.6, 0.9]) {
    outcomes.push(
      `attach@${fraction}: ${await killAfter('attach_disk', [vm, disk], at(attachMs, fraction))}`,
    );
    await cpi.call('attach_disk', [vm, disk]);
    assert.deepEqual(await cpi.call('get_disks', [vm]), [disk], `after attach_disk killed at ${fraction}`);
    assert.match(await guest(ip, `mount ${disk}`), /^OK /);
    assert.equal(await guest(ip, `read ${disk}`), value, `data after attach_disk killed at ${fraction}`);
    assert.equal(await guest(ip, `umount ${disk}`), 'OK');

    outcomes.push(
      `detach@${fraction}: ${await killAfter('detach_disk', [vm, disk], at(detachMs, fraction))}`,
    );
    const retry = await cpi.run('detach_disk', [vm, disk]);
    assert.ok(
      retry.response.error === null || retry.response.error.type === 'Bosh::Clouds::DiskNotAttached',
      `detach_disk retried after a kill at ${fraction}: ${JSON.stringify(retry.response.error)}`,
    );
    assert.deepEqual(await cpi.call('get_disks', [vm]), [], `after detach_disk killed at ${fraction}`);
  }

  // delete_vm killed while the disk is attached: the retry removes the VM, the disk survives. The
  // kill point moves earlier until one lands inside the call (the load on the machine varies).
  let target = vm;
  for (let attempt = 0, point = at(detachMs, 0.3); ; attempt++, point = startMs + (point - startMs) / 2) {
    await cpi.call('attach_disk', [target, disk]);
    const outcome = await killAfter('delete_vm', [target], point);
    outcomes.push(`delete_vm@${Math.round(point)}ms: ${outcome}`);
    const again = await cpi.run('delete_vm', [target]);
    assert.ok(
      again.response.error === null || again.response.error.type === 'Bosh::Clouds::VMNotFound',
      `delete_vm retried: ${JSON.stringify(again.response.error)}`,
    );
    assert.equal(await cpi.call('has_vm', [target]), false);
    await sleep(500);
    assert.deepEqual(processesMentioning(target), [], 'a QEMU process of the deleted VM is still running');
    assert.equal(await cpi.call('has_disk', [disk]), true);
    if (outcome === 'killed' || attempt >= 3) break;
    [target] = await cpi.call<[string]>('create_vm', [
      `agent-k${attempt}`,
      stemcellCid,
      { cpu: 1, ram: 256 },
      network(`${bridge.prefix}.${40 + attempt}`),
      [disk],
      {},
    ]);
  }

  // create_vm killed before it answered, then retried (as the Director does): the retry's sweep
  // removes whatever the killed call left (a QEMU it may have started included); nothing is left
  // that the CPI does not know.
  const vmsBefore = new Set(readdirSync(join(dataDir, 'vms')));
  // Early (before QEMU runs) and late (QEMU started, vm.json not yet written).
  for (const fraction of [0.3, 0.9]) {
    const args = ['agent-k9', stemcellCid, { cpu: 1, ram: 256 }, network(`${bridge.prefix}.31`), [], {}];
    const outcome = await killAfter('create_vm', args, at(createMs, fraction));
    outcomes.push(`create_vm@${fraction}: ${outcome}`);
    if (outcome === 'finished')
      for (const entry of readdirSync(join(dataDir, 'vms')))
        if (!vmsBefore.has(entry) && (await cpi.call('has_vm', [entry])))
          await cpi.call('delete_vm', [entry]);
  }
  const ip2 = `${bridge.prefix}.32`;
  const [vm2] = await cpi.call<[string]>('create_vm', [
    'agent-k3',
    stemcellCid,
    { cpu: 1, ram: 256 },
    network(ip2),
    [disk],
    {},
  ]);
  for (const entry of readdirSync(join(dataDir, 'vms'))) {
    if (vmsBefore.has(entry) || entry === vm2 || entry.startsWith('.')) continue;
    if (await cpi.call('has_vm', [entry])) {
      const removed = await cpi.run('delete_vm', [entry]);
      assert.equal(removed.response.error, null, `delete_vm of the VM ${entry} a killed create_vm made`);
    }
    assert.deepEqual(
      processesMentioning(entry),
      [],
      `a QEMU process still runs for ${entry}, left by a killed create_vm, after the retried create_vm`,
    );
  }

  // The disk, after all that, in the new VM: the same data.
  await waitForConsole(dataDir, vm2, /^BOSHTEST ready/, { timeoutMs: 300_000 });
  await cpi.call('attach_disk', [vm2, disk]);
  assert.match(await guest(ip2, `mount ${disk}`), /^OK /);
  assert.equal(await guest(ip2, `read ${disk}`), value, 'data in a new VM after every kill');
  assert.equal(await guest(ip2, `umount ${disk}`), 'OK');
  await cpi.call('detach_disk', [vm2, disk]);
  await cpi.call('delete_vm', [vm2]);
  await cpi.call('delete_disk', [disk]);
  console.log(`# kill points: ${outcomes.join(', ')}`);
  for (const op of ['attach', 'detach', 'delete_vm', 'create_vm'])
    assert.ok(
      outcomes.some((o) => o.startsWith(op) && o.endsWith('killed')),
      `no kill landed inside ${op}: ${outcomes.join(', ')}`,
    );
});
