import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NetworkInspect } from '../../src/backends/docker/engine/types.ts';
import { LABELS } from '../../src/backends/docker/labels.ts';
import {
  defaultGatewayNetwork,
  dnsServers,
  type NetworkApi,
  planNetworks,
  portBindings,
  reportNetworks,
} from '../../src/backends/docker/networking.ts';
import type { NetworkSpec, Networks } from '../../src/cpi/types.ts';
import { CpiFailure } from '../../src/rpc/errors.ts';

/** An engine's /networks in memory: what exists, and every creation asked for. */
function fakeNetworks(existing: NetworkInspect[] = []) {
  const byName = new Map(existing.map((n) => [n.Name, n]));
  const created: Array<Record<string, unknown> & { Name: string }> = [];
  const api: NetworkApi = {
    inspect: async (name) => byName.get(name),
    create: async (spec) => {
      if (byName.has(spec.Name)) return false;
      created.push(spec);
      const ipam = spec.IPAM as { Config: Array<{ Subnet?: string; Gateway?: string }> };
      byName.set(spec.Name, {
        Id: `id-${spec.Name}`,
        Name: spec.Name,
        Driver: String(spec.Driver),
        Labels: spec.Labels as Record<string, string>,
        IPAM: { Config: ipam.Config },
      });
      return true;
    },
  };
  return { api, created };
}

const bridge = (name: string, subnet?: string): NetworkInspect => ({
  Id: `id-${name}`,
  Name: name,
  Driver: 'bridge',
  Labels: null,
  IPAM: { Config: subnet ? [{ Subnet: subnet }] : [] },
});

const manual = (ip: string, extra: Partial<NetworkSpec> = {}): NetworkSpec => ({
  type: 'manual',
  ip,
  netmask: '255.255.255.0',
  gateway: ip.replace(/\.\d+$/, '.1'),
  cloud_properties: {},
  ...extra,
});

const failureOf = async (promise: Promise<unknown>): Promise<CpiFailure> => {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof CpiFailure, String(e));
    return e;
  }
  return assert.fail('expected a failure');
};

describe('network planning', () => {
  test('a manual network gets a bridge of its own subnet, labelled as the CPI’s, and a fixed address', async () => {
    const { api, created } = fakeNetworks();
    const plan = await planNetworks({ z1: manual('10.244.7.5') }, api, 'bridge', 'director-1');
    assert.equal(created.length, 1);
    assert.equal(created[0]?.Name, 'bosh-10-244-7-0-24');
    assert.deepEqual(created[0]?.IPAM, {
      Driver: 'default',
      Config: [{ Subnet: '10.244.7.0/24', Gateway: '10.244.7.1' }],
    });
    assert.deepEqual(created[0]?.Labels, {
      [LABELS.cpi]: 'docker',
      [LABELS.network]: 'managed',
      [LABELS.director]: 'director-1',
    });
    assert.deepEqual(plan, [
      {
        boshName: 'z1',
        dockerName: 'bosh-10-244-7-0-24',
        endpoint: { IPAMConfig: { IPv4Address: '10.244.7.5' } },
        managed: true,
        hostNetwork: false,
        isDefaultGateway: true,
      },
    ]);
  });

  test('an existing network of the subnet is joined, not created again', async () => {
    const { api, created } = fakeNetworks([bridge('bosh-10-244-7-0-24', '10.244.7.0/24')]);
    const [attachment] = await planNetworks({ z1: manual('10.244.7.5') }, api, 'bridge', 'd');
    assert.equal(created.length, 0);
    assert.equal(attachment?.managed, false);
  });

  test('a dynamic network joins the default network (or the one cloud_properties names), without an address', async () => {
    const { api } = fakeNetworks([bridge('bridge'), bridge('mynet')]);
    const plan = await planNetworks(
      {
        a: { type: 'dynamic', cloud_properties: {} },
        b: { type: 'dynamic', cloud_properties: { name: 'mynet' }, default: ['gateway'] },
      },
      api,
      'bridge',
      'd',
      ['mynet'],
    );
    assert.deepEqual(
      plan.map((p) => [p.boshName, p.dockerName, p.endpoint, p.isDefaultGateway]),
      [
        ['a', 'bridge', {}, false],
        ['b', 'mynet', {}, true],
      ],
    );
  });

  test('vip networks are not joined', async () => {
    const { api } = fakeNetworks([bridge('bridge')]);
    const plan = await planNetworks(
      {
        v: { type: 'vip', ip: '1.2.3.4', cloud_properties: {} },
        d: { type: 'dynamic', cloud_properties: {} },
      },
      api,
      'bridge',
      'd',
    );
    assert.deepEqual(
      plan.map((p) => p.boshName),
      ['d'],
    );
  });

  test('an IP outside the named network’s subnets, a missing network and a bad name are VMCreationFailed', async () => {
    const { api } = fakeNetworks([bridge('other', '10.9.0.0/16'), bridge('bridge')]);
    const outside = await failureOf(
      planNetworks(
        { z1: manual('10.244.7.5', { cloud_properties: { name: 'other' } }) },
        api,
        'bridge',
        'd',
        ['other'],
      ),
    );
    assert.equal(outside.type, 'Bosh::Clouds::VMCreationFailed');
    assert.match(
      outside.message,
      /IP 10\.244\.7\.5 is outside Docker network 'other' \(subnets 10\.9\.0\.0\/16\)/,
    );
    const missing = await failureOf(
      planNetworks({ d: { type: 'dynamic', cloud_properties: { name: 'nope' } } }, api, 'bridge', 'd'),
    );
    assert.match(missing.message, /Docker network 'nope' does not exist/);
    const badName = await failureOf(
      planNetworks({ d: { type: 'dynamic', cloud_properties: { name: '../x' } } }, api, 'bridge', 'd'),
    );
    assert.match(badName.message, /must be a Docker network name/);
  });
});

describe('network results and defaults', () => {
  const networks: Networks = {
    b: { type: 'dynamic', cloud_properties: {}, dns: ['8.8.8.8'] },
    a: manual('10.0.0.5', { dns: ['10.0.0.2'], default: ['dns'] }),
  };

  test('the gateway network is the one whose default names it, else the first by name', () => {
    assert.equal(defaultGatewayNetwork(networks), 'a');
    assert.equal(
      defaultGatewayNetwork({ ...networks, b: { ...networks.b, default: ['gateway'] } } as Networks),
      'b',
    );
  });

  test('DNS comes from the network whose default names dns', () => {
    assert.deepEqual(dnsServers(networks), ['10.0.0.2']);
    assert.deepEqual(dnsServers({ b: networks.b as NetworkSpec }), ['8.8.8.8']);
    assert.deepEqual(dnsServers({}), []);
  });

  test('a dynamic network reports the address, netmask and gateway the engine chose; manual ones stay as sent', () => {
    const plan = [
      {
        boshName: 'b',
        dockerName: 'bridge',
        endpoint: {},
        managed: false,
        hostNetwork: false,
        isDefaultGateway: false,
      },
    ];
    const reported = reportNetworks(networks, plan, {
      bridge: { IPAddress: '172.17.0.9', IPPrefixLen: 16, Gateway: '172.17.0.1' },
    });
    assert.equal(reported.b?.ip, '172.17.0.9');
    assert.equal(reported.b?.netmask, '255.255.0.0');
    assert.equal(reported.b?.gateway, '172.17.0.1');
    assert.deepEqual(reported.a, networks.a);
  });
});

describe('port bindings', () => {
  test('port, host port and host address forms, tcp unless udp is named', () => {
    assert.deepEqual(portBindings(['8080', '2222:22', '127.0.0.1:6868:6868/tcp', '53/udp'], '0.0.0.0'), {
      exposed: { '8080/tcp': {}, '22/tcp': {}, '6868/tcp': {}, '53/udp': {} },
      bindings: {
        '8080/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }],
        '22/tcp': [{ HostIp: '0.0.0.0', HostPort: '2222' }],
        '6868/tcp': [{ HostIp: '127.0.0.1', HostPort: '6868' }],
        '53/udp': [{ HostIp: '0.0.0.0', HostPort: '53' }],
      },
    });
  });

  test('one container port published twice keeps both bindings', () => {
    assert.deepEqual(portBindings(['80', '8080:80'], '127.0.0.1').bindings, {
      '80/tcp': [
        { HostIp: '127.0.0.1', HostPort: '80' },
        { HostIp: '127.0.0.1', HostPort: '8080' },
      ],
    });
  });

  test('no ports is nothing; anything but a list of such strings is VMCreationFailed', () => {
    assert.deepEqual(portBindings(undefined, '0.0.0.0'), { exposed: {}, bindings: {} });
    for (const bad of ['80', ['80/sctp'], [80], ['a:b:c:d']])
      assert.throws(
        () => portBindings(bad, '0.0.0.0'),
        (e) => e instanceof CpiFailure && e.type === 'Bosh::Clouds::VMCreationFailed',
      );
  });
});
