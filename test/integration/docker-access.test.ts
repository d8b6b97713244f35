import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request, runCpi, writeConfig } from '../support/cpi.ts';
import { type DockerFixture, dockerFixture } from '../support/fixture.ts';

const USER = 'bosh-cpi-test';

describe('Docker backend: reaching the engine', () => {
  let fx: DockerFixture;
  before(async () => {
    fx = await dockerFixture('access');
    if (spawnSync('id', [USER]).status !== 0)
      execFileSync('useradd', ['--no-create-home', '--shell', '/bin/sh', USER]);
    execFileSync('usermod', ['-aG', 'docker', USER]);
  });
  after(async () => {
    await fx?.cleanup();
  });

  test('the CPI works as an unprivileged user in the docker group', async () => {
    assert.notEqual(execFileSync('id', ['-u', USER], { encoding: 'utf8' }).trim(), '0');
    // The config holds credentials: readable by the CPI's user only.
    chmodSync(dirname(fx.configPath), 0o711);
    chmodSync(fx.configPath, 0o600);
    execFileSync('chown', [USER, fx.configPath]);
    const asUser = (method: string, args: unknown[]) =>
      runCpi(fx.configPath, request(method, args, 2, { director_uuid: fx.director }), { user: USER });
    const created = await asUser('create_vm', ['agent-nonroot', fx.stemcell, {}, fx.manual(40), [], {}]);
    assert.equal(created.response.error, null, JSON.stringify(created.response.error));
    const [vm] = created.response.result as [string];
    const disk = await asUser('create_disk', [32, {}, vm]);
    assert.equal(disk.response.error, null, JSON.stringify(disk.response.error));
    const attached = await asUser('attach_disk', [vm, disk.response.result]);
    assert.equal(attached.response.result, `/warden-cpi-dev/${disk.response.result}`);
    assert.equal((await asUser('detach_disk', [vm, disk.response.result])).response.error, null);
    assert.equal((await asUser('delete_vm', [vm])).response.error, null);
    assert.equal((await asUser('delete_disk', [disk.response.result])).response.error, null);
  });

  test('an unreachable engine is an error naming the host, never a false has_vm', async () => {
    const config = writeConfig({
      docker: { host: 'unix:///run/no-such-docker.sock', data_dir: fx.dataDir },
      agent: { mbus: 'nats://127.0.0.1:4222' },
    });
    const run = await runCpi(config, request('has_vm', ['vm-00000000-0000-0000-0000-000000000000'], 2));
    assert.equal(run.exitCode, 0);
    assert.equal(run.response.result, null);
    assert.equal(run.response.error?.type, 'Bosh::Clouds::CloudError');
    assert.equal(run.response.error?.ok_to_retry, true);
    assert.match(run.response.error?.message ?? '', /unix:\/\/\/run\/no-such-docker\.sock.*socket not found/);
    const tcp = writeConfig({
      docker: { host: 'tcp://127.0.0.1:1', data_dir: fx.dataDir, allow_insecure_tcp: true },
      agent: { mbus: 'nats://127.0.0.1:4222' },
    });
    const refused = await runCpi(tcp, request('has_disk', ['disk-00000000-0000-0000-0000-000000000000'], 2));
    assert.match(refused.response.error?.message ?? '', /tcp:\/\/127\.0\.0\.1:1.*connection refused/);
  });

  test('the API version is negotiated, or pinned by config', async () => {
    const pinned = writeConfig({
      docker: { data_dir: fx.dataDir, api_version: '1.41' },
      agent: { mbus: 'nats://127.0.0.1:4222' },
    });
    const run = await runCpi(pinned, request('has_vm', ['vm-00000000-0000-0000-0000-000000000000'], 2));
    assert.equal(run.response.result, false);
    const bad = writeConfig({ docker: { api_version: 'latest' }, agent: { mbus: 'nats://127.0.0.1:4222' } });
    const invalid = await runCpi(bad, request('info', [], 2));
    assert.equal(invalid.response.error?.type, 'Bosh::Clouds::CpiError');
    assert.match(invalid.response.error?.message ?? '', /docker\.api_version/);
  });
});
