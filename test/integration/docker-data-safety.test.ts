import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HELPER_CONTAINER } from '../../src/backends/docker/helper.ts';
import { Cpi, writeConfig } from '../support/cpi.ts';
import { containerOf, docker, dockerTry, freeSubnet, inVm, removeDataDir } from '../support/docker.ts';
import { type DockerFixture, dockerFixture } from '../support/fixture.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sh = (script: string) => spawnSync('sh', ['-c', script], { encoding: 'utf8' });
const isMountpoint = (path: string) => spawnSync('mountpoint', ['-q', path]).status === 0;
const boots = (c: string) => Number(inVm(c, 'wc -l < /var/vcap/bosh/boots'));

async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(250);
  }
}

describe('Docker backend: data safety', () => {
  let fx: DockerFixture;

  before(async () => {
    fx = await dockerFixture('datasafety');
  });
  after(async () => {
    await fx?.cleanup();
  });

  /** A new VM with a new disk attached, holding the file `data` ("precious"); mp is its mount point on the host. */
  async function vmWithPreciousDisk(agentId: string, host: number) {
    const [vm] = await fx.cpi.call<[string]>('create_vm', [
      agentId,
      fx.stemcell,
      {},
      fx.manual(host),
      [],
      {},
    ]);
    const c = containerOf(vm);
    const disk = await fx.cpi.call<string>('create_disk', [32, {}, vm]);
    await fx.cpi.call('attach_disk', [vm, disk]);
    inVm(c, `echo precious > /warden-cpi-dev/${disk}/data`);
    return { vm, c, disk, mp: `${fx.dataDir}/mounts/${vm}/${disk}` };
  }

  test('set_disk_metadata merges into the record written at creation; concurrent calls all land', async () => {
    const disk = await fx.cpi.call<string>('create_disk', [32, { type: 'fast' }, null]);
    const file = `${fx.dataDir}/disks/${disk}/metadata.json`;
    const created = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(created.cpi.size_mib, 32);
    await Promise.all(
      ['a', 'b', 'c', 'd', 'e', 'f'].map((k) =>
        fx.cpi.call('set_disk_metadata', [disk, { [`key_${k}`]: k }]),
      ),
    );
    const meta = JSON.parse(readFileSync(file, 'utf8'));
    assert.deepEqual(meta.cpi, created.cpi, 'the record written at creation is kept');
    assert.deepEqual(
      meta.bosh,
      { key_a: 'a', key_b: 'b', key_c: 'c', key_d: 'd', key_e: 'e', key_f: 'f' },
      'every concurrent call landed its keys',
    );
    assert.deepEqual(
      readdirSync(`${fx.dataDir}/disks/${disk}`).filter((f) => f.startsWith('.')),
      [],
      'no temporary file left',
    );
    await fx.cpi.call('delete_disk', [disk]);
  });

  test('disk lookups the helper cannot answer from its own view are answered by the host', async () => {
    // A record that is not one unterminated line (edited by hand): read on the host, merged, kept.
    const disk = await fx.cpi.call<string>('create_disk', [32, {}, null]);
    const file = `${fx.dataDir}/disks/${disk}/metadata.json`;
    const created = JSON.parse(readFileSync(file, 'utf8'));
    writeFileSync(file, `${JSON.stringify({ ...created, note: 'by hand' }, null, 2)}\n`);
    await fx.cpi.call('set_disk_metadata', [disk, { deployment: 'hand' }]);
    const merged = JSON.parse(readFileSync(file, 'utf8'));
    assert.deepEqual(
      [merged.cpi, merged.note, merged.bosh],
      [created.cpi, 'by hand', { deployment: 'hand' }],
    );
    await fx.cpi.call('delete_disk', [disk]);

    // A data dir reached through an absolute symlink: the helper resolves it inside its own root,
    // where it is not, so only the host can say the disk is there.
    const real = `${fx.dataDir}-real`;
    const link = `${fx.dataDir}-link`;
    execFileSync('mkdir', ['-p', real]);
    execFileSync('ln', ['-sfn', real, link]);
    const linkConfig = writeConfig({
      ...JSON.parse(readFileSync(fx.configPath, 'utf8')).cloud.properties,
      docker: { data_dir: link },
    });
    const viaLink = new Cpi(linkConfig, 2);
    viaLink.context = { director_uuid: fx.director };
    try {
      const linked = await viaLink.call<string>('create_disk', [32, {}, null]);
      assert.ok(existsSync(`${real}/disks/${linked}/disk.img`));
      assert.notEqual(
        dockerTry('exec', HELPER_CONTAINER, 'test', '-e', `/host${link}/disks/${linked}/disk.img`).code,
        0,
        "the helper's own view misses the disk",
      );
      assert.equal(await viaLink.call('has_disk', [linked]), true);
      await viaLink.call('set_disk_metadata', [linked, { deployment: 'linked' }]);
      assert.equal(
        JSON.parse(readFileSync(`${real}/disks/${linked}/metadata.json`, 'utf8')).bosh.deployment,
        'linked',
      );
      await viaLink.call('delete_disk', [linked]);
      assert.equal(await viaLink.call('has_disk', [linked]), false);
    } finally {
      rmSync(link, { force: true });
      rmSync(dirname(linkConfig), { recursive: true, force: true });
      removeDataDir(real);
    }
  });

  test('a mount point whose disk is missing refuses writes from the host and from the VM; reboot_vm mounts it again before the agent starts', async () => {
    const { vm, c, disk, mp } = await vmWithPreciousDisk('agent-ds1', 40);
    await until(
      'the agent stand-in started',
      () => dockerTry('exec', c, 'test', '-e', '/var/vcap/bosh/agent-ready').code === 0,
    );

    // What a host reboot leaves: the record (the directory), no loop mount.
    docker('stop', '-t', '1', c);
    execFileSync('umount', [mp]);
    assert.equal(
      sh(`touch ${mp}/stray`).status !== 0,
      true,
      'the host could write into the bare mount point',
    );
    docker('start', c);
    await sleep(3000);
    assert.equal(
      dockerTry('exec', c, 'sh', '-c', `touch /warden-cpi-dev/${disk}/stray`).code !== 0,
      true,
      'the VM could write into the bare mount point',
    );
    assert.equal(
      dockerTry('exec', c, 'test', '-e', '/var/vcap/bosh/agent-ready').code === 0 &&
        inVm(c, 'cat /var/vcap/bosh/boots').split('\n').length > 1,
      false,
      'the agent started again without its disk',
    );
    const bootsBefore = boots(c);
    assert.match(docker('ps', '-a', '--filter', `id=${c}`, '--format', '{{.Status}}'), /^Up/);

    const reboot = await fx.cpi.run('reboot_vm', [vm]);
    assert.equal(reboot.response.error, null, JSON.stringify(reboot.response.error));
    assert.match(reboot.response.log, new RegExp(`persistent disks mounted: ${disk}`));
    assert.ok(isMountpoint(mp), 'reboot_vm did not mount the disk again');
    await until('the agent started after reboot_vm', () => {
      const r = dockerTry('exec', c, 'cat', '/var/vcap/bosh/boots');
      return r.code === 0 && r.stdout.split('\n').length > bootsBefore;
    });
    assert.equal(inVm(c, `cat /warden-cpi-dev/${disk}/data`), 'precious');
    await fx.cpi.call('delete_vm', [vm]);
    await fx.cpi.call('delete_disk', [disk]);
  });

  test('a disk left frozen by an interrupted snapshot is thawed by the next snapshot_disk or detach_disk', async () => {
    const { vm, c, disk, mp } = await vmWithPreciousDisk('agent-ds-freeze', 41);
    // What a snapshot killed between its freeze and its thaw leaves (the helper was killed with the engine).
    const leaveFrozen = () => {
      writeFileSync(`${fx.dataDir}/locks/${disk}.frozen`, mp);
      execFileSync('fsfreeze', ['-f', mp]);
    };
    // A frozen file system refuses a second freeze (EBUSY); a thawed one takes it and is thawed again.
    const thawed = () => sh(`fsfreeze -f '${mp}' && fsfreeze -u '${mp}'`).status === 0;

    leaveFrozen();
    assert.equal(thawed(), false, 'the simulated leftover is not frozen');
    const snapshot = await fx.cpi.run('snapshot_disk', [disk, {}]);
    assert.equal(snapshot.response.error, null, JSON.stringify(snapshot.response.error));
    assert.match(snapshot.response.log, /thawed disk .* left frozen by an interrupted snapshot/);
    assert.ok(thawed(), 'snapshot_disk left the disk frozen');
    assert.equal(existsSync(`${fx.dataDir}/locks/${disk}.frozen`), false, 'the record of the freeze is left');
    inVm(c, `echo more >> /warden-cpi-dev/${disk}/data`);

    leaveFrozen();
    const detach = await fx.cpi.run('detach_disk', [vm, disk]);
    assert.equal(detach.response.error, null, JSON.stringify(detach.response.error));
    assert.match(detach.response.log, /thawed disk/);
    assert.equal(existsSync(`${fx.dataDir}/locks/${disk}.frozen`), false);
    await fx.cpi.call('attach_disk', [vm, disk]);
    assert.equal(inVm(c, `cat /warden-cpi-dev/${disk}/data`), 'precious\nmore');

    await fx.cpi.call('delete_snapshot', [snapshot.response.result as string]);
    await fx.cpi.call('delete_vm', [vm]);
    await fx.cpi.call('delete_disk', [disk]);
  });

  test("delete_vm takes each disk's lock and moves stray content aside instead of failing", async () => {
    const [vm] = await fx.cpi.call<[string]>('create_vm', [
      'agent-ds2',
      fx.stemcell,
      {},
      fx.manual(41),
      [],
      {},
    ]);
    const disk = await fx.cpi.call<string>('create_disk', [32, {}, vm]);
    const stray = await fx.cpi.call<string>('create_disk', [32, {}, vm]);
    await fx.cpi.call('attach_disk', [vm, disk]);
    await fx.cpi.call('attach_disk', [vm, stray]);
    // A mount point that collected files while its disk was missing (before mount points were
    // immutable), and a file where none belongs.
    const strayMp = `${fx.dataDir}/mounts/${vm}/${stray}`;
    execFileSync('umount', [strayMp]);
    execFileSync('chattr', ['-i', strayMp]);
    writeFileSync(join(strayMp, 'second-copy-of-the-job-state'), 'x');
    writeFileSync(`${fx.dataDir}/mounts/${vm}/junk`, 'y');

    const holder = spawn('flock', [`${fx.dataDir}/locks/${disk}.lock`, 'sleep', '3'], { stdio: 'ignore' });
    await sleep(500);
    const started = Date.now();
    const run = await fx.cpi.run('delete_vm', [vm]);
    const took = Date.now() - started;
    holder.kill();
    assert.equal(run.response.error, null, JSON.stringify(run.response.error));
    assert.ok(took >= 2000, `delete_vm did not wait for the disk's lock (${took} ms)`);
    assert.match(run.response.log, /was not empty; its content was moved to/);
    assert.equal(existsSync(`${fx.dataDir}/mounts/${vm}`), false);
    const moved = readdirSync(`${fx.dataDir}/stray`);
    assert.ok(
      moved.some((m) => existsSync(join(fx.dataDir, 'stray', m, 'second-copy-of-the-job-state'))),
      `stray/ holds ${moved.join(', ')}`,
    );
    for (const d of [disk, stray]) await fx.cpi.call('delete_disk', [d]);
  });

  test('a retried delete_vm after a storage failure still removes unused networks and images', async () => {
    const own = await fx.cpi.call<string>('create_stemcell', [fx.stemcellImagePath, {}]);
    const net = freeSubnet('10.251');
    const networks = {
      default: {
        type: 'manual',
        ip: net.ip(5),
        netmask: '255.255.255.0',
        gateway: net.gateway,
        default: ['dns', 'gateway'],
        cloud_properties: {},
      },
    };
    const labelled = () =>
      docker('network', 'ls', '-q', '--filter', `label=io.bosh.cpi.director=${fx.director}`)
        .split('\n')
        .filter(Boolean);
    const networksBefore = labelled();
    const [vm] = await fx.cpi.call<[string]>('create_vm', [
      'agent-ds3',
      own,
      { ephemeral_disk: { size: 32 } },
      networks,
      [],
      {},
    ]);
    const imageId = docker('inspect', containerOf(vm), '--format', '{{.Image}}');
    const [network] = labelled().filter((n) => !networksBefore.includes(n));
    assert.ok(network, 'the VM has a CPI-made network');
    await fx.cpi.call('delete_stemcell', [own]);
    // Something on the host keeps the ephemeral disk busy: the storage cannot be released.
    const busy = spawn('sleep', ['60'], { cwd: `${fx.dataDir}/ephemeral/${vm}`, stdio: 'ignore' });
    try {
      const first = await fx.cpi.run('delete_vm', [vm]);
      assert.equal(first.response.error?.type, 'Bosh::Clouds::CloudError');
      assert.equal(first.response.error?.ok_to_retry, true);
    } finally {
      busy.kill();
    }
    await sleep(300);
    const retry = await fx.cpi.run('delete_vm', [vm]);
    assert.equal(retry.response.error?.type, 'Bosh::Clouds::VMNotFound');
    assert.equal(
      dockerTry('network', 'inspect', network).code !== 0,
      true,
      'the unused network is still there',
    );
    assert.equal(
      dockerTry('image', 'inspect', imageId).code !== 0,
      true,
      'the deleted stemcell image is still there',
    );
    assert.equal(existsSync(`${fx.dataDir}/ephemeral/${vm}.img`), false);
  });
});
