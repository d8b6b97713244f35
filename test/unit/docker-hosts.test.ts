import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseDockerProperties } from '../../src/backends/docker/config.ts';
import type { DockerContext } from '../../src/backends/docker/context.ts';
import { TransportError } from '../../src/backends/docker/engine/transport.ts';
import { toCpiFailure } from '../../src/backends/docker/failure.ts';
import { hostsBackend } from '../../src/backends/docker/hosts/backend.ts';
import { joinId, splitId } from '../../src/backends/docker/hosts/cloud-ids.ts';
import { placeVm } from '../../src/backends/docker/hosts/placement.ts';
import { DEFAULT_HOST_NAME, HostPool, hostSpecs } from '../../src/backends/docker/hosts/pool.ts';
import type { CreateVmInput } from '../../src/cpi/types.ts';
import { Logger } from '../../src/log/logger.ts';
import { Redactor } from '../../src/log/redact.ts';
import { CpiFailure, vmNotFound } from '../../src/rpc/errors.ts';
import { type FakeBackend, fakeBackend } from '../support/fake-backend.ts';
import { diskCid, stemcellCid, vmCid } from '../support/ids.ts';

const U1 = '0b7e5a1c-7b7a-4d8e-9a1b-1234567890ab';
const U2 = '1c8f6b2d-8c8b-4e9f-8b2c-234567890abc';

function failureOf(action: () => unknown): CpiFailure {
  try {
    action();
  } catch (e) {
    assert.ok(e instanceof CpiFailure, `expected a CpiFailure, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a failure');
}

async function rejection(promise: Promise<unknown>): Promise<CpiFailure> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof CpiFailure, `expected a CpiFailure, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a rejection');
}

describe('host-qualified cloud IDs', () => {
  test('an ID with a host part splits into the host-local ID and the host', () => {
    assert.deepEqual(splitId('vm', vmCid(`vm-${U1}@zone-2`)), { local: `vm-${U1}`, host: 'zone-2' });
    assert.deepEqual(splitId('disk', diskCid(`disk-${U1}@Z_1`)), { local: `disk-${U1}`, host: 'Z_1' });
    assert.equal(joinId(vmCid(`vm-${U1}`), 'zone-2'), `vm-${U1}@zone-2`);
  });

  test('an ID in the single-host format has no host part', () => {
    assert.deepEqual(splitId('vm', vmCid(`vm-${U1}`)), { local: `vm-${U1}`, host: undefined });
  });

  for (const bad of [
    `vm-${U1}@`,
    `vm-${U1}@../../etc`,
    `vm-${U1}@a/b`,
    `vm-${U1}@a.b`,
    `vm-${U1}@a@b`,
    `vm-${U1}@-a`,
    `vm-${U1}@${'a'.repeat(64)}`,
    `../vm-${U1}@a`,
    `disk-${U1}@a`,
    `vm-${U1.toUpperCase()}@a`,
    '@a',
  ])
    test(`'${bad}' is not a VM ID`, () => assert.equal(splitId('vm', vmCid(bad)), undefined));
});

describe('docker.hosts config', () => {
  const tls = { ca: 'ca', certificate: 'cert', private_key: 'key' };

  test('each host gets its own endpoint, TLS and data_dir (defaulting to docker.data_dir)', () => {
    const props = parseDockerProperties({
      data_dir: '/var/lib/shared',
      api_version: '1.41',
      hosts: [
        { name: 'z1', host: 'unix:///var/run/docker.sock' },
        { name: 'z2', host: 'tcp://10.0.0.9:2376', tls, data_dir: '/data/cpi', api_version: '1.43' },
      ],
    });
    const { specs, qualifiedIds } = hostSpecs(props);
    assert.equal(qualifiedIds, true);
    assert.deepEqual(
      specs.map((s) => [s.name, s.endpoint, s.dataDir, s.apiVersion, s.tls?.ca]),
      [
        ['z1', 'unix:///var/run/docker.sock', '/var/lib/shared', '1.41', undefined],
        ['z2', 'tcp://10.0.0.9:2376', '/data/cpi', '1.43', 'ca'],
      ],
    );
    assert.equal(specs[1]?.tlsPath, 'config.cloud.properties.docker.hosts[1].tls');
  });

  test('the single-host config is one host under a stable name, with plain IDs', () => {
    const { specs, qualifiedIds } = hostSpecs(parseDockerProperties({ host: 'tcp://h:2376', tls }));
    assert.equal(qualifiedIds, false);
    assert.equal(specs.length, 1);
    assert.equal(specs[0]?.name, DEFAULT_HOST_NAME);
    assert.equal(specs[0]?.endpoint, 'tcp://h:2376');
  });

  const invalid: Array<[string, unknown, RegExp]> = [
    ['an empty list', { hosts: [] }, /hosts must name at least one host/],
    [
      'host next to hosts',
      { host: 'unix:///x', hosts: [{ name: 'a', host: 'unix:///y' }] },
      /host and .*hosts exclude/,
    ],
    ['tls next to hosts', { tls, hosts: [{ name: 'a', host: 'unix:///y' }] }, /tls and .*hosts exclude/],
    [
      'a name used twice',
      {
        hosts: [
          { name: 'a', host: 'unix:///x' },
          { name: 'a', host: 'unix:///y' },
        ],
      },
      /hosts\[1\]\.name "a" is used by an earlier host/,
    ],
    ['a name with a dot', { hosts: [{ name: 'a.b', host: 'unix:///x' }] }, /hosts\[0\]\.name must be a name/],
    ['a name with a slash', { hosts: [{ name: '../x', host: 'unix:///x' }] }, /hosts\[0\]\.name/],
    ['no endpoint', { hosts: [{ name: 'a' }] }, /hosts\[0\]\.host must be a string/],
    ['a bad endpoint', { hosts: [{ name: 'a', host: 'http//x' }] }, /hosts\[0\]\.host must be unix/],
    [
      'incomplete TLS',
      { hosts: [{ name: 'a', host: 'tcp://x:1', tls: { ca: 'x' } }] },
      /hosts\[0\]\.tls\.certificate/,
    ],
    [
      'a relative data_dir',
      { hosts: [{ name: 'a', host: 'unix:///x', data_dir: 'd' }] },
      /hosts\[0\]\.data_dir/,
    ],
  ];
  for (const [name, raw, message] of invalid)
    test(`${name} is a CpiError naming the field`, () => {
      const failure = failureOf(() => parseDockerProperties(raw));
      assert.equal(failure.type, 'Bosh::Clouds::CpiError');
      assert.match(failure.message, message);
    });
});

/** A pool of fake hosts: each has a recording backend and answers the VM count it is given. */
function fakePool(
  hosts: Record<string, { vms?: number; down?: boolean; backend?: Parameters<typeof fakeBackend>[0] }>,
  qualified = true,
) {
  const backends: Record<string, FakeBackend> = {};
  const lines: string[] = [];
  const logger = new Logger('test', new Redactor(), (l) => lines.push(l));
  const specs = Object.keys(hosts).map((name) => ({
    name,
    endpoint: `tcp://${name}.example:2376`,
    tls: undefined,
    tlsPath: '',
    apiVersion: undefined,
    dataDir: '/d',
  }));
  const pool = new HostPool(
    specs,
    qualified,
    (spec) => {
      const h = hosts[spec.name] ?? {};
      const unreachable = () => new TransportError(spec.endpoint, 'ECONNREFUSED', 'connection refused');
      const context = {
        docker: {
          json: async () => {
            if (h.down) throw unreachable();
            return new Array(h.vms ?? 0).fill({});
          },
          close: () => {},
        },
        images: { inspect: async () => (h.down ? Promise.reject(unreachable()) : { Id: 'sha256:x' }) },
      } as unknown as DockerContext;
      const backend = fakeBackend(h.backend);
      backends[spec.name] = backend;
      return { context, backend };
    },
    () => undefined,
    logger,
  );
  return { pool, backends, lines };
}

const input = (over: Partial<CreateVmInput> = {}): CreateVmInput => ({
  agentId: 'agent-1',
  stemcellCid: stemcellCid(`stemcell-${U1}`),
  cloudProperties: {},
  networks: {},
  diskCids: [],
  env: {},
  ...over,
});

describe('placement', () => {
  test('cloud_properties.host wins; an unknown name is a VMCreationFailed listing the hosts', async () => {
    const { pool } = fakePool({ a: { vms: 0 }, b: { vms: 9 } });
    const placed = await placeVm(
      pool,
      input({ cloudProperties: { host: 'b' }, diskCids: [diskCid(`disk-${U1}@a`)] }),
    );
    assert.equal(placed.host.name, 'b');
    const failure = await rejection(placeVm(pool, input({ cloudProperties: { host: 'c' } })));
    assert.equal(failure.type, 'Bosh::Clouds::VMCreationFailed');
    assert.equal(failure.okToRetry, false);
    assert.match(
      failure.message,
      /cloud_properties.host "c" is not a Docker host of this CPI \(hosts: a, b\)/,
    );
  });

  test('a single-host config ignores a cloud_properties.host of another name, as it did before hosts', async () => {
    const { pool, lines } = fakePool({ default: {} }, false);
    assert.equal((await placeVm(pool, input({ cloudProperties: { host: 'z9' } }))).host.name, 'default');
    assert.match(lines.join('\n'), /cloud_properties.host "z9" ignored: this CPI has a single Docker host/);
  });

  test('next to its disks; a disk without host part is on the first host', async () => {
    const { pool } = fakePool({ a: { vms: 9 }, b: { vms: 0 } });
    assert.equal((await placeVm(pool, input({ diskCids: [diskCid(`disk-${U1}@b`)] }))).host.name, 'b');
    const legacy = await placeVm(pool, input({ diskCids: [diskCid(`disk-${U1}`)] }));
    assert.equal(legacy.host.name, 'a');
    assert.match(legacy.reason, /holds the VM's persistent disk/);
  });

  test('else the least loaded reachable host; unreachable ones are named in the reason', async () => {
    const { pool } = fakePool({ a: { vms: 3 }, b: { down: true }, c: { vms: 1 } });
    const placed = await placeVm(pool, input());
    assert.equal(placed.host.name, 'c');
    assert.match(
      placed.reason,
      /a: 3 VMs; b: Docker host 'b' \(tcp:\/\/b.example:2376\) is unreachable: connection refused; c: 1 VMs/,
    );
  });

  test('equally loaded hosts share the VMs', async () => {
    const { pool } = fakePool({ a: { vms: 2 }, b: { vms: 2 } });
    const chosen = new Set<string>();
    for (let i = 0; i < 40; i++) chosen.add((await placeVm(pool, input())).host.name);
    assert.deepEqual([...chosen].sort(), ['a', 'b']);
  });

  test('no reachable host: VMCreationFailed that may be retried', async () => {
    const { pool } = fakePool({ a: { down: true }, b: { down: true } });
    const failure = await rejection(placeVm(pool, input()));
    assert.equal(failure.type, 'Bosh::Clouds::VMCreationFailed');
    assert.equal(failure.okToRetry, true);
    assert.match(failure.message, /No Docker host is reachable/);
  });
});

describe('routing by cloud ID', () => {
  const vmA = vmCid(`vm-${U1}`);
  const diskB = diskCid(`disk-${U2}`);

  test('each call goes to the host its ID names, with the ID that host knows', async () => {
    const { pool, backends } = fakePool({ a: {}, b: {} });
    const backend = hostsBackend(pool, toCpiFailure);
    await backend.deleteVm(vmCid(`${vmA}@b`));
    await backend.hasDisk(diskCid(`${diskB}@a`));
    await backend.hasVm(vmA);
    assert.deepEqual(backends.b?.calls, [{ method: 'deleteVm', args: [vmA] }]);
    assert.deepEqual(backends.a?.calls, [
      { method: 'hasDisk', args: [diskB] },
      { method: 'hasVm', args: [vmA] },
    ]);
  });

  test('results are cloud IDs naming the host', async () => {
    const { pool } = fakePool({
      a: {},
      b: { backend: { overrides: { createDisk: async () => diskB, getDisks: async () => [diskB] } } },
    });
    const backend = hostsBackend(pool, toCpiFailure);
    assert.equal(await backend.createDisk(10, {}, vmCid(`${vmA}@b`)), `${diskB}@b`);
    assert.deepEqual(await backend.getDisks(vmCid(`${vmA}@b`)), [`${diskB}@b`]);
    const created = await backend.createVm(input({ cloudProperties: { host: 'b' } }));
    assert.equal(created.vmCid, 'vm-fake-1@b');
  });

  test('a single-host config keeps plain IDs', async () => {
    const { pool } = fakePool(
      { default: { backend: { overrides: { createDisk: async () => diskB } } } },
      false,
    );
    assert.equal(await hostsBackend(pool, toCpiFailure).createDisk(10, {}, vmA), diskB);
  });

  test('attaching a disk to a VM on another host is refused, naming both hosts', async () => {
    const { pool, backends } = fakePool({ a: {}, b: {} });
    const failure = await rejection(
      hostsBackend(pool, toCpiFailure).attachDisk(vmCid(`${vmA}@a`), diskCid(`${diskB}@b`)),
    );
    assert.equal(failure.type, 'Bosh::Clouds::CloudError');
    assert.match(failure.message, /Disk '.*@b' is on Docker host 'b' and VM '.*@a' on Docker host 'a'/);
    assert.equal(backends.a?.calls.length ?? 0, 0);
    const detach = await rejection(
      hostsBackend(pool, toCpiFailure).detachDisk(vmCid(`${vmA}@a`), diskCid(`${diskB}@b`)),
    );
    assert.equal(detach.type, 'Bosh::Clouds::DiskNotAttached');
  });

  test('an ID naming an unknown host is an error, never an answer', async () => {
    const { pool } = fakePool({ a: {}, b: {} });
    const failure = await rejection(hostsBackend(pool, toCpiFailure).hasVm(vmCid(`${vmA}@c`)));
    assert.equal(failure.type, 'Bosh::Clouds::CloudError');
    assert.match(
      failure.message,
      /VM '.*@c' is on Docker host 'c', which is not in this CPI's config \(hosts: a, b\)/,
    );
  });

  test('errors of a host name it and speak of the cloud IDs', async () => {
    const { pool } = fakePool({
      a: {},
      b: {
        backend: {
          overrides: {
            rebootVm: async () => {
              throw new TransportError('tcp://b.example:2376', 'ECONNREFUSED', 'connection refused');
            },
            setVmMetadata: async (cid: string) => {
              throw vmNotFound(cid);
            },
          },
        },
      },
    });
    const backend = hostsBackend(pool, toCpiFailure);
    const down = await rejection(backend.rebootVm(vmCid(`${vmA}@b`)));
    assert.equal(down.type, 'Bosh::Clouds::CloudError');
    assert.equal(down.okToRetry, true);
    assert.equal(down.message, "Docker host 'b' (tcp://b.example:2376) is unreachable: connection refused");
    const missing = await rejection(backend.setVmMetadata(vmCid(`${vmA}@b`), {}));
    assert.equal(missing.message, `VM '${vmA}@b' not found`);
    assert.equal(missing.type, 'Bosh::Clouds::VMNotFound');
    assert.ok(missing.cause instanceof CpiFailure, 'the host-local failure is kept as the cause');
  });
});
