import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  capabilitiesFor,
  checkedBinds,
  checkedCapAdd,
  checkedPrivileged,
  checkNetworkAllowed,
  type VmPolicy,
} from '../../src/backends/docker/vm-policy.ts';
import { CpiFailure } from '../../src/rpc/errors.ts';

const DEFAULTS: VmPolicy = {
  data_dir: '/var/lib/bosh-docker-cpi',
  privileged: false,
  allow_privileged_vms: false,
  allowed_bind_sources: [],
  allowed_cap_add: [],
};

function refusal(action: () => unknown, ...parts: RegExp[]): void {
  assert.throws(action, (e: unknown) => {
    assert.ok(e instanceof CpiFailure, String(e));
    assert.equal(e.type, 'Bosh::Clouds::VMCreationFailed');
    assert.equal(e.okToRetry, false);
    for (const part of parts) assert.match(e.message, part);
    return true;
  });
}

describe('cloud_properties.binds', () => {
  test('by default no host path may be bound: not /, not the docker socket', () => {
    refusal(() => checkedBinds({ binds: ['/:/host:rw'] }, DEFAULTS), /host path '\/' overlaps/);
    for (const bind of ['/var/run/docker.sock:/var/run/docker.sock', '/etc:/host-etc:ro'])
      refusal(
        () => checkedBinds({ binds: [bind] }, DEFAULTS),
        /cloud_properties\.binds/,
        /config\.cloud\.properties\.docker\.allowed_bind_sources/,
      );
    assert.deepEqual(checkedBinds({}, DEFAULTS), []);
  });

  test('data_dir, anything in it and its parents are refused even when listed', () => {
    const policy = { ...DEFAULTS, allowed_bind_sources: ['/'] };
    for (const source of ['/var/lib/bosh-docker-cpi', '/var/lib/bosh-docker-cpi/disks', '/var/lib', '/'])
      refusal(
        () => checkedBinds({ binds: [`${source}:/x`] }, policy),
        /overlaps the CPI's data directory/,
        /no config key allows that/,
      );
    assert.deepEqual(checkedBinds({ binds: ['/srv/x:/x'] }, policy), ['/srv/x:/x']);
  });

  test('listed sources and what lies below them are allowed; ".." cannot climb out', () => {
    const policy = { ...DEFAULTS, allowed_bind_sources: ['/var/run/docker.sock', '/srv/shared'] };
    assert.deepEqual(
      checkedBinds({ binds: ['/var/run/docker.sock:/var/run/docker.sock', '/srv/shared/a:/a:ro'] }, policy),
      ['/var/run/docker.sock:/var/run/docker.sock', '/srv/shared/a:/a:ro'],
    );
    refusal(() => checkedBinds({ binds: ['/srv/shared/../../etc:/x'] }, policy), /normalized absolute/);
    refusal(() => checkedBinds({ binds: ['/srv/sharedother:/x'] }, policy), /allowed_bind_sources/);
    refusal(() => checkedBinds({ binds: ['/srv/shared:/x:rshared'] }, policy), /cloud_properties\.binds/);
    refusal(() => checkedBinds({ binds: 'srv:/x' }, policy), /must be a list/);
    refusal(() => checkedBinds({ binds: ['relative:/x'] }, policy), /must be a list/);
  });
});

describe('cloud_properties.privileged', () => {
  test("true never overrides the operator's privileged: false unless allow_privileged_vms", () => {
    refusal(
      () => checkedPrivileged({ privileged: true }, DEFAULTS),
      /cloud_properties\.privileged/,
      /config\.cloud\.properties\.docker\.allow_privileged_vms/,
    );
    assert.equal(checkedPrivileged({ privileged: true }, { ...DEFAULTS, allow_privileged_vms: true }), true);
    assert.equal(checkedPrivileged({ privileged: true }, { ...DEFAULTS, privileged: true }), true);
  });
  test('false always works; absent follows the operator; anything else is refused', () => {
    assert.equal(checkedPrivileged({ privileged: false }, { ...DEFAULTS, privileged: true }), false);
    assert.equal(checkedPrivileged({}, { ...DEFAULTS, privileged: true }), true);
    assert.equal(checkedPrivileged({}, DEFAULTS), false);
    refusal(() => checkedPrivileged({ privileged: 'true' }, DEFAULTS), /must be a boolean/);
  });
});

describe('cloud_properties.cap_add', () => {
  test('only capabilities the operator lists in allowed_cap_add', () => {
    refusal(
      () => checkedCapAdd({ cap_add: ['SYS_MODULE'] }, DEFAULTS),
      /capability SYS_MODULE/,
      /config\.cloud\.properties\.docker\.allowed_cap_add/,
    );
    const policy = { ...DEFAULTS, allowed_cap_add: ['SYS_TIME', 'ALL'] };
    assert.deepEqual(checkedCapAdd({ cap_add: ['cap_sys_time'] }, policy), ['SYS_TIME']);
    refusal(() => checkedCapAdd({ cap_add: ['ALL'] }, policy), /capability ALL/);
    refusal(() => checkedCapAdd({ cap_add: 'SYS_TIME' }, policy), /must be a list/);
  });
});

describe('network cloud_properties.name', () => {
  const policy = { default_network: 'bridge', allowed_networks: undefined };
  test("the engine's host and none networks are refused unless allowed_networks lists them", () => {
    refusal(
      () => checkNetworkAllowed('default', 'host', 'host', policy),
      /cloud_properties\.name 'host'/,
      /config\.cloud\.properties\.docker\.allowed_networks/,
    );
    refusal(() => checkNetworkAllowed('default', 'none', 'null', policy), /'none'/);
    checkNetworkAllowed('default', 'host', 'host', { ...policy, allowed_networks: ['host'] });
    checkNetworkAllowed('default', 'bosh-net', 'bridge', policy);
    checkNetworkAllowed('default', 'bridge', 'bridge', policy);
  });
  test('with allowed_networks only those (and the default network) may be named', () => {
    const strict = { default_network: 'bridge', allowed_networks: ['bosh'] };
    checkNetworkAllowed('default', 'bosh', 'bridge', strict);
    checkNetworkAllowed('default', 'bridge', 'bridge', strict);
    refusal(() => checkNetworkAllowed('default', 'other', 'bridge', strict), /allowed_networks/);
  });
  test('no NET_ADMIN in the host network namespace', () => {
    assert.deepEqual(capabilitiesFor(['SYS_ADMIN', 'NET_ADMIN'], true), ['SYS_ADMIN']);
    assert.deepEqual(capabilitiesFor(['SYS_ADMIN', 'NET_ADMIN'], false), ['SYS_ADMIN', 'NET_ADMIN']);
  });
});
