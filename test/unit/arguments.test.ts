import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { dispatch } from '../../src/rpc/dispatch.ts';
import { CpiFailure, ErrorType } from '../../src/rpc/errors.ts';
import { METHODS } from '../../src/rpc/methods.ts';
import type { CpiRequest } from '../../src/rpc/request.ts';
import { fakeBackend, fakeCall } from '../support/fake-backend.ts';

interface WrongArgument {
  /** Zero-based position of the argument. */
  index: number;
  name: string;
  value: unknown;
  /** What the message must say was expected ("a string", "an object", …). */
  expected: string;
}

interface MethodArguments {
  /** Every argument, optional ones included, with valid values. */
  valid: unknown[];
  required: number;
  wrong: WrongArgument[];
}

const NETWORKS = {
  default: { type: 'manual', ip: '10.0.0.5', netmask: '255.255.255.0', cloud_properties: {} },
};

const cidArgument = (index: number, name: string): WrongArgument[] => [
  { index, name, value: 42, expected: 'a string' },
  { index, name, value: '', expected: 'a non-empty string' },
];

const CASES: Record<string, MethodArguments> = {
  info: { valid: [], required: 0, wrong: [] },
  create_stemcell: {
    valid: ['/tmp/stemcell/image', { image_reference: 'x' }, { tags: { team: 'a' } }],
    required: 2,
    wrong: [
      { index: 0, name: 'image_path', value: ['/tmp/image'], expected: 'a string' },
      { index: 0, name: 'image_path', value: '', expected: 'a non-empty string' },
      { index: 1, name: 'cloud_properties', value: 'props', expected: 'an object' },
      { index: 2, name: 'env', value: 'tags', expected: 'an object' },
      { index: 2, name: 'env', value: { tags: ['a'] }, expected: 'an object' },
      { index: 2, name: 'env', value: { tags: { team: { nested: true } } }, expected: 'a string' },
    ],
  },
  delete_stemcell: { valid: ['stemcell-1'], required: 1, wrong: cidArgument(0, 'stemcell_cid') },
  create_vm: {
    valid: ['agent-1', 'stemcell-1', {}, NETWORKS, ['disk-1'], { bosh: {} }],
    required: 4,
    wrong: [
      { index: 0, name: 'agent_id', value: 7, expected: 'a string' },
      { index: 0, name: 'agent_id', value: '', expected: 'a non-empty string' },
      ...cidArgument(1, 'stemcell_cid'),
      { index: 2, name: 'cloud_properties', value: [], expected: 'an object' },
      { index: 3, name: 'networks', value: [NETWORKS.default], expected: 'an object' },
      { index: 3, name: 'networks', value: null, expected: 'an object' },
      { index: 3, name: 'networks', value: { default: 'manual' }, expected: 'an object' },
      { index: 3, name: 'networks', value: { default: { type: 'bridged' } }, expected: 'one of "manual"' },
      { index: 3, name: 'networks', value: { default: { type: 'manual', ip: 10 } }, expected: 'a string' },
      { index: 3, name: 'networks', value: { default: { dns: '8.8.8.8' } }, expected: 'an array' },
      { index: 4, name: 'disk_cids', value: 'disk-1', expected: 'an array' },
      { index: 4, name: 'disk_cids', value: ['disk-1', ''], expected: 'a non-empty string' },
      { index: 5, name: 'env', value: 'env', expected: 'an object' },
    ],
  },
  delete_vm: { valid: ['vm-1'], required: 1, wrong: cidArgument(0, 'vm_cid') },
  has_vm: { valid: ['vm-1'], required: 1, wrong: cidArgument(0, 'vm_cid') },
  reboot_vm: { valid: ['vm-1'], required: 1, wrong: cidArgument(0, 'vm_cid') },
  set_vm_metadata: {
    valid: ['vm-1', { director: 'd', index: '0' }],
    required: 2,
    wrong: [
      ...cidArgument(0, 'vm_cid'),
      { index: 1, name: 'metadata', value: 'director=d', expected: 'an object' },
      { index: 1, name: 'metadata', value: { tags: { a: 'b' } }, expected: 'a string' },
    ],
  },
  configure_networks: {
    valid: ['vm-1', NETWORKS],
    required: 2,
    wrong: [
      ...cidArgument(0, 'vm_cid'),
      { index: 1, name: 'networks', value: 'default', expected: 'an object' },
    ],
  },
  calculate_vm_cloud_properties: {
    valid: [{ cpu: 2, ram: 2048, ephemeral_disk_size: 10240 }],
    required: 1,
    wrong: [
      { index: 0, name: 'desired_instance_size', value: 'small', expected: 'an object' },
      {
        index: 0,
        name: 'desired_instance_size',
        value: { ram: 1, ephemeral_disk_size: 1 },
        expected: 'a whole number of CPUs from 1 to 1024',
      },
      {
        index: 0,
        name: 'desired_instance_size',
        value: { cpu: 1, ram: 1.5, ephemeral_disk_size: 1 },
        expected: 'a whole number of MiB from 1 to 16777216',
      },
      {
        index: 0,
        name: 'desired_instance_size',
        value: { cpu: 1, ram: 1, ephemeral_disk_size: -1 },
        expected: 'a whole number of MiB from 0 to 1073741824',
      },
      {
        index: 0,
        name: 'desired_instance_size',
        value: { cpu: 1, ram: 1e303, ephemeral_disk_size: 1 },
        expected: 'a whole number of MiB from 1 to 16777216',
      },
      {
        index: 0,
        name: 'desired_instance_size',
        value: { cpu: 100_000, ram: 1, ephemeral_disk_size: 1 },
        expected: 'a whole number of CPUs from 1 to 1024',
      },
    ],
  },
  create_disk: {
    valid: [1024, {}, 'vm-1'],
    required: 2,
    wrong: [
      { index: 0, name: 'size', value: '1024', expected: 'a whole number of MiB from 1 to 1073741824' },
      { index: 0, name: 'size', value: 0, expected: 'a whole number of MiB from 1 to 1073741824' },
      { index: 0, name: 'size', value: 10.5, expected: 'a whole number of MiB from 1 to 1073741824' },
      { index: 0, name: 'size', value: 2 ** 43, expected: 'a whole number of MiB from 1 to 1073741824' },
      { index: 1, name: 'cloud_properties', value: 3, expected: 'an object' },
      { index: 2, name: 'vm_cid', value: 5, expected: 'a string' },
      { index: 2, name: 'vm_cid', value: '', expected: 'a non-empty string' },
    ],
  },
  delete_disk: { valid: ['disk-1'], required: 1, wrong: cidArgument(0, 'disk_cid') },
  has_disk: { valid: ['disk-1'], required: 1, wrong: cidArgument(0, 'disk_cid') },
  resize_disk: {
    valid: ['disk-1', 2048],
    required: 2,
    wrong: [
      ...cidArgument(0, 'disk_cid'),
      { index: 1, name: 'new_size', value: '2048', expected: 'a whole number of MiB from 1 to 1073741824' },
      { index: 1, name: 'new_size', value: -1, expected: 'a whole number of MiB from 1 to 1073741824' },
      { index: 1, name: 'new_size', value: 2 ** 43, expected: 'a whole number of MiB from 1 to 1073741824' },
    ],
  },
  update_disk: {
    valid: ['disk-1', 2048, { type: 'ssd' }],
    required: 3,
    wrong: [
      ...cidArgument(0, 'disk_cid'),
      { index: 1, name: 'new_size', value: null, expected: 'a whole number of MiB from 1 to 1073741824' },
      { index: 2, name: 'cloud_properties', value: 'ssd', expected: 'an object' },
    ],
  },
  attach_disk: {
    valid: ['vm-1', 'disk-1'],
    required: 2,
    wrong: [...cidArgument(0, 'vm_cid'), ...cidArgument(1, 'disk_cid')],
  },
  detach_disk: {
    valid: ['vm-1', 'disk-1'],
    required: 2,
    wrong: [...cidArgument(0, 'vm_cid'), ...cidArgument(1, 'disk_cid')],
  },
  set_disk_metadata: {
    valid: ['disk-1', { deployment: 'd' }],
    required: 2,
    wrong: [
      ...cidArgument(0, 'disk_cid'),
      { index: 1, name: 'metadata', value: ['d'], expected: 'an object' },
    ],
  },
  get_disks: { valid: ['vm-1'], required: 1, wrong: cidArgument(0, 'vm_cid') },
  snapshot_disk: {
    valid: ['disk-1', { deployment: 'd' }],
    required: 1,
    wrong: [
      ...cidArgument(0, 'disk_cid'),
      { index: 1, name: 'metadata', value: true, expected: 'an object' },
    ],
  },
  delete_snapshot: { valid: ['snapshot-1'], required: 1, wrong: cidArgument(0, 'snapshot_cid') },
  create_network: {
    valid: [
      { type: 'manual', cloud_properties: {}, range: '10.0.0.0/24', gateway: '10.0.0.1', netmask_bits: 24 },
    ],
    required: 1,
    wrong: [
      { index: 0, name: 'network_definition', value: 'manual', expected: 'an object' },
      { index: 0, name: 'network_definition', value: { cloud_properties: {} }, expected: 'a string' },
      { index: 0, name: 'network_definition', value: { type: 'manual', range: 24 }, expected: 'a string' },
      {
        index: 0,
        name: 'network_definition',
        value: { type: 'manual', netmask_bits: 200 },
        expected: 'an integer >= 0 <= 128',
      },
    ],
  },
  delete_network: { valid: ['network-1'], required: 1, wrong: cidArgument(0, 'network_id') },
  current_vm_id: { valid: [], required: 0, wrong: [] },
};

/** Methods that validate their arguments and then always refuse, with these types. */
const REFUSED_AFTER_VALIDATION: Record<string, string> = {
  configure_networks: ErrorType.NotSupported,
  current_vm_id: ErrorType.NotImplemented,
};

function requestFor(method: string, args: unknown[]): CpiRequest {
  return { method, arguments: args, context: { director_uuid: 'uuid' }, apiVersion: 2 };
}

/** Dispatches and returns the CpiFailure it must fail with, having checked the backend was never reached. */
async function failureOf(method: string, args: unknown[]): Promise<CpiFailure> {
  const backend = fakeBackend();
  const call = fakeCall(backend);
  const error = await dispatch(requestFor(method, args), call).then(
    () => assert.fail(`${method} accepted ${JSON.stringify(args)}`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof CpiFailure, `expected a CpiFailure, got ${String(error)}`);
  assert.equal(call.backendLoads, 0, 'the backend must not be reached with invalid arguments');
  assert.deepEqual(backend.calls, []);
  return error;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('the argument table covers exactly the 24 methods the CPI knows', () => {
  assert.deepEqual(Object.keys(CASES).sort(), Object.keys(METHODS).sort());
  assert.equal(Object.keys(METHODS).length, 24);
});

for (const [method, spec] of Object.entries(CASES)) {
  describe(`${method} arguments`, () => {
    const names = METHODS[method]?.args.map((a) => a.name) ?? [];

    test(`${method} passes validation with all arguments given`, async () => {
      const refusal = REFUSED_AFTER_VALIDATION[method];
      const outcome = dispatch(requestFor(method, spec.valid), fakeCall(fakeBackend()));
      if (refusal) await assert.rejects(outcome, (e) => e instanceof CpiFailure && e.type === refusal);
      else await outcome;
    });

    if (spec.required < spec.valid.length) {
      test(`${method} passes validation with only its ${spec.required} required arguments`, async () => {
        await dispatch(requestFor(method, spec.valid.slice(0, spec.required)), fakeCall(fakeBackend()));
      });
    }

    const counts = [spec.valid.length + 1, ...(spec.required > 0 ? [spec.required - 1] : [])];
    for (const count of counts) {
      test(`${method} with ${count} argument(s) is a CloudError naming the method, its arguments and the count`, async () => {
        const args = [...spec.valid, 'extra'].slice(0, count);
        const failure = await failureOf(method, args);
        assert.equal(failure.type, 'Bosh::Clouds::CloudError');
        assert.equal(failure.okToRetry, false);
        const expectedCount =
          spec.required === spec.valid.length
            ? `${spec.required}`
            : `${spec.required} to ${spec.valid.length}`;
        assert.match(failure.message, new RegExp(`^${method} expects ${expectedCount} argument\\(s\\)`));
        assert.match(failure.message, new RegExp(`got ${count}$`));
        for (const name of names)
          assert.ok(failure.message.includes(name), `message must name ${name}: ${failure.message}`);
      });
    }

    for (const wrong of spec.wrong) {
      test(`${method} rejects ${JSON.stringify(wrong.value)?.slice(0, 60)} as ${wrong.name} with a CloudError saying it must be ${wrong.expected}`, async () => {
        assert.equal(names[wrong.index], wrong.name, 'the case names the argument at that position');
        const args = [...spec.valid];
        args[wrong.index] = wrong.value;
        const failure = await failureOf(method, args);
        assert.equal(failure.type, 'Bosh::Clouds::CloudError');
        assert.match(
          failure.message,
          new RegExp(
            `^${method}: argument ${wrong.index + 1} \\(${wrong.name}\\) is invalid: ${wrong.name}\\S* must be `,
          ),
        );
        assert.match(failure.message, new RegExp(`must be ${escapeRegExp(wrong.expected)}`));
      });
    }
  });
}

test('every method with arguments has at least one wrong-type case per argument', () => {
  for (const [method, spec] of Object.entries(CASES)) {
    const covered = new Set(spec.wrong.map((w) => w.index));
    for (let i = 0; i < spec.valid.length; i++)
      assert.ok(covered.has(i), `${method} argument ${i + 1} has no case`);
  }
});

test('a cloud ID of any length reaches the backend (a foreign CID must get VMNotFound, not a CloudError)', async () => {
  const backend = fakeBackend();
  const long = `vm-${'x'.repeat(4096)}`;
  await dispatch(requestFor('delete_vm', [long]), fakeCall(backend));
  assert.deepEqual(backend.calls, [{ method: 'deleteVm', args: [long] }]);
});

test('a nested argument error names the path inside the argument', async () => {
  const failure = await failureOf('create_vm', [
    'agent-1',
    'stemcell-1',
    {},
    { private: { type: 'manual', ip: 10 } },
  ]);
  assert.match(failure.message, /networks\.private\.ip must be a string, got the integer 10/);
});
