import { ensure, ensureEqual } from '../lib/assert.ts';
import type { Suite } from '../lib/env.ts';
import { checksum, createVm, fsSizeKiB, hintPath, waitRunning, writeData } from '../lib/vm.ts';
import { runHostDataSafety } from './host-checks.ts';

/**
 * Data written to a persistent disk from inside a VM must survive everything the Director does
 * with the disk: detach, attach elsewhere, VM deletion, reboot, resize, snapshot and restore.
 */
export async function runDataSafety(suite: Suite): Promise<void> {
  const { cpi, reporter, docker } = suite;
  if (suite.hostProbe) return runHostDataSafety(suite, suite.hostProbe);
  if (!suite.isDocker) {
    reporter.skip('data safety', 'all data-safety checks', 'they write through docker exec into the VM');
    return;
  }
  const c = (name: string, fn: () => unknown) => reporter.check('data safety', name, fn);
  const vms: string[] = [];
  const disks: string[] = [];
  const snaps: string[] = [];
  const newVm = async () => {
    const vm = await createVm(cpi, suite.stemcellCid, suite.addresses);
    vms.push(vm.cid);
    await waitRunning(docker, vm.cid);
    return vm.cid;
  };
  const attach = async (vm: string, disk: string) => hintPath(await cpi.call('attach_disk', [vm, disk]));
  try {
    const a = await newVm();
    const b = await newVm();
    const d = await cpi.call<string>('create_disk', [64, {}, a]);
    disks.push(d);
    let path = await attach(a, d);
    const sum = await writeData(docker, a, path, 4);
    await c('data written to a disk reads back the same', async () =>
      ensureEqual(await checksum(docker, a, path), sum, 'checksum'),
    );

    await c('survives reboot_vm', async () => {
      await cpi.call('reboot_vm', [a]);
      await waitRunning(docker, a);
      ensureEqual(await checksum(docker, a, path), sum, 'checksum after reboot');
    });
    await c('survives detach and attach to another VM', async () => {
      await cpi.call('detach_disk', [a, d]);
      path = await attach(b, d);
      ensureEqual(await checksum(docker, b, path), sum, 'checksum in the other VM');
    });
    let c3 = '';
    await c('survives deletion of the VM it was attached to', async () => {
      await cpi.call('delete_vm', [b]);
      ensureEqual(await cpi.call('has_disk', [d]), true, 'has_disk after delete_vm');
      c3 = await newVm();
      path = await attach(c3, d);
      ensureEqual(await checksum(docker, c3, path), sum, 'checksum after the VM was deleted');
    });
    await c('survives resize_disk (and the filesystem really grows)', async () => {
      const before = await fsSizeKiB(docker, c3, path);
      await cpi.call('detach_disk', [c3, d]);
      await cpi.call('resize_disk', [d, 160]);
      path = await attach(c3, d);
      ensureEqual(await checksum(docker, c3, path), sum, 'checksum after resize');
      const after = await fsSizeKiB(docker, c3, path);
      ensure(
        after > before + 64 * 1024,
        `the filesystem was ${before} KiB and is ${after} KiB after growing 64 -> 160 MiB`,
      );
    });
    let snap = '';
    await c('a snapshot taken while attached restores the data of that moment', async () => {
      snap = await cpi.call<string>('snapshot_disk', [d, { deployment: 'conformance' }]);
      snaps.push(snap);
      const changed = await writeData(docker, c3, path, 1);
      ensure(changed !== sum, 'the overwrite did not change the data');
      const restored = await cpi.call<string>('create_disk', [160, { snapshot_cid: snap }, a]);
      disks.push(restored);
      const rpath = await attach(a, restored);
      ensureEqual(await checksum(docker, a, rpath), sum, 'checksum of the restored disk');
      ensureEqual(await checksum(docker, c3, path), changed, 'the source disk keeps its newer data');
      await cpi.call('detach_disk', [a, restored]);
    });
    await c('a snapshot outlives its source disk; restoring into a larger disk keeps the data', async () => {
      await cpi.call('detach_disk', [c3, d]);
      await cpi.call('delete_disk', [d]);
      const restored = await cpi.call<string>('create_disk', [256, { snapshot_cid: snap }, null]);
      disks.push(restored);
      const rpath = await attach(c3, restored);
      ensureEqual(
        await checksum(docker, c3, rpath),
        sum,
        'checksum of the disk restored after the source was deleted',
      );
      const size = await fsSizeKiB(docker, c3, rpath);
      ensure(size > 200 * 1024, `restored into 256 MiB but the filesystem has ${size} KiB`);
    });
    await c('a second disk on the same VM does not disturb the first', async () => {
      const other = await cpi.call<string>('create_disk', [32, {}, c3]);
      disks.push(other);
      const opath = await attach(c3, other);
      const osum = await writeData(docker, c3, opath, 1);
      const list = await cpi.call<string[]>('get_disks', [c3]);
      ensure(list.includes(other) && list.length === 2, `get_disks says ${list.join(',')}`);
      await cpi.call('detach_disk', [c3, other]);
      const again = await attach(c3, other);
      ensureEqual(await checksum(docker, c3, again), osum, 'checksum of the second disk');
    });
  } finally {
    for (const vm of vms) await cpi.request('delete_vm', [vm]);
    for (const d of disks) await cpi.request('delete_disk', [d]);
    for (const s of snaps) await cpi.request('delete_snapshot', [s]);
  }
}
