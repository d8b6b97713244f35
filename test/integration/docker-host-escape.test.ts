import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cpi, writeConfig } from '../support/cpi.ts';
import { containerOf, docker } from '../support/docker.ts';
import { type DockerFixture, dockerFixture } from '../support/fixture.ts';
import { buildStemcell } from '../support/stemcell.ts';

/** Everything of this director on the engine, and every path under its data_dir. */
function state(fx: DockerFixture): string {
  const label = `label=io.bosh.cpi.director=${fx.director}`;
  const listing = existsSync(fx.dataDir)
    ? execFileSync('find', [fx.dataDir, '-printf', '%p %m\n'], { encoding: 'utf8' }).split('\n').sort()
    : [];
  return JSON.stringify({
    containers: docker('ps', '-aq', '--filter', label),
    volumes: docker('volume', 'ls', '-q', '--filter', label),
    networks: docker('network', 'ls', '-q'),
    dataDir: listing,
  });
}

describe('Docker backend: manifests stay off the host unless the operator allows it', () => {
  let fx: DockerFixture;
  before(async () => {
    fx = await dockerFixture('escape');
  });
  after(async () => {
    await fx?.cleanup();
  });

  const refusals: Array<[string, Record<string, unknown>, Record<string, unknown> | undefined, RegExp[]]> = [
    ['bind of /', { binds: ['/:/host:rw'] }, undefined, [/host path '\/' overlaps the CPI's data directory/]],
    [
      'bind of the docker socket',
      { binds: ['/var/run/docker.sock:/var/run/docker.sock'] },
      undefined,
      [/cloud_properties\.binds/, /docker\.allowed_bind_sources/],
    ],
    ['bind of data_dir', { binds: ['DATA_DIR:/disks'] }, undefined, [/overlaps the CPI's data directory/]],
    [
      'privileged: true',
      { privileged: true },
      undefined,
      [/cloud_properties\.privileged/, /docker\.allow_privileged_vms/],
    ],
    ['cap_add', { cap_add: ['SYS_MODULE'] }, undefined, [/SYS_MODULE/, /docker\.allowed_cap_add/]],
    [
      'the host network',
      {},
      { type: 'dynamic', cloud_properties: { name: 'host' } },
      [/cloud_properties\.name 'host'/, /docker\.allowed_networks/],
    ],
    ['ram 1e303', { ram: 1e303 }, undefined, [/cloud_properties\.ram must be a whole number of MiB/]],
    ['cpu 1e-12', { cpu: 1e-12 }, undefined, [/cloud_properties\.cpu must be a number of CPUs from 0\.01/]],
    [
      'ephemeral_disk 2^43 MiB',
      { ephemeral_disk: { size: 2 ** 43 } },
      undefined,
      [/cloud_properties\.ephemeral_disk\.size/],
    ],
  ];
  for (const [name, cloudProperties, network, messages] of refusals) {
    test(`${name} is refused (VMCreationFailed, not retryable) and changes nothing`, async () => {
      const props = JSON.parse(JSON.stringify(cloudProperties).replace('DATA_DIR', fx.dataDir));
      const networks = network ? { default: network } : fx.manual(30);
      const before = state(fx);
      const run = await fx.cpi.run('create_vm', ['agent-escape', fx.stemcell, props, networks, [], {}]);
      assert.equal(run.response.error?.type, 'Bosh::Clouds::VMCreationFailed', JSON.stringify(run.response));
      assert.equal(run.response.error?.ok_to_retry, false);
      for (const m of messages) assert.match(run.response.error?.message ?? '', m);
      assert.equal(state(fx), before);
    });
  }

  test('a stemcell image that is a symbolic link or a FIFO is refused and imports nothing', {
    timeout: 60_000,
  }, async () => {
    const work = mkdtempSync(join(tmpdir(), 'cpi-escape-'));
    try {
      const { imagePath } = buildStemcell(join(work, 'stemcell'));
      const link = join(work, 'image');
      symlinkSync(imagePath, link);
      const fifo = join(work, 'fifo');
      execFileSync('mkfifo', [fifo]);
      const images = () => docker('images', '-q', '--filter', `label=io.bosh.cpi.director=${fx.director}`);
      const before = images();
      for (const [path, kind] of [
        [link, 'a symbolic link'],
        [fifo, 'a FIFO'],
      ] as const) {
        const run = await fx.cpi.run('create_stemcell', [path, {}]);
        assert.equal(run.response.error?.type, 'Bosh::Clouds::CloudError', JSON.stringify(run.response));
        assert.match(run.response.error?.message ?? '', new RegExp(`is ${kind}, not a regular file`));
      }
      assert.equal(images(), before);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  test('a plain TCP engine is refused without the opt-in, and warned about on every call with it', async () => {
    const base = { data_dir: fx.dataDir, host: 'tcp://127.0.0.1:1' };
    const agent = { mbus: 'nats://127.0.0.1:4222' };
    const refused = await new Cpi(writeConfig({ docker: base, agent }), 2).run('has_vm', ['vm-x']);
    assert.equal(refused.response.error?.type, 'Bosh::Clouds::CpiError');
    assert.match(refused.response.error?.message ?? '', /without config\.cloud\.properties\.docker\.tls/);
    assert.match(refused.response.error?.message ?? '', /docker\.allow_insecure_tcp: true/);
    const optIn = new Cpi(writeConfig({ docker: { ...base, allow_insecure_tcp: true }, agent }), 2);
    for (let i = 0; i < 2; i++) {
      const run = await optIn.run('has_disk', ['disk-00000000-0000-0000-0000-000000000000']);
      assert.match(run.response.log, /WARN.*tcp:\/\/127\.0\.0\.1:1 is reached without TLS/);
      assert.match(run.response.error?.message ?? '', /connection refused/);
    }
  });

  // A privileged container cannot start on this test host (runc: "unable to apply caps"), so
  // allow_privileged_vms is covered by the unit tests (test/unit/docker-vm-policy.test.ts).
  test('what the operator allows works: a listed bind source, cap_add, the host network without NET_ADMIN', async () => {
    const allowing = new Cpi(
      writeConfig({
        docker: {
          data_dir: fx.dataDir,
          allowed_bind_sources: ['/etc/hostname'],
          allow_privileged_vms: true,
          allowed_cap_add: ['SYS_TIME'],
          allowed_networks: ['host'],
        },
        agent: { mbus: 'nats://127.0.0.1:4222' },
      }),
      2,
    );
    allowing.context = { director_uuid: fx.director };
    const [vm] = await allowing.call<[string]>('create_vm', [
      'agent-allowed',
      fx.stemcell,
      { binds: ['/etc/hostname:/var/vcap/host-name:ro'], cap_add: ['SYS_TIME'] },
      { default: { type: 'dynamic', cloud_properties: { name: 'host' } } },
      [],
      {},
    ]);
    const c = containerOf(vm);
    assert.equal(docker('inspect', c, '--format', '{{.HostConfig.NetworkMode}}'), 'host');
    const caps = JSON.parse(docker('inspect', c, '--format', '{{json .HostConfig.CapAdd}}')) as string[];
    assert.ok(
      caps.some((cap) => /SYS_TIME/.test(cap)),
      caps.join(),
    );
    assert.ok(!caps.some((cap) => /NET_ADMIN/.test(cap)), `no NET_ADMIN in the host netns: ${caps.join()}`);
    assert.match(
      docker('inspect', c, '--format', '{{json .HostConfig.Binds}}'),
      /\/etc\/hostname:\/var\/vcap\/host-name:ro/,
    );
    await allowing.call('delete_vm', [vm]);
  });
});
