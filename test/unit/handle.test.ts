import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { BackendContext } from '../../src/cpi/backend.ts';
import { handleCall } from '../../src/handle.ts';
import { Redactor } from '../../src/log/redact.ts';
import { cpiError } from '../../src/rpc/errors.ts';
import { request, writeConfig } from '../support/cpi.ts';
import {
  FAKE_STEMCELL_FORMATS,
  type FakeBackendOptions,
  type FakeDescriptor,
  fakeBackend,
  fakeDescriptor,
} from '../support/fake-backend.ts';

const AGENT = { mbus: 'nats://nats:NatsPassw0rd@10.0.0.6:4222', ntp: ['0.pool.ntp.org'] };
const PROPERTIES = { agent: AGENT, fake: { zone: 'z1', region: 'r1', limits: { vms: 5, disks: 9 } } };

interface Run {
  response: Awaited<ReturnType<typeof handleCall>>;
  stderr: string[];
  descriptor: FakeDescriptor;
  backend: ReturnType<typeof fakeBackend>;
}

async function call(
  input: string | Buffer,
  opts: {
    argv?: string[];
    properties?: Record<string, unknown>;
    backend?: FakeBackendOptions;
    onCreate?: (context: BackendContext) => void;
    checkProperties?: (raw: unknown) => unknown;
  } = {},
): Promise<Run> {
  const backend = fakeBackend(opts.backend);
  const descriptor = fakeDescriptor(backend, {
    onCreate: opts.onCreate,
    checkProperties: opts.checkProperties,
  });
  const stderr: string[] = [];
  const argv = opts.argv ?? [writeConfig(opts.properties ?? PROPERTIES, 'fake')];
  const response = await handleCall({
    readInput: async () => (Buffer.isBuffer(input) ? input : Buffer.from(input)),
    argv,
    redactor: new Redactor(),
    backends: { fake: descriptor },
    stderr: (line) => stderr.push(line),
  });
  return { response, stderr, descriptor, backend };
}

/** The response as the Director's schema demands: all three keys, and all three error keys. */
function assertWellFormed(response: unknown): void {
  const r = JSON.parse(JSON.stringify(response)) as Record<string, unknown>;
  assert.deepEqual(Object.keys(r).sort(), ['error', 'log', 'result']);
  assert.equal(typeof r.log, 'string');
  if (r.error !== null) {
    const e = r.error as Record<string, unknown>;
    assert.deepEqual(Object.keys(e).sort(), ['message', 'ok_to_retry', 'type']);
    assert.equal(typeof e.type, 'string');
    assert.equal(typeof e.message, 'string');
    assert.equal(typeof e.ok_to_retry, 'boolean');
    assert.equal(r.result, null);
  }
}

describe('one call through the engine', () => {
  test('info answers from the descriptor without loading the backend', async () => {
    const { response, descriptor } = await call(request('info', []));
    assertWellFormed(response);
    assert.deepEqual(response.result, { stemcell_formats: [...FAKE_STEMCELL_FORMATS], api_version: 3 });
    assert.equal(response.error, null);
    assert.equal(descriptor.loads, 0);
    assert.deepEqual(
      descriptor.checkedProperties,
      [PROPERTIES.fake],
      'the backend section is still validated',
    );
  });

  test('a method that needs the backend loads it once and closes it afterwards', async () => {
    const { response, descriptor, backend } = await call(request('has_vm', ['vm-1'], 2));
    assert.equal(response.result, true);
    assert.equal(descriptor.loads, 1);
    assert.equal(backend.closed, 1);
  });

  test('the backend is closed after it failed, too', async () => {
    const { backend, response } = await call(request('delete_vm', ['vm-1'], 2), {
      backend: { overrides: { deleteVm: async () => Promise.reject(new Error('boom')) } },
    });
    assert.equal(response.error?.type, 'Bosh::Clouds::CloudError');
    assert.equal(backend.closed, 1);
  });

  test('create_vm through the engine returns [cid, networks] for api_version 2 and the cid for 1', async () => {
    const args = [
      'agent-1',
      'stemcell-1',
      {},
      { n: { type: 'manual', ip: '10.0.0.5', cloud_properties: {} } },
    ];
    assert.equal((await call(request('create_vm', args))).response.result, 'vm-fake-1');
    const v2 = await call(request('create_vm', args, 2));
    assert.deepEqual(v2.response.result, [
      'vm-fake-1',
      { n: { type: 'manual', ip: '10.0.0.5', cloud_properties: {} } },
    ]);
  });

  test('a method without a result answers result null, not a missing key', async () => {
    const { response } = await call(request('delete_disk', ['disk-1'], 2));
    assertWellFormed(response);
    assert.equal(response.result, null);
    assert.ok(Object.hasOwn(JSON.parse(JSON.stringify(response)), 'result'));
  });

  test('the backend gets its own section, the agent config, the director uuid and the stemcell api_version', async () => {
    const { descriptor } = await call(
      request('has_vm', ['vm-1'], 2, { director_uuid: 'dir-uuid', vm: { stemcell: { api_version: 3 } } }),
    );
    const context = descriptor.contexts[0];
    assert.deepEqual(context?.properties, PROPERTIES.fake);
    assert.deepEqual(context?.agent, AGENT);
    assert.equal(context?.directorUuid, 'dir-uuid');
    assert.equal(context?.stemcellApiVersion, 3);
  });

  test('log lines carry the request_id the Director sent', async () => {
    const { response, stderr } = await call(request('has_vm', ['vm-1'], 2, { request_id: 'cpi-777' }));
    assert.ok(stderr.length > 0);
    for (const line of stderr) assert.match(line, /\[req_id cpi-777\] \[has_vm\]/);
    assert.equal(response.log, stderr.map((l) => `${l}\n`).join(''));
  });
});

describe('multi-CPI context', () => {
  test('cpi-config keys in the context are deep-merged over cloud.properties for the backend', async () => {
    const context = { director_uuid: 'u', request_id: 'cpi-1', fake: { zone: 'z2', limits: { vms: 50 } } };
    const { descriptor } = await call(request('has_vm', ['vm-1'], 2, context));
    assert.deepEqual(descriptor.contexts[0]?.properties, {
      zone: 'z2',
      region: 'r1',
      limits: { vms: 50, disks: 9 },
    });
  });

  test('the merge lasts for that call only', async () => {
    const configPath = writeConfig(PROPERTIES, 'fake');
    await call(request('has_vm', ['vm-1'], 2, { fake: { zone: 'z2' } }), { argv: [configPath] });
    const { descriptor } = await call(request('has_vm', ['vm-1'], 2), { argv: [configPath] });
    assert.deepEqual(descriptor.contexts[0]?.properties, PROPERTIES.fake);
  });

  test('an agent section in the context overrides the file for that call', async () => {
    const { descriptor } = await call(
      request('has_vm', ['vm-1'], 2, { agent: { mbus: 'nats://10.0.0.9:4222' } }),
    );
    assert.deepEqual(descriptor.contexts[0]?.agent, { mbus: 'nats://10.0.0.9:4222', ntp: AGENT.ntp });
  });

  test('the merged section is what the backend check validates', async () => {
    const { response } = await call(request('info', [], 1, { fake: { zone: 7 } }), {
      checkProperties: (raw) => {
        if (typeof (raw as { zone: unknown }).zone !== 'string')
          throw cpiError('Invalid config: config.cloud.properties.fake.zone must be a string');
        return raw;
      },
    });
    assert.equal(response.error?.type, 'Bosh::Clouds::CpiError');
    assert.match(response.error?.message ?? '', /fake\.zone/);
  });
});

describe('config errors through the engine', () => {
  test('no config path is a CpiError', async () => {
    const { response } = await call(request('info', []), { argv: [] });
    assertWellFormed(response);
    assert.equal(response.error?.type, 'Bosh::Clouds::CpiError');
    assert.match(response.error?.message ?? '', /No config file/);
  });

  test('an unknown plugin is a CpiError naming config.cloud.plugin and the known plugins', async () => {
    const { response } = await call(request('info', []), { argv: [writeConfig(PROPERTIES, 'openstack')] });
    assert.equal(response.error?.type, 'Bosh::Clouds::CpiError');
    assert.match(
      response.error?.message ?? '',
      /config\.cloud\.plugin must be one of "fake", got "openstack"/,
    );
  });

  test('a bad agent.mbus is a CpiError naming the field, with the URL password redacted', async () => {
    const { response, stderr } = await call(request('info', []), {
      properties: { agent: { mbus: 'http://mbus:Mbus-Pass-1@0.0.0.0:6868' } },
    });
    assert.equal(response.error?.type, 'Bosh::Clouds::CpiError');
    assert.match(
      response.error?.message ?? '',
      /config\.cloud\.properties\.agent\.mbus must be a nats:\/\/ or https:\/\/ URL/,
    );
    assert.ok(!JSON.stringify(response).includes('Mbus-Pass-1'));
    assert.ok(!stderr.join('\n').includes('Mbus-Pass-1'));
  });

  test('a config file that is not JSON does not echo its contents, secrets included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cpi-unit-handle-'));
    const path = join(dir, 'cpi.json');
    // A hand-edited file with an unquoted value: V8's parse error quotes the text around the error.
    writeFileSync(path, '{"cloud": {"plugin": "fake", "properties": {"password": Hunter2Hunter2}}}');
    const { response, stderr } = await call(request('info', []), { argv: [path] });
    assert.equal(response.error?.type, 'Bosh::Clouds::CpiError');
    assert.match(response.error?.message ?? '', /is not valid JSON/);
    for (const text of [JSON.stringify(response), stderr.join('\n')]) assert.ok(!/Hunter2/.test(text), text);
  });
});

describe('error responses', () => {
  test('garbage input is a well-formed CpiError response', async () => {
    const { response } = await call('this is not json');
    assertWellFormed(response);
    assert.equal(response.error?.type, 'Bosh::Clouds::CpiError');
  });

  test('an unknown method is NotImplemented and still well-formed', async () => {
    const { response } = await call(request('frobnicate', [], 2));
    assertWellFormed(response);
    assert.equal(response.error?.type, 'Bosh::Clouds::NotImplemented');
    assert.ok(response.error?.message.startsWith('Method is not known, got'));
  });

  test('a plain Error from the backend is a CloudError with no stack trace in the response', async () => {
    const { response, stderr } = await call(request('delete_vm', ['vm-1'], 2), {
      backend: {
        overrides: {
          deleteVm: async () => {
            throw new RangeError('index out of range');
          },
        },
      },
    });
    assertWellFormed(response);
    assert.deepEqual(response.error, {
      type: 'Bosh::Clouds::CloudError',
      message: 'Unexpected error: index out of range',
      ok_to_retry: false,
    });
    const text = JSON.stringify(response);
    assert.doesNotMatch(
      text,
      /\bat .*\(.*:\d+:\d+\)|fake-backend\.ts:\d+/,
      'no stack frames in result, error or log',
    );
    assert.match(
      stderr.join('\n'),
      /fake-backend\.ts:\d+/,
      'the stack trace still reaches stderr for debugging',
    );
  });
});

describe('secrets never leave the process', () => {
  const PEM =
    '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIFakeKeyMaterialThatMustNotLeak0123456789\n-----END EC PRIVATE KEY-----';
  const SECRETS = {
    configMbusPassword: 'NatsPassw0rd',
    configPassword: 'Config-Password-1',
    configPem: 'FakeKeyMaterialThatMustNotLeak',
    contextToken: 'Context-Token-2',
    envPassword: '$6$crypted$Env-Password-3',
    escaped: 'with"quote\\and-backslash',
  };
  const properties = {
    agent: AGENT,
    fake: {
      zone: 'z1',
      password: SECRETS.configPassword,
      tls: { private_key: PEM },
      secret: SECRETS.escaped,
    },
  };

  test('no secret from the config, the context or the arguments appears on stderr, in log or in the error', async () => {
    const createVmArgs = [
      'agent-1',
      'stemcell-1',
      {},
      { n: { type: 'dynamic', cloud_properties: {} } },
      [],
      { bosh: { password: SECRETS.envPassword } },
    ];
    const { response, stderr } = await call(
      request('create_vm', createVmArgs, 2, { fake: { token: SECRETS.contextToken } }),
      {
        properties,
        onCreate: (context) => {
          // A careless backend: logs its whole config and the settings it would write.
          context.logger.debug(`properties ${JSON.stringify(context.properties)}`);
          context.logger.debug(`agent ${JSON.stringify(context.agent)}`);
          context.logger.info(`raw ${SECRETS.escaped} ${PEM}`);
        },
        backend: {
          overrides: {
            createVm: async (input: { env: unknown }) => {
              throw new Error(
                `settings ${JSON.stringify(input.env)} rejected; token ${SECRETS.contextToken}`,
              );
            },
          },
        },
      },
    );
    assert.equal(response.error?.type, 'Bosh::Clouds::CloudError');
    const outputs = { stderr: stderr.join('\n'), log: response.log, error: JSON.stringify(response.error) };
    assert.match(outputs.stderr, /properties /, 'the careless lines were written');
    for (const [where, text] of Object.entries(outputs)) {
      for (const [name, secret] of Object.entries(SECRETS)) {
        assert.ok(!text.includes(secret), `${name} leaked into ${where}: ${text}`);
        const escaped = JSON.stringify(secret).slice(1, -1);
        assert.ok(!text.includes(escaped), `${name} (JSON-escaped) leaked into ${where}: ${text}`);
      }
    }
  });
});
