import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { diskSerial } from '../../src/backends/qemu/ids.ts';
import { diskCid as asDiskCid } from '../support/ids.ts';
import {
  cpiTaps,
  createBridge,
  forceCleanup,
  guest,
  leftoverFiles,
  newDataDir,
  processesMentioning,
  qemuConfig,
  removeConfigs,
  type TestBridge,
  TimedCpi,
  timingTable,
  waitForConsole,
} from './support/host.ts';
import { buildTestStemcell } from './support/stemcell.ts';

/** Failed creations clean up after themselves; a VM whose QEMU died comes back with its disk; API v1 shapes. */
const dataDir = newDataDir();
let bridge: TestBridge;
let work: string;
let cpi: TimedCpi;
let stemcellCid: string;

const manual = (ip: string, cloudProperties: Record<string, unknown> = {}) => ({
  default: {
    type: 'manual',
    ip,
    netmask: '255.255.255.0',
    gateway: bridge.hostIp,
    default: ['dns', 'gateway'],
    cloud_properties: cloudProperties,
  },
});

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'qemu-failures-'));
  const stemcell = buildTestStemcell(join(work, 'stemcell'));
  bridge = createBridge();
  cpi = new TimedCpi(qemuConfig(dataDir, bridge));
  stemcellCid = await cpi.call<string>('create_stemcell', [stemcell.imagePath, {}]);
});

after(() => {
  removeConfigs();
  forceCleanup(dataDir, bridge);
  rmSync(work, { recursive: true, force: true });
  console.log(`# per-method wall times (TCG):\n${timingTable().replace(/^/gm, '#   ')}`);
});

function assertNothingLeft(): void {
  assert.deepEqual(readdirSync(join(dataDir, 'vms')), []);
  assert.deepEqual(readdirSync(join(dataDir, 'tmp')), []);
  assert.deepEqual(cpiTaps(), []);
  assert.deepEqual(processesMentioning(`${dataDir}/vms`), []);
}

test('create_vm failures: VMCreationFailed, retryable only when a retry can help, and nothing is left', async () => {
  const cases: Array<[Record<string, unknown>, Record<string, unknown>, boolean, RegExp]> = [
    [
      {},
      manual(`${bridge.prefix}.20`, { bridge: 'bq-missing0' }),
      false,
      /Host bridge 'bq-missing0' .* does not exist/,
    ],
    [
      { cpu: 'two' },
      manual(`${bridge.prefix}.20`),
      false,
      /cloud_properties\.cpu must be a whole number of CPUs/,
    ],
    [
      { ephemeral_disk: 1024 },
      manual(`${bridge.prefix}.20`),
      false,
      /cloud_properties\.ephemeral_disk must be an object/,
    ],
    [
      { root_disk: { size: 1 } },
      manual(`${bridge.prefix}.20`),
      false,
      /root_disk\.size 1 MiB is smaller than the stemcell/,
    ],
    [{ ram: 16_000_000 }, manual(`${bridge.prefix}.20`), true, /cannot set up guest memory/],
  ];
  for (const [cloudProperties, networks, okToRetry, message] of cases) {
    const run = await cpi.run('create_vm', ['agent-x', stemcellCid, cloudProperties, networks, [], {}]);
    assert.equal(
      run.response.error?.type,
      'Bosh::Clouds::VMCreationFailed',
      JSON.stringify(run.response.error),
    );
    assert.equal(run.response.error?.ok_to_retry, okToRetry, run.response.error?.message);
    assert.match(run.response.error?.message ?? '', message);
    assertNothingLeft();
  }
  const stemcellMissing = await cpi.run('create_vm', [
    'agent-x',
    'stemcell-00000000-0000-0000-0000-000000000000',
    {},
    manual('10.0.0.1'),
    [],
    {},
  ]);
  assert.equal(stemcellMissing.response.error?.ok_to_retry, false);
  assertNothingLeft();
});

test('API v1 shapes: create_vm returns the bare CID and attach_disk null (the disk is in the settings)', async () => {
  const ip = `${bridge.prefix}.21`;
  const run = await cpi.run('create_vm', ['agent-v1', stemcellCid, { ram: 256 }, manual(ip), null, null], 1);
  assert.equal(run.response.error, null);
  const vmCid = run.response.result as string;
  assert.match(vmCid, /^vm-[0-9a-f-]{36}$/);
  assert.match(run.response.log, /accel auto: using (TCG|KVM) \(/, 'the accelerator choice is logged');

  const disk = await cpi.call<string>('create_disk', [64, { filesystem: 'ext4' }, vmCid], 1);
  await waitForConsole(dataDir, vmCid, /^BOSHTEST ready/);
  assert.equal(await cpi.call('attach_disk', [vmCid, disk], 1), null);
  assert.match(
    await guest(ip, 'settings'),
    new RegExp(`^disks\\.persistent\\.${disk}\\.id\\t${diskSerial(asDiskCid(disk))}$`, 'm'),
  );
  assert.match(await guest(ip, `mount ${disk}`), /^OK vd[b-z]$/);
  assert.equal(await guest(ip, `write ${disk} before-the-crash`), 'OK');

  // delete_stemcell while a VM still boots from it: the image stays until the VM goes.
  await cpi.call('delete_stemcell', [stemcellCid]);
  assert.ok(existsSync(join(dataDir, 'stemcells', stemcellCid, 'image.qcow2')));
  await assert.rejects(
    cpi.call('create_vm', ['agent-y', stemcellCid, {}, manual(`${bridge.prefix}.22`), [], {}]),
    /not found/,
  );

  // QEMU dies under the VM (host trouble): the VM still exists; reboot_vm starts it again with its disk.
  const pid = Number(readFileSync(join(dataDir, 'vms', vmCid, 'qemu.pid'), 'utf8'));
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 50 && processesMentioning(vmCid).length > 0; i++)
    await new Promise((r) => setTimeout(r, 100));
  assert.equal(await cpi.call('has_vm', [vmCid]), true);
  assert.deepEqual(await cpi.call('get_disks', [vmCid]), [disk]);
  await assert.rejects(cpi.call('attach_disk', [vmCid, disk]), /is not running/);
  await cpi.call('reboot_vm', [vmCid]);
  await waitForConsole(dataDir, vmCid, new RegExp(`^BOSHTEST disks .*:${diskSerial(asDiskCid(disk))}:`), {
    boot: 2,
  });
  await waitForConsole(dataDir, vmCid, /^BOSHTEST ready/, { boot: 2 });
  assert.deepEqual(await cpi.call('get_disks', [vmCid]), [disk]);
  assert.match(await guest(ip, `mount ${disk}`), /^OK vd[b-z]$/);
  assert.equal(await guest(ip, `read ${disk}`), 'before-the-crash');
  assert.equal(await guest(ip, `umount ${disk}`), 'OK');
  assert.equal(await cpi.call('detach_disk', [vmCid, disk], 1), null);
  assert.doesNotMatch(await guest(ip, 'settings'), /disks\.persistent\./);

  await cpi.call('delete_vm', [vmCid], 1);
  assert.equal(
    existsSync(join(dataDir, 'stemcells', stemcellCid)),
    false,
    'the deleted stemcell went with its last VM',
  );
  await cpi.call('delete_disk', [disk], 1);
  assertNothingLeft();
  assert.deepEqual(leftoverFiles(dataDir), []);
});
