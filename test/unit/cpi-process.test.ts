import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { before, describe, test } from 'node:test';
import { ErrorType } from '../../src/rpc/errors.ts';
import { CPI_BIN, type CpiRun, REPO, request, runCpi, writeConfig } from '../support/cpi.ts';

/**
 * The real bin/cpi, spawned the way the Director and the CLI spawn it. Nothing listens on
 * 127.0.0.1:1, so no call here can reach a Docker engine.
 */
const UNREACHABLE_DOCKER = 'tcp://127.0.0.1:1';
const VALID_PROPERTIES = {
  agent: { mbus: 'nats://nats:nats-password@10.0.0.6:4222' },
  docker: { host: UNREACHABLE_DOCKER, allow_insecure_tcp: true },
};
const KNOWN_TYPES: readonly string[] = Object.values(ErrorType);

before(() => {
  // The tests exercise dist/cpi (and dist/cpi.cjs): build them from the sources under test.
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: REPO, stdio: 'inherit' });
});

/** What every run must satisfy: exit 0 and exactly one JSON line on stdout, in the Director's schema. */
function assertOneResponseLine(run: CpiRun): void {
  assert.equal(run.exitCode, 0, `exit code; stderr: ${run.stderr}`);
  assert.ok(run.stdout.endsWith('\n'), 'the response ends with a newline');
  assert.equal(run.stdout.split('\n').length, 2, `exactly one line on stdout: ${JSON.stringify(run.stdout)}`);
  const response = JSON.parse(run.stdout) as Record<string, unknown>;
  assert.deepEqual(Object.keys(response).sort(), ['error', 'log', 'result']);
  assert.equal(typeof response.log, 'string');
  if (response.error !== null) {
    const error = response.error as Record<string, unknown>;
    assert.deepEqual(Object.keys(error).sort(), ['message', 'ok_to_retry', 'type']);
    assert.ok(
      KNOWN_TYPES.includes(error.type as string),
      `error type ${String(error.type)} is known to the Director`,
    );
    assert.equal(typeof error.message, 'string');
    assert.equal(typeof error.ok_to_retry, 'boolean');
    assert.equal(response.result, null);
  }
}

describe('bin/cpi', () => {
  test('info prints a valid response and exits 0', async () => {
    const run = await runCpi(writeConfig(VALID_PROPERTIES), request('info', []));
    assertOneResponseLine(run);
    assert.deepEqual(run.response.result, {
      stemcell_formats: ['warden-tar', 'general-tar', 'docker-light', 'warden-light'],
      api_version: 3,
    });
    assert.equal(run.response.error, null);
  });

  test('info works with each config-path form real wrappers use', async () => {
    const path = writeConfig(VALID_PROPERTIES);
    for (const argv of [
      [`-configPath=${path}`],
      ['--configPath', path],
      ['--config', path],
      [`--config=${path}`],
    ]) {
      const run = await runCpi(path, request('info', []), { argv });
      assertOneResponseLine(run);
      assert.equal(run.response.error, null, `${argv.join(' ')}: ${run.stdout}`);
    }
  });

  test('works when called through symlinks (absolute, relative, chained, found on PATH)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cpi-links-'));
    const links = join(dir, 'links');
    mkdirSync(links);
    symlinkSync(CPI_BIN, join(links, 'absolute'));
    symlinkSync(relative(links, CPI_BIN), join(links, 'relative'));
    symlinkSync('relative', join(links, 'chained'));
    symlinkSync(join(links, 'chained'), join(dir, 'outer'));
    const input = request('info', []);
    const config = writeConfig(VALID_PROPERTIES);
    const calls: [string, string, string][] = [
      [join(links, 'absolute'), '/', 'absolute'],
      [join(links, 'relative'), '/', 'relative'],
      ['./chained', links, 'chained, relative $0'],
      [join(dir, 'outer'), '/', 'outer link to a chain'],
      ['chained', '/', 'chained, found on PATH'],
    ];
    for (const [command, cwd, what] of calls) {
      const run = spawnSync(command, [config], {
        cwd,
        input,
        encoding: 'utf8',
        env: { ...process.env, PATH: `${links}:${process.env.PATH}` },
      });
      assert.equal(run.status, 0, `${what}: ${run.stderr}`);
      const response = JSON.parse(run.stdout) as { error: unknown; result: { api_version: number } };
      assert.equal(response.error, null, what);
      assert.equal(response.result.api_version, 3, what);
    }
  });

  test('reads no .env from its working directory (a compiled Bun program would by default)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cpi-dotenv-'));
    writeFileSync(join(dir, '.env'), `BOSH_CPI_CONFIG=${writeConfig(VALID_PROPERTIES)}\n`);
    const run = spawnSync(CPI_BIN, [], { cwd: dir, input: request('info', []), encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const response = JSON.parse(run.stdout) as { error: { message: string } | null };
    assert.match(response.error?.message ?? '', /No config file given/);
  });

  test('garbage on stdin is a CpiError response, exit 0', async () => {
    const run = await runCpi(writeConfig(VALID_PROPERTIES), 'GET / HTTP/1.1\r\n\r\n');
    assertOneResponseLine(run);
    assert.equal(run.response.error?.type, 'Bosh::Clouds::CpiError');
  });

  test('empty stdin and non-UTF-8 bytes are CpiError responses, exit 0', async () => {
    for (const input of [Buffer.alloc(0), Buffer.from([0x7b, 0xff, 0xfe, 0x7d])]) {
      const run = await runCpi(writeConfig(VALID_PROPERTIES), input);
      assertOneResponseLine(run);
      assert.equal(run.response.error?.type, 'Bosh::Clouds::CpiError');
    }
  });

  test('an invalid config is a CpiError response naming the field, exit 0', async () => {
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ docker: {} }, 'docker', /config\.cloud\.properties\.agent/],
      [{ agent: { mbus: 'ftp://x' } }, 'docker', /config\.cloud\.properties\.agent\.mbus/],
      [VALID_PROPERTIES, 'vsphere', /config\.cloud\.plugin must be one of "docker"/],
      [
        { ...VALID_PROPERTIES, docker: { host: 'docker.example.com' } },
        'docker',
        /config\.cloud\.properties\.docker\.host/,
      ],
    ];
    for (const [properties, plugin, field] of cases) {
      const run = await runCpi(writeConfig(properties, plugin), request('info', []));
      assertOneResponseLine(run);
      assert.equal(run.response.error?.type, 'Bosh::Clouds::CpiError');
      assert.match(run.response.error?.message ?? '', field);
    }
  });

  test('a config file that does not parse: the error quotes nothing of it (a password may be next to the mistake)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cpi-bad-config-'));
    const path = join(dir, 'cpi.json');
    writeFileSync(path, '{"cloud": {"properties": {"agent": {"mbus": natsPassword1234567}}}}');
    const run = await runCpi(path, request('info', []));
    assertOneResponseLine(run);
    assert.equal(run.response.error?.type, 'Bosh::Clouds::CpiError');
    assert.match(run.response.error?.message ?? '', /is not valid JSON/);
    assert.doesNotMatch(run.stdout + run.stderr, /natsPassword|assword1234/);
  });

  test('a missing config file is a CpiError response, exit 0', async () => {
    const run = await runCpi('/nonexistent/cpi.json', request('info', []));
    assertOneResponseLine(run);
    assert.equal(run.response.error?.type, 'Bosh::Clouds::CpiError');
  });

  test('an unknown method is NotImplemented, exit 0', async () => {
    const run = await runCpi(writeConfig(VALID_PROPERTIES), request('ping', [], 2));
    assertOneResponseLine(run);
    assert.equal(run.response.error?.type, 'Bosh::Clouds::NotImplemented');
    assert.match(run.response.error?.message ?? '', /^Method is not known, got/);
  });

  test('no secret from the config, the context or the arguments appears on stdout or stderr', async () => {
    const secrets = {
      dockerUrlPassword: 'Docker-Url-Pass-1',
      mbusPassword: 'Mbus-Pass-2',
      blobstorePassword: 'Blobstore-Pass-3',
      contextToken: 'Context-Token-4',
      envPassword: '$6$salt$Env-Pass-5',
    };
    const configPath = writeConfig({
      agent: {
        mbus: `https://mbus:${secrets.mbusPassword}@0.0.0.0:6868`,
        blobstore: { provider: 'dav', options: { user: 'agent', password: secrets.blobstorePassword } },
      },
      docker: { host: `tcp://admin:${secrets.dockerUrlPassword}@127.0.0.1:1`, allow_insecure_tcp: true },
    });
    const args = [
      'agent-1',
      'stemcell-1',
      {},
      { n: { type: 'dynamic', cloud_properties: {} } },
      [],
      {
        bosh: { password: secrets.envPassword },
      },
    ];
    const context = {
      vm: { stemcell: { api_version: 3 } },
      agent: { blobstore: { provider: 'dav', options: { token: secrets.contextToken } } },
    };
    const runs = [
      await runCpi(configPath, request('create_vm', args, 2, context)),
      await runCpi(configPath, request('has_vm', ['vm-1'], 2, context)),
    ];
    // The Docker URL, password included, is in the create_vm error: redaction must have happened.
    assert.match(runs[0]?.response.error?.message ?? '', /tcp:\/\/admin:<redacted>@127\.0\.0\.1:1/);
    for (const run of runs) {
      assertOneResponseLine(run);
      assert.ok(run.stderr.length > 0);
      for (const [name, secret] of Object.entries(secrets)) {
        assert.ok(!run.stdout.includes(secret), `${name} on stdout: ${run.stdout}`);
        assert.ok(!run.stderr.includes(secret), `${name} on stderr: ${run.stderr}`);
      }
    }
  });
});
