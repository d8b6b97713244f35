import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseDockerProperties } from '../../src/backends/docker/config.ts';
import { parseQemuProperties } from '../../src/backends/qemu/config.ts';
import { BACKENDS } from '../../src/backends/registry.ts';
import { parseConfig as parseWithoutBackends } from '../../src/config/config.ts';
import { CpiFailure } from '../../src/rpc/errors.ts';
import type { CpiContext } from '../../src/rpc/request.ts';

const AGENT = { mbus: 'nats://nats:pw@10.0.0.6:4222', ntp: ['time.example.com'] };
const FILE = {
  cloud: {
    plugin: 'docker',
    properties: { agent: AGENT, docker: { data_dir: '/var/lib/bosh-docker-cpi' }, qemu: {} },
  },
};

/** As the CPI parses it: with the backends' own overridable keys. */
const parseConfig = (raw: unknown, context: CpiContext) =>
  parseWithoutBackends(raw, context, {
    overridableOf: (plugin) => BACKENDS[plugin]?.contextOverridable,
    sections: Object.keys(BACKENDS),
  });

function cpiError(action: () => unknown): string {
  try {
    action();
  } catch (e) {
    assert.ok(e instanceof CpiFailure, `expected a CpiFailure, got ${String(e)}`);
    assert.equal(e.type, 'Bosh::Clouds::CpiError');
    return e.message;
  }
  assert.fail('expected a CpiError');
}

describe('request context: only endpoints and credentials may be overridden', () => {
  const refused: Array<[string, Record<string, unknown>]> = [
    ['qemu.qemu_binary', { qemu: { qemu_binary: '/tmp/evil' } }],
    ['qemu.qemu_img_binary', { qemu: { qemu_img_binary: '/tmp/evil' } }],
    ['docker.helper_image', { docker: { helper_image: 'evil:1' } }],
    ['docker.data_dir', { docker: { data_dir: '/etc' } }],
    ['docker.start_command', { docker: { start_command: ['/bin/sh'] } }],
    ['docker.privileged', { docker: { privileged: true } }],
    ['docker.allow_privileged_vms', { docker: { allow_privileged_vms: true } }],
    ['docker.allowed_bind_sources', { docker: { allowed_bind_sources: ['/'] } }],
    ['docker.allowed_networks', { docker: { allowed_networks: ['host'] } }],
    ['docker.allowed_cap_add', { docker: { allowed_cap_add: ['SYS_MODULE'] } }],
    ['docker.allow_insecure_tcp', { docker: { allow_insecure_tcp: true } }],
    ['docker.cap_add', { docker: { cap_add: ['ALL'] } }],
    ['docker.hosts[0].data_dir', { docker: { hosts: [{ name: 'a', host: 'unix:///x', data_dir: '/' }] } }],
    ['qemu.data_dir', { qemu: { data_dir: '/' } }],
  ];
  for (const [key, context] of refused) {
    test(`${key} from the context is a CpiError naming the key`, () => {
      const message = cpiError(() => parseConfig(FILE, { director_uuid: 'u', ...context }));
      assert.ok(message.includes(`may not override cloud.properties.${key}`), message);
      assert.ok(!message.includes('/tmp/evil') && !message.includes('evil:1'), 'the value is not echoed');
    });
  }

  test('nothing of the QEMU section may be overridden (it names local binaries and paths only)', () => {
    const qemuFile = { cloud: { plugin: 'qemu', properties: { agent: AGENT, qemu: {} } } };
    for (const key of ['qemu_binary', 'data_dir', 'default_bridge', 'bridges']) {
      const message = cpiError(() => parseConfig(qemuFile, { director_uuid: 'u', qemu: { [key]: 'x' } }));
      assert.ok(message.includes(`may not override cloud.properties.qemu.${key}`), message);
    }
    assert.equal(parseConfig(qemuFile, { agent: { mbus: 'nats://o:4222' } }).agent.mbus, 'nats://o:4222');
  });

  test('keys that name no config section are left out, not merged (a newer Director may add its own)', () => {
    const config = parseConfig(FILE, { director_uuid: 'u', x_unknown_property: 'v', extra: { a: 1 } });
    assert.deepEqual(Object.keys(config.properties).sort(), ['agent', 'docker', 'qemu']);
  });

  test("without the backends' keys only the agent section may be overridden", () => {
    const message = cpiError(() => parseWithoutBackends(FILE, { docker: { host: 'unix:///x' } }));
    assert.ok(message.includes('may not override cloud.properties.docker.host'), message);
  });

  test('endpoints and credentials of a cpi-config are merged', () => {
    const tls = { ca: 'CA', certificate: 'CERT', private_key: 'KEY' };
    const config = parseConfig(FILE, {
      director_uuid: 'u',
      request_id: 'cpi-1',
      vm: { stemcell: { api_version: 3 } },
      docker: {
        host: 'tcp://10.0.0.9:2376',
        tls,
        api_version: '1.41',
        hosts: [{ name: 'z1', host: 'tcp://10.0.0.8:2376', tls, api_version: '1.41' }],
      },
      agent: {
        mbus: 'nats://other:4222',
        ntp: [],
        blobstore: { provider: 'dav', options: { password: 'p' } },
      },
    });
    assert.equal((config.properties.docker as Record<string, unknown>).host, 'tcp://10.0.0.9:2376');
    assert.equal((config.properties.docker as Record<string, unknown>).data_dir, '/var/lib/bosh-docker-cpi');
    assert.equal(config.agent.mbus, 'nats://other:4222');
  });
});

describe('data_dir: absolute, normalized, no ":", never a system directory (both backends)', () => {
  const bad = ['/', '/etc', '/etc/cpi', '/usr', '/usr/local/cpi', '/var/lib', '/tmp', '/var/lib/docker']
    .concat(['/var/lib/a:b', '/var/lib/../etc', '/var/lib/./x', '/var//lib/x', '/var/lib/x/', 'var/lib/x'])
    .concat(['/proc/1', '/dev/sda', '/var/lib/x\ny']);
  for (const dir of bad) {
    test(`${JSON.stringify(dir)} is refused`, () => {
      assert.match(
        cpiError(() => parseDockerProperties({ data_dir: dir })),
        /docker\.data_dir must be/,
      );
      if (!dir.includes('\n') && !dir.includes(':'))
        assert.match(
          cpiError(() => parseQemuProperties({ data_dir: dir })),
          /qemu\.data_dir must be/,
        );
    });
  }
  test('a data_dir of its own is accepted', () => {
    assert.equal(
      parseDockerProperties({ data_dir: '/var/lib/bosh-docker-cpi' }).data_dir,
      '/var/lib/bosh-docker-cpi',
    );
    assert.equal(parseQemuProperties({ data_dir: '/srv/qemu-cpi' }).data_dir, '/srv/qemu-cpi');
    assert.equal(
      parseDockerProperties({ hosts: [{ name: 'a', host: 'unix:///x', data_dir: '/data/cpi' }] }).hosts?.[0]
        ?.data_dir,
      '/data/cpi',
    );
    assert.match(
      cpiError(() => parseDockerProperties({ hosts: [{ name: 'a', host: 'unix:///x', data_dir: '/etc' }] })),
      /hosts\[0\]\.data_dir must be/,
    );
  });
});

describe('remote engines: TLS unless the operator opts in', () => {
  test('tcp:// and http:// without tls are refused, naming the opt-in key', () => {
    for (const host of ['tcp://10.0.0.9:2375', 'http://10.0.0.9:2375', 'https://10.0.0.9:2376']) {
      const message = cpiError(() => parseDockerProperties({ host }));
      assert.match(message, /docker\.host .* without config\.cloud\.properties\.docker\.tls/);
      assert.match(message, /docker\.allow_insecure_tcp: true/);
    }
    const many = cpiError(() =>
      parseDockerProperties({
        hosts: [
          { name: 'a', host: 'unix:///x' },
          { name: 'b', host: 'tcp://h:2375' },
        ],
      }),
    );
    assert.match(many, /docker\.hosts\[1\]\.host tcp:\/\/h:2375/);
  });

  test('tls, a unix socket or the explicit opt-in are accepted', () => {
    const tls = { ca: 'CA', certificate: 'CERT', private_key: 'KEY' };
    parseDockerProperties({ host: 'tcp://10.0.0.9:2376', tls });
    parseDockerProperties({ host: 'unix:///var/run/docker.sock' });
    parseDockerProperties({ host: 'tcp://10.0.0.9:2375', allow_insecure_tcp: true });
  });
});

describe('allowlist keys in the Docker config', () => {
  test('defaults keep manifests off the host', () => {
    const props = parseDockerProperties({});
    assert.deepEqual(props.allowed_bind_sources, []);
    assert.equal(props.allow_privileged_vms, false);
    assert.deepEqual(props.allowed_cap_add, []);
    assert.equal(props.allowed_networks, undefined);
    assert.equal(props.allow_insecure_tcp, false);
  });
  test('bind sources must be normalized absolute paths', () => {
    for (const bad of ['relative', '/a/../b', '/a//b', '/a/'])
      assert.match(
        cpiError(() => parseDockerProperties({ allowed_bind_sources: [bad] })),
        /allowed_bind_sources\[0\] must be a normalized absolute path/,
      );
  });
});
