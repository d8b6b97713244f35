import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { after, test } from 'node:test';
import { Cpi, writeConfig } from '../support/cpi.ts';
import { newDataDir, qemuConfig, removeConfigs, trackConfig } from './support/host.ts';

/** Config validation and cloud-ID checks: no VM is started here. */
const dataDir = newDataDir();
const cpi = new Cpi(qemuConfig(dataDir, undefined));

after(() => {
  rmSync(dataDir, { recursive: true, force: true });
  removeConfigs();
});

const agent = { mbus: 'nats://nats:pw@127.0.0.1:4222' };

async function configError(qemu: Record<string, unknown>): Promise<{ type: string; message: string }> {
  const run = await new Cpi(trackConfig(writeConfig({ qemu, agent }, 'qemu'))).run('has_vm', ['vm-x']);
  assert.ok(run.response.error, 'expected the config to be refused');
  assert.equal(run.exitCode, 0);
  return run.response.error;
}

test('info advertises the OpenStack/QEMU stemcell formats without touching data_dir', async () => {
  const result = await cpi.call('info', []);
  assert.deepEqual(result, {
    stemcell_formats: ['openstack-qcow2', 'openstack-raw', 'qemu-qcow2', 'qemu-raw'],
    api_version: 3,
  });
  assert.equal(existsSync(dataDir), false);
});

test('an invalid config is a CpiError naming the field', async () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ accel: 'hvf' }, /config\.cloud\.properties\.qemu\.accel must be one of "auto", "kvm", "tcg"/],
    [{ data_dir: 'relative/dir' }, /config\.cloud\.properties\.qemu\.data_dir must be an absolute path/],
    [
      { data_dir: `/var/lib/${'x'.repeat(60)}` },
      /qemu\.data_dir must be an absolute path of at most 50 characters/,
    ],
    [{ data_dir: '/var/lib/a,b' }, /qemu\.data_dir/],
    [{ default_cpu: 0 }, /qemu\.default_cpu must be an integer >= 1/],
    [{ default_ram: '1G' }, /qemu\.default_ram must be an integer/],
    [{ default_bridge: 'br0; reboot' }, /qemu\.default_bridge must be a network interface name/],
    [{ bridges: ['ok', 'x'.repeat(16)] }, /qemu\.bridges\[1\] must be a network interface name/],
    [{ acel: 'tcg' }, /qemu\.acel must be absent \(unknown field\)/],
  ];
  for (const [qemu, message] of cases) {
    const error = await configError(qemu);
    assert.equal(error.type, 'Bosh::Clouds::CpiError');
    assert.match(error.message, message);
  }
});

test('calculate_vm_cloud_properties maps resources to cpu, ram and the ephemeral disk size', async () => {
  assert.deepEqual(
    await cpi.call('calculate_vm_cloud_properties', [{ cpu: 2, ram: 2048, ephemeral_disk_size: 10240 }]),
    {
      cpu: 2,
      ram: 2048,
      ephemeral_disk: { size: 10240 },
    },
  );
});

test('cloud IDs that are not ours never reach a path', async () => {
  const hostile = [
    '../../etc',
    'vm-../../../etc/passwd',
    '/etc/shadow',
    'disk-00000000-0000-0000-0000-00000000000g',
    'a,file=/etc/shadow',
  ];
  for (const id of hostile) {
    assert.equal(await cpi.call('has_vm', [id]), false);
    assert.equal(await cpi.call('has_disk', [id]), false);
    await assert.rejects(cpi.call('delete_vm', [id]), /VMNotFound/);
    await assert.rejects(cpi.call('delete_disk', [id]), /DiskNotFound/);
    await assert.rejects(cpi.call('reboot_vm', [id]), /VMNotFound/);
    await assert.rejects(cpi.call('get_disks', [id]), /VMNotFound/);
    await assert.rejects(cpi.call('set_vm_metadata', [id, {}]), /VMNotFound/);
    await assert.rejects(cpi.call('set_disk_metadata', [id, {}]), /DiskNotFound/);
    await assert.rejects(
      cpi.call('attach_disk', [id, 'disk-00000000-0000-0000-0000-000000000000']),
      /VMNotFound|DiskNotFound/,
    );
    await assert.rejects(cpi.call('resize_disk', [id, 10]), /DiskNotFound/);
    await assert.rejects(cpi.call('snapshot_disk', [id, {}]), /DiskNotFound/);
    await cpi.call('delete_snapshot', [id]);
    await cpi.call('delete_stemcell', [id]);
    await assert.rejects(cpi.call('create_vm', ['agent', id, {}, {}, [], {}]), /VMCreationFailed.*not found/);
  }
  // Nothing was created for any of them (data_dir holds only the empty layout, if anything).
  if (existsSync(dataDir))
    for (const kind of ['vms', 'disks', 'snapshots', 'stemcells'])
      assert.deepEqual(readdirSync(`${dataDir}/${kind}`), [], kind);
});

test('unknown resources: VMNotFound and DiskNotFound where callers expect them', async () => {
  const vm = 'vm-00000000-0000-0000-0000-000000000000';
  const disk = 'disk-00000000-0000-0000-0000-000000000000';
  await assert.rejects(cpi.call('delete_vm', [vm]), /VMNotFound/);
  await assert.rejects(cpi.call('delete_disk', [disk]), /DiskNotFound/);
  await assert.rejects(cpi.call('detach_disk', [vm, disk]), /VMNotFound/);
  await assert.rejects(
    cpi.call('create_disk', [64, { filesystem: 'xfs' }, null]),
    /filesystem must be "ext4" or "none"/,
  );
});
