import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { dispatch } from '../../src/rpc/dispatch.ts';
import { asCpiFailure, CpiFailure, ErrorType } from '../../src/rpc/errors.ts';
import type { CpiRequest } from '../../src/rpc/request.ts';
import { errorResponse, successResponse } from '../../src/rpc/response.ts';
import {
  FAKE_STEMCELL_FORMATS,
  type FakeBackendOptions,
  fakeBackend,
  fakeCall,
  type OptionalCapability,
} from '../support/fake-backend.ts';

const NETWORKS = {
  default: {
    type: 'manual',
    ip: '10.0.0.5',
    netmask: '255.255.255.0',
    gateway: '10.0.0.1',
    dns: ['10.0.0.2'],
    default: ['dns', 'gateway'],
    cloud_properties: {},
  },
  dyn: { type: 'dynamic', cloud_properties: { name: 'bridge' } },
};
const CREATE_VM_ARGS = [
  'agent-1',
  'stemcell-1',
  { cpus: 2 },
  NETWORKS,
  ['disk-1'],
  { bosh: { password: '*' } },
];

function requestFor(method: string, args: unknown[], apiVersion = 2): CpiRequest {
  return { method, arguments: args, context: { director_uuid: 'uuid' }, apiVersion };
}

/** Runs one method against a fresh fake backend; returns the result and the backend's record. */
async function run(method: string, args: unknown[], apiVersion = 2, options: FakeBackendOptions = {}) {
  const backend = fakeBackend(options);
  const call = fakeCall(backend, apiVersion);
  const result = await dispatch(requestFor(method, args, apiVersion), call);
  return { result, backend, call };
}

async function failure(method: string, args: unknown[], apiVersion = 2, options: FakeBackendOptions = {}) {
  const backend = fakeBackend(options);
  const error = await dispatch(requestFor(method, args, apiVersion), fakeCall(backend, apiVersion)).then(
    () => assert.fail(`${method} succeeded`),
    (e: unknown) => e,
  );
  return { error, backend };
}

describe('info', () => {
  test('info returns the stemcell formats and api_version 3', async () => {
    const { result } = await run('info', [], 1);
    assert.deepEqual(result, { stemcell_formats: [...FAKE_STEMCELL_FORMATS], api_version: 3 });
  });

  test('info never loads the backend, whatever the api_version', async () => {
    for (const apiVersion of [1, 2, 3]) {
      const { call, backend } = await run('info', [], apiVersion);
      assert.equal(call.backendLoads, 0);
      assert.deepEqual(backend.calls, []);
    }
  });

  test('info returns a copy of the formats, not the descriptor list itself', async () => {
    const { result, call } = await run('info', []);
    assert.notEqual((result as { stemcell_formats: unknown }).stemcell_formats, call.stemcellFormats);
  });
});

describe('create_vm result shape', () => {
  test('create_vm returns the bare cid when api_version is missing (1)', async () => {
    const { result } = await run('create_vm', CREATE_VM_ARGS, 1);
    assert.equal(result, 'vm-fake-1');
  });

  for (const apiVersion of [2, 3]) {
    test(`create_vm returns [cid, networks] for api_version ${apiVersion}`, async () => {
      const { result } = await run('create_vm', CREATE_VM_ARGS, apiVersion);
      assert.ok(Array.isArray(result));
      assert.equal(result.length, 2);
      assert.equal(result[0], 'vm-fake-1');
      const networks = result[1] as Record<string, Record<string, unknown>>;
      assert.deepEqual(Object.keys(networks).sort(), ['default', 'dyn']);
      assert.equal(networks.default?.ip, '10.0.0.5');
      assert.equal(networks.dyn?.ip, '172.17.0.2', 'the networks are those the backend reports');
    });
  }

  test('create_vm hands the backend every argument, with env verbatim', async () => {
    const { backend } = await run('create_vm', CREATE_VM_ARGS);
    assert.equal(backend.calls.length, 1);
    assert.equal(backend.calls[0]?.method, 'createVm');
    assert.deepEqual(backend.calls[0]?.args, [
      {
        agentId: 'agent-1',
        stemcellCid: 'stemcell-1',
        cloudProperties: { cpus: 2 },
        networks: NETWORKS,
        diskCids: ['disk-1'],
        env: { bosh: { password: '*' } },
      },
    ]);
  });

  test('create_vm without disk_cids and env, or with nulls, gives the backend [] and {}', async () => {
    for (const args of [CREATE_VM_ARGS.slice(0, 4), [...CREATE_VM_ARGS.slice(0, 4), null, null]]) {
      const { backend } = await run('create_vm', args);
      const input = backend.calls[0]?.args[0] as { diskCids: unknown; env: unknown };
      assert.deepEqual(input.diskCids, []);
      assert.deepEqual(input.env, {});
    }
  });

  test('create_vm passes a numeric network prefix on as a string and null cloud_properties as {}', async () => {
    const networks = { n: { type: 'manual', ip: '10.0.0.5', prefix: 24, cloud_properties: null } };
    const { backend } = await run('create_vm', ['agent-1', 'stemcell-1', null, networks]);
    const input = backend.calls[0]?.args[0] as { networks: typeof networks; cloudProperties: unknown };
    assert.deepEqual(input.cloudProperties, {});
    assert.equal(input.networks.n.prefix, '24');
    assert.deepEqual(input.networks.n.cloud_properties, {});
  });

  test('create_vm keeps network keys it does not know (Director adds keys over time)', async () => {
    const networks = { n: { type: 'manual', ip: '10.0.0.5', nic_group: '1', cloud_properties: {} } };
    const { backend } = await run('create_vm', ['agent-1', 'stemcell-1', {}, networks]);
    const input = backend.calls[0]?.args[0] as { networks: Record<string, Record<string, unknown>> };
    assert.equal(input.networks.n?.nic_group, '1');
  });
});

describe('attach_disk result shape', () => {
  test('attach_disk returns null for api_version 1', async () => {
    const { result, backend } = await run('attach_disk', ['vm-1', 'disk-1'], 1);
    assert.equal(result, null);
    assert.deepEqual(backend.calls, [{ method: 'attachDisk', args: ['vm-1', 'disk-1'] }]);
  });

  for (const apiVersion of [2, 3]) {
    test(`attach_disk returns the backend's hint for api_version ${apiVersion}`, async () => {
      const { result } = await run('attach_disk', ['vm-1', 'disk-1'], apiVersion);
      assert.equal(result, '/warden-cpi-dev/disk-1');
    });
  }

  test('attach_disk returns an object hint as it is', async () => {
    const hint = { path: '/dev/sdc', lun: '0' };
    const { result } = await run('attach_disk', ['vm-1', 'disk-1'], 2, {
      overrides: { attachDisk: async () => hint },
    });
    assert.deepEqual(result, hint);
  });

  for (const empty of ['', {}]) {
    test(`attach_disk turns an empty hint (${JSON.stringify(empty)}) into a CloudError instead of returning it`, async () => {
      const { error } = await failure('attach_disk', ['vm-1', 'disk-1'], 2, {
        overrides: { attachDisk: async () => empty },
      });
      assert.ok(error instanceof CpiFailure);
      assert.equal(error.type, ErrorType.CloudError);
      assert.match(error.message, /empty disk hint/);
    });
  }
});

describe('create_stemcell', () => {
  test('v3 create_stemcell accepts a third {tags} argument and passes the tags to the backend', async () => {
    const tags = { team: 'cpi', env: 'test' };
    const { result, backend } = await run('create_stemcell', ['/tmp/s/image', { a: 1 }, { tags }], 3);
    assert.equal(result, 'stemcell-fake-1');
    assert.deepEqual(backend.calls, [{ method: 'createStemcell', args: ['/tmp/s/image', { a: 1 }, tags] }]);
  });

  test('create_stemcell with two arguments gives the backend empty tags', async () => {
    const { backend } = await run('create_stemcell', ['/tmp/s/image', {}], 2);
    assert.deepEqual(backend.calls[0]?.args[2], {});
  });

  test('create_stemcell gives the backend empty tags for an env of null, {} or {tags: null}', async () => {
    for (const env of [null, {}, { tags: null }]) {
      const { backend } = await run('create_stemcell', ['/tmp/s/image', {}, env], 3);
      assert.deepEqual(backend.calls[0]?.args[2], {}, JSON.stringify(env));
    }
  });

  test('create_stemcell stringifies numeric and boolean tag values', async () => {
    const { backend } = await run('create_stemcell', ['/tmp/s/image', {}, { tags: { n: 1, b: true } }], 3);
    assert.deepEqual(backend.calls[0]?.args[2], { n: '1', b: 'true' });
  });
});

describe('results of the other methods', () => {
  const cases: Array<{ method: string; args: unknown[]; backendMethod: string; result: unknown }> = [
    { method: 'delete_stemcell', args: ['s-1'], backendMethod: 'deleteStemcell', result: null },
    { method: 'delete_vm', args: ['vm-1'], backendMethod: 'deleteVm', result: null },
    { method: 'has_vm', args: ['vm-1'], backendMethod: 'hasVm', result: true },
    { method: 'reboot_vm', args: ['vm-1'], backendMethod: 'rebootVm', result: null },
    { method: 'set_vm_metadata', args: ['vm-1', { index: 0 }], backendMethod: 'setVmMetadata', result: null },
    {
      method: 'calculate_vm_cloud_properties',
      args: [{ cpu: 2, ram: 1024, ephemeral_disk_size: 0 }],
      backendMethod: 'calculateVmCloudProperties',
      result: { cpus: 2, memory_mib: 1024 },
    },
    { method: 'create_disk', args: [1024, {}], backendMethod: 'createDisk', result: 'disk-fake-1' },
    { method: 'delete_disk', args: ['disk-1'], backendMethod: 'deleteDisk', result: null },
    { method: 'has_disk', args: ['disk-1'], backendMethod: 'hasDisk', result: false },
    { method: 'resize_disk', args: ['disk-1', 2048], backendMethod: 'resizeDisk', result: null },
    {
      method: 'update_disk',
      args: ['disk-1', 2048, {}],
      backendMethod: 'updateDisk',
      result: 'disk-fake-updated',
    },
    { method: 'detach_disk', args: ['vm-1', 'disk-1'], backendMethod: 'detachDisk', result: null },
    { method: 'set_disk_metadata', args: ['disk-1', {}], backendMethod: 'setDiskMetadata', result: null },
    {
      method: 'get_disks',
      args: ['vm-1'],
      backendMethod: 'getDisks',
      result: ['disk-fake-1', 'disk-fake-2'],
    },
    {
      method: 'snapshot_disk',
      args: ['disk-1', {}],
      backendMethod: 'snapshotDisk',
      result: 'snapshot-fake-1',
    },
    { method: 'delete_snapshot', args: ['snap-1'], backendMethod: 'deleteSnapshot', result: null },
    {
      method: 'create_network',
      args: [{ type: 'manual', range: '10.0.0.0/24' }],
      backendMethod: 'createNetwork',
      result: ['network-fake-1', { range: '10.0.0.0/24', gateway: '10.0.0.1', reserved: [] }, {}],
    },
    { method: 'delete_network', args: ['net-1'], backendMethod: 'deleteNetwork', result: null },
  ];
  for (const c of cases) {
    test(`${c.method} calls the backend's ${c.backendMethod} once and answers ${JSON.stringify(c.result)}`, async () => {
      const { result, backend } = await run(c.method, c.args);
      assert.equal(backend.calls.length, 1);
      assert.equal(backend.calls[0]?.method, c.backendMethod);
      assert.deepEqual(successResponse(result, '').result, c.result);
    });
  }

  test('has_vm and has_disk answer real booleans even when the backend returns something truthy', async () => {
    const truthy = { overrides: { hasVm: async () => 'yes', hasDisk: async () => 1 } };
    assert.equal((await run('has_vm', ['vm-1'], 2, truthy)).result, false);
    assert.equal((await run('has_disk', ['disk-1'], 2, truthy)).result, false);
    const yes = { overrides: { hasVm: async () => true, hasDisk: async () => true } };
    assert.equal((await run('has_vm', ['vm-1'], 2, yes)).result, true);
    assert.equal((await run('has_disk', ['disk-1'], 2, yes)).result, true);
  });

  test('get_disks answers [] (not null) for a VM without disks', async () => {
    const { result } = await run('get_disks', ['vm-1'], 2, { overrides: { getDisks: async () => [] } });
    assert.deepEqual(result, []);
  });

  test('update_disk answers null when the backend returns nothing', async () => {
    const { result } = await run('update_disk', ['disk-1', 2048, {}], 2, {
      overrides: { updateDisk: async () => undefined },
    });
    assert.equal(result, null);
  });

  test('create_disk passes vm_cid to the backend, and null when it is left out', async () => {
    assert.deepEqual((await run('create_disk', [10, {}, 'vm-1'])).backend.calls[0]?.args, [10, {}, 'vm-1']);
    assert.deepEqual((await run('create_disk', [10, null])).backend.calls[0]?.args, [10, {}, null]);
    assert.deepEqual((await run('create_disk', [10, {}, null])).backend.calls[0]?.args, [10, {}, null]);
  });

  test('set_vm_metadata stringifies numbers and booleans and drops null values', async () => {
    const { backend } = await run('set_vm_metadata', [
      'vm-1',
      { index: 0, compiling: true, gone: null, name: 'a/b' },
    ]);
    assert.deepEqual(backend.calls[0]?.args, ['vm-1', { index: '0', compiling: 'true', name: 'a/b' }]);
  });

  test('snapshot_disk without metadata gives the backend {}', async () => {
    const { backend } = await run('snapshot_disk', ['disk-1']);
    assert.deepEqual(backend.calls[0]?.args, ['disk-1', {}]);
  });
});

describe('methods the CPI does not implement', () => {
  test('an unknown method is NotImplemented with a message starting "Method is not known, got"', async () => {
    const { error, backend } = await failure('resurrect_vm', []);
    assert.ok(error instanceof CpiFailure);
    assert.equal(error.type, 'Bosh::Clouds::NotImplemented');
    assert.ok(error.message.startsWith('Method is not known, got'), error.message);
    assert.match(error.message, /resurrect_vm/);
    assert.deepEqual(backend.calls, []);
  });

  test('ping is an unknown method', async () => {
    const { error } = await failure('ping', []);
    assert.ok(error instanceof CpiFailure);
    assert.equal(error.type, ErrorType.NotImplemented);
    assert.ok(error.message.startsWith('Method is not known, got'));
  });

  test('names inherited from Object.prototype are unknown methods, not crashes', async () => {
    for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const { error } = await failure(name, []);
      assert.ok(error instanceof CpiFailure, name);
      assert.equal(error.type, ErrorType.NotImplemented, name);
    }
  });

  test('configure_networks is NotSupported and never reaches the backend', async () => {
    const { error, backend } = await failure('configure_networks', ['vm-1', NETWORKS]);
    assert.ok(error instanceof CpiFailure);
    assert.equal(error.type, 'Bosh::Clouds::NotSupported');
    assert.deepEqual(backend.calls, []);
  });

  test('current_vm_id is NotImplemented', async () => {
    const { error } = await failure('current_vm_id', []);
    assert.ok(error instanceof CpiFailure);
    assert.equal(error.type, 'Bosh::Clouds::NotImplemented');
  });

  const optional: Array<{ method: string; args: unknown[]; capability: OptionalCapability }> = [
    { method: 'update_disk', args: ['disk-1', 2048, {}], capability: 'diskUpdater' },
    { method: 'snapshot_disk', args: ['disk-1', {}], capability: 'snapshots' },
    { method: 'delete_snapshot', args: ['snap-1'], capability: 'snapshots' },
    { method: 'create_network', args: [{ type: 'manual' }], capability: 'managedNetworks' },
    { method: 'delete_network', args: ['net-1'], capability: 'managedNetworks' },
  ];
  for (const { method, args, capability } of optional) {
    test(`${method} on a backend without ${capability} is NotImplemented naming the method`, async () => {
      const { error, backend } = await failure(method, args, 2, { without: [capability] });
      assert.ok(error instanceof CpiFailure);
      assert.equal(error.type, 'Bosh::Clouds::NotImplemented');
      assert.match(error.message, new RegExp(method));
      assert.deepEqual(backend.calls, []);
    });
  }
});

describe('backend failures', () => {
  test('a CpiFailure from the backend reaches the caller with its type and ok_to_retry', async () => {
    const thrown = new CpiFailure(ErrorType.VMCreationFailed, 'no capacity', true);
    const { error } = await failure('create_vm', CREATE_VM_ARGS, 2, {
      overrides: {
        createVm: async () => {
          throw thrown;
        },
      },
    });
    assert.equal(error, thrown);
    const response = errorResponse(asCpiFailure(error), '', (s) => s);
    assert.deepEqual(response.error, {
      type: 'Bosh::Clouds::VMCreationFailed',
      message: 'no capacity',
      ok_to_retry: true,
    });
  });

  test('a plain Error from the backend becomes a well-formed CloudError without a stack trace', async () => {
    const { error } = await failure('delete_vm', ['vm-1'], 2, {
      overrides: {
        deleteVm: async () => {
          throw new TypeError('Cannot read properties of undefined');
        },
      },
    });
    const response = errorResponse(asCpiFailure(error), '', (s) => s);
    assert.deepEqual(Object.keys(response).sort(), ['error', 'log', 'result']);
    assert.equal(response.result, null);
    assert.deepEqual(Object.keys(response.error ?? {}).sort(), ['message', 'ok_to_retry', 'type']);
    assert.equal(response.error?.type, 'Bosh::Clouds::CloudError');
    assert.equal(response.error?.ok_to_retry, false);
    assert.match(response.error?.message ?? '', /Cannot read properties of undefined/);
    assert.doesNotMatch(JSON.stringify(response), /\n\s+at |fake-backend\.ts|dispatch\.ts/);
  });

  test('something thrown that is not an Error still becomes a CloudError', async () => {
    const { error } = await failure('has_vm', ['vm-1'], 2, {
      overrides: {
        hasVm: async () => {
          throw 'socket closed';
        },
      },
    });
    const converted = asCpiFailure(error);
    assert.equal(converted.type, ErrorType.CloudError);
    assert.match(converted.message, /socket closed/);
  });
});
