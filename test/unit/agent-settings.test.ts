import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  buildAgentSettings,
  normalizeHint,
  type SettingsInput,
  withPersistentDisks,
} from '../../src/agent/settings.ts';
import type { DiskHint, Networks } from '../../src/cpi/types.ts';
import { vmCid } from '../support/ids.ts';

const NETWORKS: Networks = {
  default: {
    type: 'manual',
    ip: '10.0.0.5',
    netmask: '255.255.255.0',
    gateway: '10.0.0.1',
    dns: ['10.0.0.2'],
    default: ['dns', 'gateway'],
    cloud_properties: { name: 'net-a' },
  },
  vip: { type: 'vip', ip: '203.0.113.7', cloud_properties: {} },
};

const ENV = {
  persistent_disk_fs: 'ext4',
  bosh: {
    password: '$6$salt$hash',
    mbus: { urls: ['https://mbus:pw@0.0.0.0:6868'], cert: { ca: 'CA', certificate: 'C', private_key: 'K' } },
    blobstores: [{ provider: 'local', options: { blobstore_path: '/var/vcap/micro_bosh/data/cache' } }],
    group: 'g',
    unknown_future_key: { nested: [1, 2, 3] },
  },
};

function input(overrides: Partial<SettingsInput> = {}): SettingsInput {
  return {
    agentId: 'agent-1',
    vmCid: vmCid('vm-1'),
    agent: { mbus: 'nats://nats:pw@10.0.0.6:4222', ntp: ['0.pool.ntp.org'] },
    networks: NETWORKS,
    env: ENV,
    preconfiguredNetworks: true,
    ...overrides,
  };
}

describe('agent settings', () => {
  test('agent_id, vm name and id, mbus and ntp come from the input and the config', () => {
    const settings = buildAgentSettings(input());
    assert.equal(settings.agent_id, 'agent-1');
    assert.deepEqual(settings.vm, { name: 'vm-1', id: 'vm-1' });
    assert.equal(settings.mbus, 'nats://nats:pw@10.0.0.6:4222');
    assert.deepEqual(settings.ntp, ['0.pool.ntp.org']);
  });

  test('disks.system is a string ("" by default), never an object', () => {
    assert.equal(buildAgentSettings(input()).disks.system, '');
    assert.equal(buildAgentSettings(input({ systemDisk: '/dev/sda' })).disks.system, '/dev/sda');
    assert.equal(typeof buildAgentSettings(input()).disks.system, 'string');
  });

  test('without disks the settings have ephemeral null, persistent {} and raw_ephemeral null', () => {
    const { disks } = buildAgentSettings(input());
    assert.deepEqual(disks, { system: '', ephemeral: null, persistent: {}, raw_ephemeral: null });
  });

  test('env is copied verbatim, keys the CPI does not know included', () => {
    const settings = buildAgentSettings(input());
    assert.deepEqual(settings.env, ENV);
    assert.deepEqual(JSON.parse(JSON.stringify(settings)).env, ENV);
  });

  test('every network is marked preconfigured for containers, with mac ""', () => {
    const { networks } = buildAgentSettings(input());
    for (const name of ['default', 'vip']) {
      assert.equal(networks[name]?.preconfigured, true, name);
      assert.equal(networks[name]?.mac, '', name);
    }
  });

  test('networks keep every field they came with', () => {
    const { networks } = buildAgentSettings(input());
    assert.deepEqual(networks.default, { ...NETWORKS.default, mac: '', preconfigured: true });
  });

  test('networks are marked preconfigured: false when the backend lets the agent configure them', () => {
    const { networks } = buildAgentSettings(input({ preconfiguredNetworks: false }));
    assert.equal(networks.default?.preconfigured, false);
  });

  test('a network gets the MAC the backend created for it', () => {
    const { networks } = buildAgentSettings(input({ macs: { default: '02:42:ac:11:00:02' } }));
    assert.equal(networks.default?.mac, '02:42:ac:11:00:02');
    assert.equal(networks.vip?.mac, '');
  });

  test('building settings does not change the input networks', () => {
    const before = structuredClone(NETWORKS);
    buildAgentSettings(input({ macs: { default: 'aa' } }));
    assert.deepEqual(NETWORKS, before);
  });

  test('the blobstore is included only when the config has one', () => {
    assert.equal('blobstore' in buildAgentSettings(input()), false);
    const blobstore = { provider: 'local', options: { blobstore_path: '/x' } };
    const settings = buildAgentSettings(input({ agent: { mbus: 'nats://h:4222', ntp: [], blobstore } }));
    assert.deepEqual(settings.blobstore, blobstore);
  });

  test('every value of an object hint is a string, for persistent and ephemeral disks alike', () => {
    const numeric = { lun: 0, host_device_id: 3, path: '/dev/sdc' } as unknown as DiskHint;
    const settings = buildAgentSettings(
      input({
        persistentDisks: { 'disk-1': numeric, 'disk-2': '/warden-cpi-dev/disk-2' },
        ephemeralDisk: numeric,
      }),
    );
    assert.deepEqual(settings.disks.persistent, {
      'disk-1': { lun: '0', host_device_id: '3', path: '/dev/sdc' },
      'disk-2': '/warden-cpi-dev/disk-2',
    });
    assert.deepEqual(settings.disks.ephemeral, { lun: '0', host_device_id: '3', path: '/dev/sdc' });
  });

  test('a string hint is kept as a string', () => {
    assert.equal(normalizeHint('/dev/sdc'), '/dev/sdc');
  });

  test('withPersistentDisks replaces the persistent disks and keeps everything else', () => {
    const settings = buildAgentSettings(input({ persistentDisks: { old: '/old' } }));
    const updated = withPersistentDisks(settings, { 'disk-9': { volume_id: 9 } as unknown as DiskHint });
    assert.deepEqual(updated.disks.persistent, { 'disk-9': { volume_id: '9' } });
    assert.equal(updated.disks.system, '');
    assert.deepEqual(updated.env, ENV);
    assert.deepEqual(settings.disks.persistent, { old: '/old' }, 'the original settings are untouched');
  });

  test('the settings survive a JSON round trip with the types the agent needs', () => {
    const settings = JSON.parse(JSON.stringify(buildAgentSettings(input({ persistentDisks: { d: '/p' } }))));
    assert.equal(typeof settings.agent_id, 'string');
    assert.equal(typeof settings.vm.name, 'string');
    assert.equal(typeof settings.mbus, 'string');
    assert.ok(Array.isArray(settings.ntp));
    assert.equal(typeof settings.disks.system, 'string');
    for (const network of Object.values(settings.networks) as Array<Record<string, unknown>>)
      assert.equal(typeof network.mac, 'string');
  });
});
