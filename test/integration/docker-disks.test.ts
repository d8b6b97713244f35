import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HELPER_CONTAINER } from '../../src/backends/docker/helper.ts';
import { containerOf, docker, dockerTry, inVm } from '../support/docker.ts';
import { type DockerFixture, dockerFixture } from '../support/fixture.ts';

const hint = (disk: string) => `/warden-cpi-dev/${disk}`;
const md5 = (c: string, path: string) => inVm(c, `md5sum ${path} | cut -d' ' -f1`);
const hostMounts = () => readFileSync('/proc/self/mountinfo', 'utf8');

describe('Docker backend: persistent disks', () => {
  let fx: DockerFixture;
  let vm1: string;
  let vm2: string;
  let c1: string;
  let c2: string;

  before(async () => {
    fx = await dockerFixture('disks');
    [vm1] = await fx.cpi.call<[string]>('create_vm', ['agent-d1', fx.stemcell, {}, fx.manual(30), [], {}]);
    [vm2] = await fx.cpi.call<[string]>('create_vm', ['agent-d2', fx.stemcell, {}, fx.manual(31), [], {}]);
    c1 = containerOf(vm1);
    c2 = containerOf(vm2);
  });
  after(async () => {
    await fx?.cleanup();
  });

  test('create_disk makes an ext4 filesystem of the requested size; has_disk and delete_disk agree', async () => {
    const disk = await fx.cpi.call<string>('create_disk', [128, {}, vm1]);
    const image = `${fx.dataDir}/disks/${disk}/disk.img`;
    assert.equal(readFileSync(image).length === 0, false);
    assert.equal(
      execFileSync('stat', ['-c', '%s', image], { encoding: 'utf8' }).trim(),
      String(128 * 1048576),
    );
    assert.match(execFileSync('file', ['-b', image], { encoding: 'utf8' }).trim(), /ext4/);
    assert.equal(await fx.cpi.call('has_disk', [disk]), true);
    await fx.cpi.call('set_disk_metadata', [disk, { deployment: 'd', instance_index: '0' }]);
    const meta = JSON.parse(readFileSync(`${fx.dataDir}/disks/${disk}/metadata.json`, 'utf8'));
    assert.equal(meta.bosh.deployment, 'd');
    await fx.cpi.call('delete_disk', [disk]);
    assert.equal(await fx.cpi.call('has_disk', [disk]), false);
    assert.equal(
      (await fx.cpi.run('delete_disk', [disk])).response.error?.type,
      'Bosh::Clouds::DiskNotFound',
    );
    assert.equal(
      (await fx.cpi.run('set_disk_metadata', [disk, {}])).response.error?.type,
      'Bosh::Clouds::DiskNotFound',
    );
  });

  test('attach_disk mounts the disk into the running VM without restarting it; detach removes it', async () => {
    const disk = await fx.cpi.call<string>('create_disk', [96, {}, vm1]);
    const startedAt = docker('inspect', c1, '--format', '{{.State.StartedAt}}');
    const pid = docker('inspect', c1, '--format', '{{.State.Pid}}');
    const agentPid = inVm(c1, 'cat /proc/1/stat | cut -d" " -f22');

    const result = await fx.cpi.call('attach_disk', [vm1, disk]);
    assert.equal(result, hint(disk));
    assert.equal(docker('inspect', c1, '--format', '{{.State.StartedAt}}'), startedAt);
    assert.equal(docker('inspect', c1, '--format', '{{.State.Pid}}'), pid);
    assert.equal(inVm(c1, 'cat /proc/1/stat | cut -d" " -f22'), agentPid);
    const sizeKiB = Number(inVm(c1, `df -k ${hint(disk)} | tail -1 | awk '{print $2}'`));
    assert.ok(sizeKiB > 80 * 1024 && sizeKiB <= 96 * 1024, `disk size in VM ${sizeKiB} KiB`);
    const settings = JSON.parse(inVm(c1, 'cat /var/vcap/bosh/warden-cpi-agent-env.json'));
    assert.deepEqual(settings.disks.persistent, { [disk]: hint(disk) });
    assert.deepEqual(await fx.cpi.call('get_disks', [vm1]), [disk]);

    // The agent bind-mounts the disk onto /var/vcap/store; detach waits, then says where it is still used.
    inVm(c1, `mount --bind ${hint(disk)} /var/vcap/store`);
    const busy = await fx.cpi.run('detach_disk', [vm1, disk]);
    assert.equal(busy.response.error?.type, 'Bosh::Clouds::CloudError');
    assert.match(busy.response.error?.message ?? '', /still mounted inside the VM at: \/var\/vcap\/store/);
    assert.deepEqual(
      await fx.cpi.call('get_disks', [vm1]),
      [disk],
      'a refused detach leaves the disk attached',
    );
    inVm(c1, 'umount /var/vcap/store');

    await fx.cpi.call('detach_disk', [vm1, disk]);
    assert.notEqual(dockerTry('exec', c1, 'mountpoint', '-q', hint(disk)).code, 0);
    assert.deepEqual(await fx.cpi.call('get_disks', [vm1]), []);
    assert.deepEqual(
      JSON.parse(inVm(c1, 'cat /var/vcap/bosh/warden-cpi-agent-env.json')).disks.persistent,
      {},
    );
    assert.equal(docker('inspect', c1, '--format', '{{.State.StartedAt}}'), startedAt);
    assert.equal(
      (await fx.cpi.run('detach_disk', [vm1, disk])).response.error?.type,
      'Bosh::Clouds::DiskNotAttached',
    );
    await fx.cpi.call('delete_disk', [disk]);
  });

  test('v1 attach_disk returns null and still records the disk in the settings file', async () => {
    const disk = await fx.cpi.call<string>('create_disk', [32, {}, null]);
    assert.equal(await fx.cpi.call('attach_disk', [vm2, disk], 1), null);
    const settings = JSON.parse(inVm(c2, 'cat /var/vcap/bosh/warden-cpi-agent-env.json'));
    assert.equal(settings.disks.persistent[disk], hint(disk));
    await fx.cpi.call('detach_disk', [vm2, disk]);
    await fx.cpi.call('delete_disk', [disk]);
  });

  test('data survives detach, attach to another VM, reboot and deletion of the VM', async () => {
    const disk = await fx.cpi.call<string>('create_disk', [64, {}, vm1]);
    await fx.cpi.call('attach_disk', [vm1, disk]);
    inVm(c1, `dd if=/dev/urandom of=${hint(disk)}/data bs=1M count=4 2>/dev/null; sync`);
    const sum = md5(c1, `${hint(disk)}/data`);

    const elsewhere = await fx.cpi.run('attach_disk', [vm2, disk]);
    assert.equal(elsewhere.response.error?.type, 'Bosh::Clouds::CloudError');
    assert.match(elsewhere.response.error?.message ?? '', new RegExp(`attached to VM '${vm1}'`));

    await fx.cpi.call('reboot_vm', [vm1]);
    assert.equal(md5(c1, `${hint(disk)}/data`), sum, 'still attached after reboot');
    await fx.cpi.call('detach_disk', [vm1, disk]);
    await fx.cpi.call('attach_disk', [vm2, disk]);
    assert.equal(md5(c2, `${hint(disk)}/data`), sum);

    // delete_vm with the disk still attached: the disk survives, unmounted.
    const [vm3] = await fx.cpi.call<[string]>('create_vm', [
      'agent-d3',
      fx.stemcell,
      {},
      fx.manual(32),
      [],
      {},
    ]);
    await fx.cpi.call('detach_disk', [vm2, disk]);
    await fx.cpi.call('attach_disk', [vm3, disk]);
    await fx.cpi.call('delete_vm', [vm3]);
    assert.equal(await fx.cpi.call('has_disk', [disk]), true);
    assert.doesNotMatch(hostMounts(), new RegExp(disk), 'no mount of the disk is left on the host');
    await fx.cpi.call('attach_disk', [vm2, disk]);
    assert.equal(md5(c2, `${hint(disk)}/data`), sum);
    await fx.cpi.call('detach_disk', [vm2, disk]);
    await fx.cpi.call('delete_disk', [disk]);
  });

  test('snapshots are point-in-time copies, taken while attached, restorable as a new disk', async () => {
    const disk = await fx.cpi.call<string>('create_disk', [64, {}, vm1]);
    await fx.cpi.call('attach_disk', [vm1, disk]);
    inVm(c1, `echo before > ${hint(disk)}/state; sync`);
    const snapshot = await fx.cpi.call<string>('snapshot_disk', [disk, { deployment: 'd' }]);
    assert.match(snapshot, /^snap-/);
    inVm(c1, `echo after > ${hint(disk)}/state; sync`);
    assert.equal(inVm(c1, 'echo writable > /var/vcap/data/probe && cat /var/vcap/data/probe'), 'writable');

    const restored = await fx.cpi.call<string>('create_disk', [96, { snapshot_cid: snapshot }, vm2]);
    await fx.cpi.call('attach_disk', [vm2, restored]);
    assert.equal(inVm(c2, `cat ${hint(restored)}/state`), 'before');
    const sizeKiB = Number(inVm(c2, `df -k ${hint(restored)} | tail -1 | awk '{print $2}'`));
    assert.ok(sizeKiB > 80 * 1024, `restored disk grown to 96 MiB: ${sizeKiB} KiB`);
    assert.equal(inVm(c1, `cat ${hint(disk)}/state`), 'after');

    await fx.cpi.call('detach_disk', [vm2, restored]);
    await fx.cpi.call('detach_disk', [vm1, disk]);
    await fx.cpi.call('delete_snapshot', [snapshot]);
    await fx.cpi.call('delete_snapshot', [snapshot]);
    assert.equal(existsSync(`${fx.dataDir}/snapshots/${snapshot}`), false);
    assert.equal(
      (await fx.cpi.run('snapshot_disk', ['disk-00000000-0000-0000-0000-000000000000', {}])).response.error
        ?.type,
      'Bosh::Clouds::DiskNotFound',
    );
    await fx.cpi.call('delete_disk', [restored]);
    await fx.cpi.call('delete_disk', [disk]);
  });

  test('resize_disk grows a detached disk with its data; shrinking is NotSupported; attached is refused', async () => {
    const disk = await fx.cpi.call<string>('create_disk', [64, {}, vm1]);
    await fx.cpi.call('attach_disk', [vm1, disk]);
    inVm(c1, `echo keep > ${hint(disk)}/file; sync`);
    const attached = await fx.cpi.run('resize_disk', [disk, 128]);
    assert.equal(attached.response.error?.type, 'Bosh::Clouds::CloudError');
    assert.match(attached.response.error?.message ?? '', /detach it before resizing/);
    await fx.cpi.call('detach_disk', [vm1, disk]);

    await fx.cpi.call('resize_disk', [disk, 160]);
    const shrink = await fx.cpi.run('resize_disk', [disk, 100]);
    assert.equal(shrink.response.error?.type, 'Bosh::Clouds::NotSupported');
    assert.equal(await fx.cpi.call('update_disk', [disk, 192, {}]), disk);
    await fx.cpi.call('attach_disk', [vm1, disk]);
    assert.equal(inVm(c1, `cat ${hint(disk)}/file`), 'keep');
    const sizeKiB = Number(inVm(c1, `df -k ${hint(disk)} | tail -1 | awk '{print $2}'`));
    assert.ok(sizeKiB > 160 * 1024, `grown: ${sizeKiB} KiB`);
    await fx.cpi.call('detach_disk', [vm1, disk]);
    await fx.cpi.call('delete_disk', [disk]);
  });

  test('delete_disk refuses a disk attached to a live VM', async () => {
    const disk = await fx.cpi.call<string>('create_disk', [32, {}, vm1]);
    await fx.cpi.call('attach_disk', [vm1, disk]);
    const run = await fx.cpi.run('delete_disk', [disk]);
    assert.equal(run.response.error?.type, 'Bosh::Clouds::CloudError');
    assert.match(run.response.error?.message ?? '', /attached to VM/);
    assert.equal(await fx.cpi.call('has_disk', [disk]), true);
    await fx.cpi.call('detach_disk', [vm1, disk]);
    await fx.cpi.call('delete_disk', [disk]);
  });

  test('concurrent attach and detach of different disks on one VM keep the settings file true', async () => {
    const disks = await Promise.all(
      [1, 2, 3, 4].map(() => fx.cpi.call<string>('create_disk', [16, {}, vm2])),
    );
    await Promise.all(disks.map((d) => fx.cpi.call('attach_disk', [vm2, d])));
    const attached = (await fx.cpi.call<string[]>('get_disks', [vm2])).sort();
    assert.deepEqual(attached, [...disks].sort());
    const settings = JSON.parse(inVm(c2, 'cat /var/vcap/bosh/warden-cpi-agent-env.json'));
    assert.deepEqual(Object.keys(settings.disks.persistent).sort(), [...disks].sort());
    await Promise.all(disks.slice(0, 3).map((d) => fx.cpi.call('detach_disk', [vm2, d])));
    const after = JSON.parse(inVm(c2, 'cat /var/vcap/bosh/warden-cpi-agent-env.json'));
    assert.deepEqual(Object.keys(after.disks.persistent), [disks[3]]);
    assert.deepEqual(await fx.cpi.call('get_disks', [vm2]), [disks[3]]);
    await fx.cpi.call('detach_disk', [vm2, disks[3]]);
    await Promise.all(disks.map((d) => fx.cpi.call('delete_disk', [d])));
  });

  test("detach after the agent's unmount_disk removes its leftover bind mount, never one in use; mounts never stack", async () => {
    const [vm] = await fx.cpi.call<[string]>('create_vm', [
      'agent-d4',
      fx.stemcell,
      {},
      fx.manual(33),
      [],
      {},
    ]);
    const c = containerOf(vm);
    const disk = await fx.cpi.call<string>('create_disk', [64, {}, vm]);
    const h = hint(disk);
    // What the VM and the host have mounted, read independently of the CPI. dev0: the disk's device
    // in the VM, for when the hint path no longer shows it.
    let dev0 = '';
    const vmMounts = () =>
      inVm(c, 'cat /proc/self/mountinfo')
        .split('\n')
        .map((line) => line.split(' '))
        .map((f) => ({ dev: f[2], at: f[4] }));
    const expectMounts = (when: string, inVmAt: string[]) => {
      const mounts = vmMounts();
      assert.equal(
        mounts.filter((m) => m.at === '/warden-cpi-dev').length,
        1,
        `${when}: /warden-cpi-dev once in the VM`,
      );
      const dev = mounts.find((m) => m.at === h)?.dev ?? dev0;
      assert.deepEqual(
        mounts
          .filter((m) => m.dev === dev)
          .map((m) => m.at)
          .sort(),
        [...inVmAt].sort(),
        `${when}: the disk's mounts in the VM`,
      );
      const onHost = hostMounts()
        .split('\n')
        .filter((l) => l.includes(disk)).length;
      assert.equal(onHost, inVmAt.length > 0 ? 1 : 0, `${when}: the disk's mounts on the host`);
    };

    await fx.cpi.call('attach_disk', [vm, disk]);
    dev0 = vmMounts().find((m) => m.at === h)?.dev ?? '';
    assert.notEqual(dev0, '');
    expectMounts('after attach', [h]);
    // The agent's mount_disk with BindMountPersistentDisk, then a job writing its data.
    inVm(c, `mount --bind ${h} /var/vcap/store`);
    inVm(c, 'dd if=/dev/urandom of=/var/vcap/store/data bs=1M count=4 2>/dev/null; sync');
    const sum = md5(c, '/var/vcap/store/data');
    // Settings writes (archive requests) while the disk is mounted must not stack mounts in the VM.
    await fx.cpi.call('set_vm_metadata', [vm, { deployment: 'd', job: 'j', index: '0' }]);
    await fx.cpi.call('set_vm_metadata', [vm, { deployment: 'd', job: 'j', index: '1' }]);
    expectMounts('after mount_disk and settings writes', [h, '/var/vcap/store']);

    // The agent's unmount_disk: `umount <hint>`, which leaves /var/vcap/store bound to the disk.
    inVm(c, `umount ${h}`);
    expectMounts('after unmount_disk', ['/var/vcap/store']);

    // A process still in /var/vcap/store: detach refuses (retryable) and the disk stays whole.
    docker(
      'exec',
      '-d',
      c,
      '/bin/sh',
      '-c',
      'cd /var/vcap/store && echo $$ > /tmp/holder.pid && exec sleep 600',
    );
    for (let i = 0; i < 50 && dockerTry('exec', c, 'test', '-s', '/tmp/holder.pid').code !== 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    const busy = await fx.cpi.run('detach_disk', [vm, disk]);
    assert.equal(busy.response.error?.type, 'Bosh::Clouds::CloudError');
    assert.equal(busy.response.error?.ok_to_retry, true);
    assert.match(busy.response.error?.message ?? '', /\/var\/vcap\/store/);
    assert.deepEqual(await fx.cpi.call('get_disks', [vm]), [disk]);
    expectMounts('after the refused detach', ['/var/vcap/store']);
    assert.equal(md5(c, '/var/vcap/store/data'), sum);
    inVm(c, 'kill $(cat /tmp/holder.pid)');

    await fx.cpi.call('detach_disk', [vm, disk]);
    expectMounts('after detach', []);
    assert.deepEqual(await fx.cpi.call('get_disks', [vm]), []);
    assert.doesNotMatch(execFileSync('losetup', ['-a'], { encoding: 'utf8' }), new RegExp(disk));

    // The same disk again on the same VM: the agent's mount_disk works and the data is there.
    await fx.cpi.call('attach_disk', [vm, disk]);
    dev0 = vmMounts().find((m) => m.at === h)?.dev ?? '';
    expectMounts('after attaching again', [h]);
    // A restart (the restart policy, docker restart) starts the container again: attaching and
    // writing the settings after it must not stack the mounts either.
    docker('restart', '-t', '1', c);
    const other = await fx.cpi.call<string>('create_disk', [32, {}, vm]);
    await fx.cpi.call('attach_disk', [vm, other]);
    expectMounts('after an engine-made restart and attaching another disk', [h]);
    assert.equal(vmMounts().filter((m) => m.at === hint(other)).length, 1);
    await fx.cpi.call('detach_disk', [vm, other]);
    await fx.cpi.call('delete_disk', [other]);
    inVm(c, `mount --bind ${h} /var/vcap/store`);
    assert.equal(md5(c, '/var/vcap/store/data'), sum);
    inVm(c, `umount ${h}`);
    await fx.cpi.call('detach_disk', [vm, disk]);
    expectMounts('after the second detach', []);
    await fx.cpi.call('delete_vm', [vm]);
    await fx.cpi.call('delete_disk', [disk]);
  });

  test('a VM an earlier CPI version made (root filesystem still shared with the host) stops stacking mounts at its next attach', async (t) => {
    // Such a container, made here with the docker CLI as that version made it, with its settings file.
    const vm = `vm-${randomUUID()}`;
    mkdirSync(`${fx.dataDir}/mounts/${vm}`);
    const c = docker(
      ...['run', '-d', '--label', 'io.bosh.cpi=docker', '--label', `io.bosh.cpi.vm=${vm}`],
      ...['--label', `io.bosh.cpi.director=${fx.director}`, '--cap-add', 'SYS_ADMIN'],
      ...['-v', `${fx.dataDir}/mounts/${vm}:/warden-cpi-dev:rslave`, '--entrypoint', '/bin/sleep'],
      ...[docker('inspect', c1, '--format', '{{.Config.Image}}'), '600'],
    );
    const settings = join(fx.dataDir, 'legacy-settings.json');
    docker('cp', `${c1}:/var/vcap/bosh/warden-cpi-agent-env.json`, settings);
    docker('cp', settings, `${c}:/var/vcap/bosh/warden-cpi-agent-env.json`);
    const rootLine = () =>
      inVm(c, 'cat /proc/self/mountinfo')
        .split('\n')
        .find((l) => l.split(' ')[4] === '/') ?? '';
    if (!/ master:\d+/.test(rootLine())) {
      t.skip("this host's / is not a shared mount: nothing propagates into containers, nothing to isolate");
      docker('rm', '-f', c);
      return;
    }
    const disks = [
      await fx.cpi.call<string>('create_disk', [32, {}, null]),
      await fx.cpi.call<string>('create_disk', [32, {}, null]),
    ];
    for (const d of disks) await fx.cpi.call('attach_disk', [vm, d]);
    await fx.cpi.call('set_vm_metadata', [vm, { deployment: 'd', index: '0' }]);
    await fx.cpi.call('set_vm_metadata', [vm, { deployment: 'd', index: '1' }]);
    const mounts = inVm(c, 'cat /proc/self/mountinfo')
      .split('\n')
      .map((l) => l.split(' ')[4]);
    assert.equal(mounts.filter((m) => m === '/warden-cpi-dev').length, 1, 'one /warden-cpi-dev in the VM');
    for (const d of disks) assert.equal(mounts.filter((m) => m === hint(d)).length, 1, `${d} once in the VM`);
    assert.doesNotMatch(rootLine(), / master:\d+/, "the VM's root no longer receives the host's mounts");
    for (const d of disks) await fx.cpi.call('detach_disk', [vm, d]);
    for (const d of disks) await fx.cpi.call('delete_disk', [d]);
    await fx.cpi.call('delete_vm', [vm]);
  });

  test('a stopped helper is started again by the next disk call, a lookup or a host operation, without waiting out a timeout', async () => {
    const disk = await fx.cpi.call<string>('create_disk', [32, {}, vm1]);
    const running = () => docker('inspect', HELPER_CONTAINER, '--format', '{{.State.Running}}');
    try {
      // has_disk is a lookup, written before the helper's state is read; set_disk_metadata reads
      // the record the same way, then runs a host operation.
      for (const call of [
        () => fx.cpi.call('has_disk', [disk]),
        () => fx.cpi.call('set_disk_metadata', [disk, { deployment: 'after-stop' }]),
      ]) {
        docker('stop', '-t', '1', HELPER_CONTAINER);
        assert.equal(running(), 'false');
        const started = Date.now();
        const result = await call();
        assert.ok(Date.now() - started < 20_000, `took ${Date.now() - started} ms`);
        if (result !== null) assert.equal(result, true);
        assert.equal(running(), 'true');
      }
      const meta = JSON.parse(readFileSync(`${fx.dataDir}/disks/${disk}/metadata.json`, 'utf8'));
      assert.equal(meta.bosh.deployment, 'after-stop');
    } finally {
      if (running() !== 'true') docker('start', HELPER_CONTAINER);
      await fx.cpi.call('delete_disk', [disk]);
    }
  });

  test('a full lifecycle leaves no containers, volumes, networks, mounts or loop devices behind', async () => {
    await fx.cpi.call('delete_vm', [vm1]);
    await fx.cpi.call('delete_vm', [vm2]);
    await fx.cpi.call('delete_stemcell', [fx.stemcell]);
    assert.equal(docker('ps', '-aq', '--filter', `label=io.bosh.cpi.director=${fx.director}`), '');
    assert.equal(docker('network', 'ls', '-q', '--filter', `label=io.bosh.cpi.director=${fx.director}`), '');
    for (const vm of [vm1, vm2])
      assert.equal(docker('volume', 'ls', '-q', '--filter', `label=io.bosh.cpi.vm=${vm}`), '');
    assert.equal(docker('images', '-q', '--filter', `label=io.bosh.cpi.director=${fx.director}`), '');
    assert.deepEqual(readdirSync(`${fx.dataDir}/disks`), []);
    assert.deepEqual(readdirSync(`${fx.dataDir}/mounts`), []);
    assert.deepEqual(readdirSync(`${fx.dataDir}/ephemeral`), []);
    const loops = execFileSync('losetup', ['-a'], { encoding: 'utf8' });
    assert.doesNotMatch(loops, new RegExp(fx.dataDir));
    const mounts = hostMounts()
      .split('\n')
      .filter((l) => l.includes(fx.dataDir));
    assert.equal(mounts.length, 1, `only the shared mounts/ bind remains: ${mounts.join('\n')}`);
  });
});
