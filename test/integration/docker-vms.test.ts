import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Cpi, writeConfig } from '../support/cpi.ts';
import { containerOf, docker, dockerTry, freeSubnet, inVm } from '../support/docker.ts';
import { type DockerFixture, dockerFixture } from '../support/fixture.ts';

const SETTINGS = '/var/vcap/bosh/warden-cpi-agent-env.json';

async function waitFor(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('Docker backend: VMs', () => {
  let fx: DockerFixture;
  before(async () => {
    fx = await dockerFixture('vms', { allowed_bind_sources: ['/etc/hostname'] });
  });
  after(async () => {
    await fx?.cleanup();
  });

  test('create_stemcell imports the image with labels, including v3 tags', async () => {
    const { imagePath } = await import('../support/stemcell.ts').then((m) =>
      m.buildStemcell(`/tmp/cpi-tags-${fx.director}`),
    );
    const cid = await fx.cpi.call<string>(
      'create_stemcell',
      [imagePath, {}, { tags: { team: 'bosh "core"' } }],
      3,
    );
    const labels = JSON.parse(
      docker('image', 'inspect', `bosh-stemcell:${cid}`, '--format', '{{json .Config.Labels}}'),
    );
    assert.equal(labels['io.bosh.cpi.stemcell'], cid);
    assert.equal(labels['io.bosh.cpi.tag.team'], 'bosh "core"');
    await fx.cpi.call('delete_stemcell', [cid]);
    assert.notEqual(dockerTry('image', 'inspect', `bosh-stemcell:${cid}`).code, 0);
    await fx.cpi.call('delete_stemcell', [cid]);
  });

  test('a light stemcell refers to an image already on the engine, and fails clearly when it is absent', async () => {
    const missing = await fx.cpi.run('create_stemcell', [
      '/nonexistent/image',
      { image_reference: 'no-such-image:1' },
    ]);
    assert.equal(missing.response.error?.type, 'Bosh::Clouds::CloudError');
    assert.match(missing.response.error?.message ?? '', /no-such-image:1.*not on Docker host/);
    const light = await fx.cpi.call<string>('create_stemcell', [
      '/nonexistent/image',
      { image_reference: `bosh-stemcell:${fx.stemcell}` },
    ]);
    assert.match(light, /^stemcell-/);
    await fx.cpi.call('delete_stemcell', [light]);
    assert.equal(
      dockerTry('image', 'inspect', `bosh-stemcell:${fx.stemcell}`).code,
      0,
      'the referenced image stays',
    );
  });

  test('create_vm writes the agent settings (mode 0600) before init starts, with static IP and default route', async () => {
    const env = {
      bosh: { password: 'crypted-secret', mbus: { cert: { private_key: 'PRIVATE' } } },
      persistent_disk_fs: 'ext4',
    };
    const [vm, networks] = await fx.cpi.call<[string, Record<string, { ip: string }>]>('create_vm', [
      'agent-settings',
      fx.stemcell,
      { ram: 128 },
      fx.manual(20),
      null,
      env,
    ]);
    assert.equal(networks.default?.ip, fx.subnet.ip(20));
    const c = containerOf(vm);
    await waitFor(
      () => dockerTry('exec', c, 'cat', '/var/vcap/bosh/agent-ready').code === 0,
      'the test agent',
    );
    // The stand-in agent records each start; it found its settings on its first start.
    assert.equal(inVm(c, 'wc -l < /var/vcap/bosh/boots').trim(), '1');
    assert.equal(inVm(c, `stat -c %a ${SETTINGS}`), '600');
    const settings = JSON.parse(inVm(c, `cat ${SETTINGS}`));
    assert.equal(settings.agent_id, 'agent-settings');
    assert.deepEqual(settings.vm, { name: vm, id: vm });
    assert.equal(settings.mbus, 'nats://nats:nats-secret-password@127.0.0.1:4222');
    assert.deepEqual(settings.ntp, ['ntp.example.invalid']);
    assert.equal(typeof settings.disks.system, 'string');
    assert.deepEqual(settings.disks.persistent, {});
    assert.deepEqual(settings.env, env);
    assert.equal(settings.networks.default.preconfigured, true);
    assert.equal(settings.networks.default.ip, fx.subnet.ip(20));
    // The engine's bind mounts are gone, so the agent can replace these files; their content stays.
    for (const f of ['/etc/resolv.conf', '/etc/hosts', '/etc/hostname'])
      assert.equal(
        dockerTry('exec', c, 'grep', '-q', ` ${f} `, '/proc/self/mountinfo').code,
        1,
        `${f} unmounted`,
      );
    assert.match(inVm(c, 'cat /etc/resolv.conf'), /nameserver/);
    assert.equal(inVm(c, 'cat /etc/hostname').trim(), 'agent-settings');
    assert.equal(inVm(c, 'ln -sf /run/resolvconf/resolv.conf /etc/resolv.conf && echo ok').trim(), 'ok');
    assert.equal(inVm(c, 'test -d /var/vcap/data/sys && test -d /var/vcap/store && echo ok').trim(), 'ok');
    assert.match(inVm(c, 'ip -4 addr'), new RegExp(`inet ${fx.subnet.ip(20).replace(/\./g, '\\.')}/24`));
    assert.match(inVm(c, 'ip route'), new RegExp(`default via ${fx.subnet.gateway.replace(/\./g, '\\.')}`));
    assert.equal(docker('inspect', c, '--format', '{{.HostConfig.Memory}}'), String(128 * 1048576));
    assert.equal(docker('inspect', c, '--format', '{{.HostConfig.Privileged}}'), 'false');
    assert.equal(docker('inspect', c, '--format', '{{.HostConfig.RestartPolicy.Name}}'), 'unless-stopped');
    const labels = docker('inspect', c, '--format', '{{json .Config.Labels}}');
    assert.doesNotMatch(labels, /crypted-secret|PRIVATE|nats-secret-password/);
    // The settings reached the VM through data_dir/settings/<vm> (staged, copied in by the start
    // command): nothing of them is in the container's configuration, and the staged copies are gone.
    const config = docker('inspect', c, '--format', '{{json .Config}}');
    assert.doesNotMatch(config, /crypted-secret|PRIVATE|nats-secret-password/);
    assert.deepEqual(
      readdirSync(`${fx.dataDir}/settings/${vm}`).filter((f) => f !== '.installing'),
      [],
    );
    await fx.cpi.call('delete_vm', [vm]);
    assert.equal(existsSync(`${fx.dataDir}/settings/${vm}`), false);
  });

  test("with the operator's start_command the settings are written into the container before it starts", async () => {
    const configPath = writeConfig({
      docker: { data_dir: fx.dataDir, start_command: ['/bin/sh', '-c', 'exec sleep 600'] },
      agent: { mbus: 'nats://nats:nats-secret-password@127.0.0.1:4222', ntp: [] },
    });
    const cpi = new Cpi(configPath, 2);
    cpi.context = { director_uuid: fx.director };
    try {
      const [vm] = await cpi.call<[string]>('create_vm', [
        'agent-own-start',
        fx.stemcell,
        {},
        fx.manual(28),
        [],
        {},
      ]);
      const c = containerOf(vm);
      assert.equal(JSON.parse(inVm(c, `cat ${SETTINGS}`)).agent_id, 'agent-own-start');
      assert.equal(inVm(c, `stat -c %a ${SETTINGS}`), '600');
      assert.doesNotMatch(
        docker('inspect', c, '--format', '{{json .HostConfig.Binds}}'),
        /warden-cpi-settings/,
      );
      assert.equal(existsSync(`${fx.dataDir}/settings/${vm}`), false);
      await cpi.call('delete_vm', [vm]);
    } finally {
      rmSync(configPath, { force: true });
    }
  });

  test('v1 callers get a bare VM CID', async () => {
    const vm = await fx.cpi.call<string>(
      'create_vm',
      ['agent-v1', fx.stemcell, {}, fx.manual(21), [], {}],
      1,
    );
    assert.match(vm, /^vm-[0-9a-f-]{36}$/);
    await fx.cpi.call('delete_vm', [vm]);
  });

  test('a dynamic network gets its address from the engine, reported in the result; the settings leave it to the agent', async () => {
    const [vm, networks] = await fx.cpi.call<[string, Record<string, { ip?: string; netmask?: string }>]>(
      'create_vm',
      [
        'agent-dynamic',
        fx.stemcell,
        {},
        { dyn: { type: 'dynamic', dns: [], default: ['dns', 'gateway'], cloud_properties: {} } },
        [],
        {},
      ],
    );
    const ip = networks.dyn?.ip;
    assert.ok(ip && /^\d+\.\d+\.\d+\.\d+$/.test(ip), `dynamic ip reported: ${JSON.stringify(networks)}`);
    const c = containerOf(vm);
    assert.equal(docker('inspect', c, '--format', '{{.NetworkSettings.Networks.bridge.IPAddress}}'), ip);
    // bosh-agent resolves a dynamic network without an address (nor prefix) from its default route.
    const settings = JSON.parse(inVm(c, `cat ${SETTINGS}`));
    assert.equal(settings.networks.dyn.type, 'dynamic');
    assert.equal(settings.networks.dyn.ip, undefined);
    assert.equal(settings.networks.dyn.prefix, undefined);
    await fx.cpi.call('delete_vm', [vm]);
  });

  test('ephemeral_disk.size gives a size-bounded /var/vcap/data; ports are published only when asked', async () => {
    const [vm] = await fx.cpi.call<[string]>('create_vm', [
      'agent-eph',
      fx.stemcell,
      {
        ephemeral_disk: { size: 64 },
        ports: ['127.0.0.1:0:6868/tcp'],
        binds: ['/etc/hostname:/var/vcap/host-name:ro'],
      },
      fx.manual(22),
      [],
      {},
    ]);
    const c = containerOf(vm);
    const sizeKiB = Number(inVm(c, "df -k /var/vcap/data | tail -1 | awk '{print $2}'"));
    assert.ok(sizeKiB > 40 * 1024 && sizeKiB <= 64 * 1024, `ephemeral size ${sizeKiB} KiB`);
    assert.match(docker('port', c), /6868\/tcp -> 127\.0\.0\.1:\d+/);
    assert.equal(inVm(c, 'cat /var/vcap/host-name'), readFileSync('/etc/hostname', 'utf8').trim());
    await fx.cpi.call('delete_vm', [vm]);
    assert.equal(dockerTry('inspect', c).code === 0, false);
    const leftovers = docker('volume', 'ls', '-q', '--filter', `label=io.bosh.cpi.vm=${vm}`);
    assert.equal(leftovers, '');
  });

  test('has_vm, set_vm_metadata, reboot_vm and idempotent delete_vm', async () => {
    const [vm] = await fx.cpi.call<[string]>('create_vm', [
      'agent-meta',
      fx.stemcell,
      {},
      fx.manual(23),
      [],
      {},
    ]);
    assert.equal(await fx.cpi.call('has_vm', [vm]), true);
    await fx.cpi.call('set_vm_metadata', [
      vm,
      { deployment: 'dep', instance_group: 'web', index: '3', director: 'd' },
    ]);
    const c = containerOf(vm);
    assert.equal(docker('inspect', c, '--format', '{{.Name}}'), `/dep_web_3_${vm}`);
    // Only the name changes: no file is written into the VM (an archive request costs ~50-100 ms).
    assert.equal(
      inVm(c, 'test -e /var/vcap/bosh/cpi-metadata.json && echo present || echo absent'),
      'absent',
    );
    // The renamed container is still found by its CID, and renamed again by later metadata.
    assert.equal(await fx.cpi.call('has_vm', [vm]), true);
    await fx.cpi.call('set_vm_metadata', [vm, { deployment: 'dep', instance_group: 'api', index: '0' }]);
    assert.equal(docker('inspect', c, '--format', '{{.Name}}'), `/dep_api_0_${vm}`);
    await fx.cpi.call('set_vm_metadata', [vm, { deployment: 'dep', instance_group: 'api', index: '0' }]);
    assert.equal(docker('inspect', c, '--format', '{{.Name}}'), `/dep_api_0_${vm}`);
    const missing = await fx.cpi.run('set_vm_metadata', [
      'vm-00000000-0000-4000-8000-000000000000',
      { deployment: 'dep' },
    ]);
    assert.equal(missing.response.error?.type, 'Bosh::Clouds::VMNotFound');

    // What attach/detach write into the VM's settings is what a restart keeps (the staged copy is
    // installed on the first start only).
    inVm(c, `sed -i 's/agent-meta/agent-meta-rewritten/' ${SETTINGS}`);
    const startedBefore = docker('inspect', c, '--format', '{{.State.StartedAt}}');
    await fx.cpi.call('reboot_vm', [vm]);
    assert.notEqual(docker('inspect', c, '--format', '{{.State.StartedAt}}'), startedBefore);
    await waitFor(
      () => dockerTry('exec', c, 'sh', '-c', 'test $(wc -l < /var/vcap/bosh/boots) -eq 2').code === 0,
      'second boot',
    );
    assert.equal(JSON.parse(inVm(c, `cat ${SETTINGS}`)).agent_id, 'agent-meta-rewritten');

    await fx.cpi.call('delete_vm', [vm]);
    assert.equal(await fx.cpi.call('has_vm', [vm]), false);
    const again = await fx.cpi.run('delete_vm', [vm]);
    assert.equal(again.exitCode, 0);
    assert.equal(again.response.error?.type, 'Bosh::Clouds::VMNotFound');
    assert.equal((await fx.cpi.run('reboot_vm', [vm])).response.error?.type, 'Bosh::Clouds::VMNotFound');
  });

  test('a VM CID of another shape is simply not found', async () => {
    for (const cid of [
      '../../etc',
      '$(reboot)',
      'disk-00000000-0000-0000-0000-000000000000',
      'bosh-cpi-helper',
    ]) {
      assert.equal(await fx.cpi.call('has_vm', [cid]), false, cid);
      assert.equal(
        (await fx.cpi.run('delete_vm', [cid])).response.error?.type,
        'Bosh::Clouds::VMNotFound',
        cid,
      );
    }
  });

  test('create_vm with a missing stemcell fails as VMCreationFailed without retry, leaving nothing', async () => {
    const before = docker('ps', '-aq', '--filter', `label=io.bosh.cpi.director=${fx.director}`);
    const run = await fx.cpi.run('create_vm', [
      'agent-x',
      'stemcell-00000000-0000-0000-0000-000000000000',
      {},
      fx.manual(24),
      [],
      {},
    ]);
    assert.equal(run.response.error?.type, 'Bosh::Clouds::VMCreationFailed');
    assert.equal(run.response.error?.ok_to_retry, false);
    assert.equal(docker('ps', '-aq', '--filter', `label=io.bosh.cpi.director=${fx.director}`), before);
  });

  test('a failure half-way through create_vm removes the container and its volume', async () => {
    const [vm] = await fx.cpi.call<[string]>('create_vm', [
      'agent-a',
      fx.stemcell,
      {},
      fx.manual(25),
      [],
      {},
    ]);
    // The same static IP again: the engine refuses at start, after the container and volume exist.
    const run = await fx.cpi.run('create_vm', ['agent-b', fx.stemcell, {}, fx.manual(25), [], {}]);
    assert.equal(run.response.error?.type, 'Bosh::Clouds::VMCreationFailed');
    assert.match(run.response.error?.message ?? '', /agent-b/);
    const containers = docker('ps', '-aq', '--filter', `label=io.bosh.cpi.agent-id=agent-b`);
    assert.equal(containers, '');
    const volumes = docker('volume', 'ls', '-q', '--filter', `label=io.bosh.cpi.director=${fx.director}`)
      .split('\n')
      .filter(Boolean);
    for (const v of volumes) {
      const owner = docker('volume', 'inspect', v, '--format', '{{index .Labels "io.bosh.cpi.vm"}}');
      assert.equal(
        dockerTry('ps', '-aq', '--filter', `label=io.bosh.cpi.vm=${owner}`).stdout !== '',
        true,
        `orphan volume ${v}`,
      );
    }
    await fx.cpi.call('delete_vm', [vm]);
  });

  test('a create_vm that fails after making the network of its manual subnet removes that network too', async () => {
    const subnet = freeSubnet('10.251');
    // The gateway's own address: the engine refuses it when the container joins, after the network exists.
    const networks = fx.manual(1, { ip: subnet.gateway, gateway: subnet.gateway });
    const run = await fx.cpi.run('create_vm', ['agent-net', fx.stemcell, {}, networks, [], {}]);
    assert.equal(run.response.error?.type, 'Bosh::Clouds::VMCreationFailed', JSON.stringify(run.response));
    const left = docker(
      'network',
      'ls',
      '--filter',
      `label=io.bosh.cpi.director=${fx.director}`,
      '--format',
      '{{.Name}}',
    );
    assert.doesNotMatch(left, new RegExp(subnet.base.replace(/\./g, '-')));
  });

  test('with two networks the default route is on the one whose default includes gateway, also after reboot', async () => {
    const other = fx.subnet.base.replace(/\.(\d+)$/, (_m, n) => `.${(Number(n) + 1) % 250}`);
    const networks = {
      aaa: {
        type: 'manual',
        ip: `${other}.5`,
        netmask: '255.255.255.0',
        gateway: `${other}.1`,
        default: ['dns'],
        cloud_properties: {},
      },
      zzz: {
        type: 'manual',
        ip: fx.subnet.ip(26),
        netmask: '255.255.255.0',
        gateway: fx.subnet.gateway,
        default: ['gateway'],
        cloud_properties: {},
      },
    };
    const [vm] = await fx.cpi.call<[string]>('create_vm', [
      'agent-two-nets',
      fx.stemcell,
      {},
      networks,
      [],
      {},
    ]);
    const c = containerOf(vm);
    const gw = fx.subnet.gateway.replace(/\./g, '\\.');
    assert.match(inVm(c, 'ip route | grep ^default'), new RegExp(`^default via ${gw}`));
    assert.match(inVm(c, 'ip -4 addr'), new RegExp(`inet ${other.replace(/\./g, '\\.')}\\.5/24`));
    await fx.cpi.call('reboot_vm', [vm]);
    assert.match(inVm(c, 'ip route | grep ^default'), new RegExp(`^default via ${gw}`));
    await fx.cpi.call('delete_vm', [vm]);
  });

  test('create_network makes a Director-managed network that VMs join; delete_network removes it', async () => {
    // A /24 nobody uses (a neighbour of the fixture's may be another run's network).
    const { base } = freeSubnet('10.251');
    const [id, subnet, props] = await fx.cpi.call<
      [string, { range: string; gateway: string }, { name: string }]
    >('create_network', [
      { type: 'manual', range: `${base}.0/24`, gateway: `${base}.1`, cloud_properties: {} },
    ]);
    assert.match(id, /^net-/);
    assert.deepEqual(subnet, { range: `${base}.0/24`, gateway: `${base}.1`, reserved: [] });
    assert.equal(props.name, id);
    const net = {
      m: {
        type: 'manual',
        ip: `${base}.9`,
        netmask: '255.255.255.0',
        gateway: `${base}.1`,
        cloud_properties: props,
      },
    };
    const [vm] = await fx.cpi.call<[string]>('create_vm', ['agent-managed', fx.stemcell, {}, net, [], {}]);
    assert.match(
      inVm(containerOf(vm), 'ip -4 addr'),
      new RegExp(`inet ${base.replace(/\./g, '\\.')}\\.9/24`),
    );
    const busy = await fx.cpi.run('delete_network', [id]);
    assert.equal(busy.response.error?.type, 'Bosh::Clouds::CloudError');
    await fx.cpi.call('delete_vm', [vm]);
    await fx.cpi.call('delete_network', [id]);
    assert.equal(
      (await fx.cpi.run('delete_network', [id])).response.error?.type,
      'Bosh::Clouds::NetworkNotFound',
    );
  });

  test('delete_stemcell while a VM uses it: the image goes with the last VM, leaving no dangling image', async () => {
    const { imagePath } = await import('../support/stemcell.ts').then((m) =>
      m.buildStemcell(`/tmp/cpi-inuse-${fx.director}`),
    );
    const stemcell = await fx.cpi.call<string>('create_stemcell', [imagePath, {}]);
    const imageId = docker('image', 'inspect', `bosh-stemcell:${stemcell}`, '--format', '{{.Id}}');
    const [vm] = await fx.cpi.call<[string]>('create_vm', [
      'agent-inuse',
      stemcell,
      {},
      fx.manual(27),
      [],
      {},
    ]);
    await fx.cpi.call('delete_stemcell', [stemcell]);
    assert.notEqual(dockerTry('image', 'inspect', `bosh-stemcell:${stemcell}`).code, 0, 'the tag is gone');
    assert.equal(dockerTry('image', 'inspect', imageId).code, 0, 'the image stays while the VM runs');
    assert.equal(await fx.cpi.call('has_vm', [vm]), true);
    await fx.cpi.call('delete_vm', [vm]);
    assert.notEqual(dockerTry('image', 'inspect', imageId).code, 0, 'the image went with its last VM');
  });

  test('calculate_vm_cloud_properties maps sizes to the properties this backend honours', async () => {
    const props = await fx.cpi.call('calculate_vm_cloud_properties', [
      { cpu: 2, ram: 1024, ephemeral_disk_size: 2048 },
    ]);
    assert.deepEqual(props, { cpu: 2, ram: 1024, ephemeral_disk: { size: 2048 } });
  });

  test('configure_networks is NotSupported and current_vm_id NotImplemented', async () => {
    const r1 = await fx.cpi.run('configure_networks', [
      'vm-00000000-0000-0000-0000-000000000000',
      fx.manual(1),
    ]);
    assert.equal(r1.response.error?.type, 'Bosh::Clouds::NotSupported');
    const r2 = await fx.cpi.run('current_vm_id', []);
    assert.equal(r2.response.error?.type, 'Bosh::Clouds::NotImplemented');
  });
});
