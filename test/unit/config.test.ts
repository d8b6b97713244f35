import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { BACKENDS } from '../../src/backends/registry.ts';
import { configPathFromArgv } from '../../src/config/argv.ts';
import {
  contextOverrides,
  deepMerge,
  parseConfig as parseConfigWith,
  readConfigFile,
} from '../../src/config/config.ts';
import { CpiFailure } from '../../src/rpc/errors.ts';
import type { CpiContext } from '../../src/rpc/request.ts';

const AGENT = { mbus: 'nats://nats:pw@10.0.0.6:4222', ntp: ['time.example.com'] };

/** As the CPI parses it: with the backends' own overridable keys. */
const parseConfig = (raw: unknown, context: CpiContext) =>
  parseConfigWith(raw, context, {
    overridableOf: (plugin) => BACKENDS[plugin]?.contextOverridable,
    sections: Object.keys(BACKENDS),
  });

function configWith(properties: Record<string, unknown>, plugin: unknown = 'docker') {
  return { cloud: { plugin, properties } };
}

function cpiErrorFrom(action: () => unknown): CpiFailure {
  try {
    action();
  } catch (e) {
    assert.ok(e instanceof CpiFailure, `expected a CpiFailure, got ${String(e)}`);
    assert.equal(e.type, 'Bosh::Clouds::CpiError');
    return e;
  }
  assert.fail('expected a CpiError');
}

async function cpiErrorFromAsync(action: () => Promise<unknown>): Promise<CpiFailure> {
  try {
    await action();
  } catch (e) {
    return cpiErrorFrom(() => {
      throw e;
    });
  }
  assert.fail('expected a CpiError');
}

describe('config path from argv', () => {
  let saved: string | undefined;
  beforeEach(() => {
    saved = process.env.BOSH_CPI_CONFIG;
    delete process.env.BOSH_CPI_CONFIG;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.BOSH_CPI_CONFIG;
    else process.env.BOSH_CPI_CONFIG = saved;
  });

  const forms: Array<[string[], string]> = [
    [['/p/cpi.json'], 'cpi /p'],
    [['-configPath=/p/cpi.json'], 'cpi -configPath=/p (warden wrapper)'],
    [['--configPath', '/p/cpi.json'], 'cpi --configPath /p'],
    [['--configPath=/p/cpi.json'], 'cpi --configPath=/p'],
    [['--config', '/p/cpi.json'], 'cpi --config /p'],
    [['--config=/p/cpi.json'], 'cpi --config=/p'],
    [['-c', '/p/cpi.json'], 'cpi -c /p'],
  ];
  for (const [argv, form] of forms) {
    test(`${form} names the config path`, () => {
      assert.equal(configPathFromArgv(argv), '/p/cpi.json');
    });
  }

  test('a path containing "=" after -configPath= is kept whole', () => {
    assert.equal(configPathFromArgv(['-configPath=/p/a=b.json']), '/p/a=b.json');
  });

  test('no arguments fall back to BOSH_CPI_CONFIG, then to nothing', () => {
    assert.equal(configPathFromArgv([]), undefined);
    process.env.BOSH_CPI_CONFIG = '/env/cpi.json';
    assert.equal(configPathFromArgv([]), '/env/cpi.json');
    assert.equal(configPathFromArgv(['/argv/cpi.json']), '/argv/cpi.json', 'argv wins over the environment');
  });

  test('--config with no value names no path', () => {
    assert.equal(configPathFromArgv(['--config']), undefined);
  });
});

describe('config file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cpi-unit-config-'));

  test('a readable JSON file is parsed', async () => {
    const path = join(dir, 'ok.json');
    writeFileSync(path, JSON.stringify(configWith({ agent: AGENT })));
    assert.deepEqual(await readConfigFile(path), configWith({ agent: AGENT }));
  });

  test('a missing file is a CpiError naming the path and the errno code', async () => {
    const failure = await cpiErrorFromAsync(() => readConfigFile(join(dir, 'missing.json')));
    assert.match(failure.message, /missing\.json/);
    assert.match(failure.message, /ENOENT/);
  });

  test('a file that is not JSON is a CpiError naming the path', async () => {
    const path = join(dir, 'bad.json');
    writeFileSync(path, 'cloud: {plugin: docker}');
    assert.match(
      (await cpiErrorFromAsync(() => readConfigFile(path))).message,
      /bad\.json' is not valid JSON/,
    );
  });
});

describe('config validation', () => {
  test('a valid config yields the plugin, the properties and the agent section with defaults', () => {
    const config = parseConfig(
      configWith({ agent: { mbus: 'https://mbus:pw@0.0.0.0:6868' }, docker: {} }),
      {},
    );
    assert.equal(config.plugin, 'docker');
    assert.deepEqual(config.agent, { mbus: 'https://mbus:pw@0.0.0.0:6868', ntp: [] });
    assert.deepEqual(config.properties.docker, {});
  });

  test('the agent blobstore is kept, with options defaulting to {}', () => {
    const config = parseConfig(configWith({ agent: { ...AGENT, blobstore: { provider: 'local' } } }), {});
    assert.deepEqual(config.agent.blobstore, { provider: 'local', options: {} });
  });

  const invalid: Array<{ name: string; raw: unknown; field: string }> = [
    { name: 'a config that is not an object', raw: [], field: 'config must be an object' },
    { name: 'a missing cloud section', raw: {}, field: 'config.cloud must be an object' },
    {
      name: 'a cloud section that is a string',
      raw: { cloud: 'docker' },
      field: 'config.cloud must be an object',
    },
    {
      name: 'a missing plugin',
      raw: { cloud: { properties: { agent: AGENT } } },
      field: 'config.cloud.plugin must be a string',
    },
    {
      name: 'an empty plugin',
      raw: configWith({ agent: AGENT }, ''),
      field: 'config.cloud.plugin must be a non-empty string',
    },
    {
      name: 'missing properties',
      raw: { cloud: { plugin: 'docker' } },
      field: 'config.cloud.properties must be an object',
    },
    {
      name: 'a missing agent section',
      raw: configWith({ docker: {} }),
      field: 'config.cloud.properties.agent must be an object',
    },
    {
      name: 'a missing agent.mbus',
      raw: configWith({ agent: { ntp: [] } }),
      field: 'config.cloud.properties.agent.mbus must be a string',
    },
    {
      name: 'an agent.mbus that is not nats:// or https://',
      raw: configWith({ agent: { mbus: 'http://10.0.0.6:6868' } }),
      field: 'config.cloud.properties.agent.mbus must be a nats:// or https:// URL',
    },
    {
      name: 'an empty agent.mbus',
      raw: configWith({ agent: { mbus: '' } }),
      field: 'config.cloud.properties.agent.mbus must be a nats:// or https:// URL',
    },
    {
      name: 'an agent.ntp that is a string',
      raw: configWith({ agent: { mbus: AGENT.mbus, ntp: 'pool.ntp.org' } }),
      field: 'config.cloud.properties.agent.ntp must be an array',
    },
    {
      name: 'an agent.blobstore without a provider',
      raw: configWith({ agent: { mbus: AGENT.mbus, blobstore: { options: {} } } }),
      field: 'config.cloud.properties.agent.blobstore.provider must be a string',
    },
  ];
  for (const c of invalid) {
    test(`${c.name} is a CpiError naming the field`, () => {
      const failure = cpiErrorFrom(() => parseConfig(c.raw, {}));
      assert.ok(failure.message.startsWith('Invalid config: '), failure.message);
      assert.ok(failure.message.includes(c.field), failure.message);
    });
  }
});

describe('docker section validation (the registry check the engine runs on every call)', () => {
  const check = (raw: unknown) => BACKENDS.docker?.checkProperties(raw);

  test('an absent docker section gets the defaults', () => {
    assert.deepEqual(check(undefined), check({}));
    assert.equal((check({}) as { host: string }).host, 'unix:///var/run/docker.sock');
  });

  const invalid: Array<{ name: string; raw: unknown; field: string }> = [
    {
      name: 'a docker section that is a string',
      raw: 'unix:///x',
      field: 'config.cloud.properties.docker must be an object',
    },
    {
      name: 'an http host without a port',
      raw: { host: 'http://docker' },
      field: 'config.cloud.properties.docker.host',
    },
    {
      name: 'a numeric host',
      raw: { host: 2375 },
      field: 'config.cloud.properties.docker.host must be a string',
    },
    {
      name: 'an api_version that is a number',
      raw: { api_version: 1.41 },
      field: 'config.cloud.properties.docker.api_version',
    },
    {
      name: 'an api_version of 2.0',
      raw: { api_version: '2.0' },
      field: 'config.cloud.properties.docker.api_version',
    },
    {
      name: 'a relative data_dir',
      raw: { data_dir: 'var/lib/x' },
      field: 'config.cloud.properties.docker.data_dir',
    },
    {
      name: 'a privileged flag that is a string',
      raw: { privileged: 'true' },
      field: 'config.cloud.properties.docker.privileged must be a boolean',
    },
    {
      name: 'cap_add that is a string',
      raw: { cap_add: 'SYS_ADMIN' },
      field: 'config.cloud.properties.docker.cap_add must be an array',
    },
    {
      name: 'a tls section without private_key',
      raw: { tls: { ca: 'ca', certificate: 'cert' } },
      field: 'config.cloud.properties.docker.tls.private_key must be a string',
    },
  ];
  for (const c of invalid) {
    test(`${c.name} is a CpiError naming the field`, () => {
      const failure = cpiErrorFrom(() => check(c.raw));
      assert.ok(failure.message.startsWith('Invalid config: '), failure.message);
      assert.ok(failure.message.includes(c.field), failure.message);
    });
  }
});

describe('multi-CPI context merging', () => {
  const file = configWith({
    agent: AGENT,
    docker: {
      host: 'unix:///var/run/docker.sock',
      tls: { ca: 'file-ca', certificate: 'c', private_key: 'k' },
    },
  });

  test('cpi-config keys in the context are deep-merged over cloud.properties', () => {
    const config = parseConfig(file, {
      director_uuid: 'u',
      request_id: 'cpi-1',
      docker: { host: 'tcp://10.0.0.9:2376', tls: { ca: 'context-ca' } },
    });
    assert.deepEqual(config.properties.docker, {
      host: 'tcp://10.0.0.9:2376',
      tls: { ca: 'context-ca', certificate: 'c', private_key: 'k' },
    });
    assert.deepEqual(config.properties.agent, AGENT);
  });

  test('director_uuid, request_id and vm are never merged into the properties', () => {
    const config = parseConfig(file, {
      director_uuid: 'u',
      request_id: 'cpi-1',
      vm: { stemcell: { api_version: 3 } },
    });
    assert.equal(config.properties.director_uuid, undefined);
    assert.equal(config.properties.request_id, undefined);
    assert.equal(config.properties.vm, undefined);
    assert.deepEqual(
      contextOverrides(
        { director_uuid: 'u', request_id: 'r', vm: {}, docker: { host: 'unix:///h' } },
        'docker',
        BACKENDS.docker?.contextOverridable,
      ),
      { docker: { host: 'unix:///h' } },
    );
  });

  test('the context may override the agent section, and the result is validated', () => {
    const config = parseConfig(file, { agent: { mbus: 'nats://other:4222' } });
    assert.equal(config.agent.mbus, 'nats://other:4222');
    assert.deepEqual(config.agent.ntp, AGENT.ntp);
    const failure = cpiErrorFrom(() => parseConfig(file, { agent: { mbus: 'ftp://x' } }));
    assert.match(failure.message, /agent\.mbus/);
  });

  test('merging is for that call only: the file config is not changed', () => {
    const before = structuredClone(file);
    parseConfig(file, { docker: { host: 'tcp://10.0.0.9:2376', tls: { ca: 'context-ca' } } });
    assert.deepEqual(file, before);
    const next = parseConfig(file, { director_uuid: 'u' });
    assert.deepEqual(next.properties, file.cloud.properties);
  });

  test('deepMerge replaces arrays and scalars and merges objects key by key', () => {
    assert.deepEqual(deepMerge({ a: { b: 1, c: [1, 2] }, d: 'x' }, { a: { c: [3] }, d: { e: 1 } }), {
      a: { b: 1, c: [3] },
      d: { e: 1 },
    });
  });

  test('a context key named __proto__ does not change what the config inherits', () => {
    const context = JSON.parse('{"__proto__": {"agent": {"mbus": "nats://injected:4222"}}}');
    const config = parseConfig(configWith({ docker: {}, agent: AGENT }), context);
    assert.equal(config.agent.mbus, AGENT.mbus);
    assert.equal(Object.getPrototypeOf(config.properties), Object.prototype);
  });
});
