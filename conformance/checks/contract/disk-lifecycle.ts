import { ensure, ensureEqual, ensureErrorType, sameSet, short } from '../../lib/assert.ts';
import type { CreatedVm } from '../../lib/vm.ts';
import { createVm, hintPath, mountsInVm, persistentOf, readSettings, waitRunning } from '../../lib/vm.ts';
import type { ContractRun, Created } from './context.ts';
import { missing } from './context.ts';
import { checkHint, checkSettingsShape } from './settings-shape.ts';

/** Disks on a VM: create, attach, detach, resize, update, snapshot, delete, and a VM deleted with a disk attached. */
export async function runDiskLifecycle(t: ContractRun, theVm: CreatedVm, created: Created): Promise<void> {
  const { suite, c, dockerOnly } = t;
  const { cpi, docker } = suite;
  const disk = async (size = 64, props: Record<string, unknown> = {}, vmCid: string | null = null) => {
    const cid = await cpi.call('create_disk', [size, props, vmCid]);
    ensure(typeof cid === 'string' && cid !== '', `create_disk returned ${short(cid)}`);
    created.disks.push(cid);
    return cid;
  };
  let d1 = '';
  let d2 = '';
  await c('create_disk returns a CID; has_disk is true', async () => {
    d1 = await disk(64, {}, theVm.cid);
    d2 = await disk(32);
    ensureEqual(await cpi.call('has_disk', [d1]), true, 'has_disk');
  });
  await c('get_disks of a VM without disks is [] (not null)', async () => {
    ensureEqual(await cpi.call('get_disks', [theVm.cid]), [], 'get_disks');
  });
  await c('detach_disk of a disk that is not attached is DiskNotAttached', async () => {
    ensureErrorType(
      await cpi.callError('detach_disk', [theVm.cid, d2]),
      'Bosh::Clouds::DiskNotAttached',
      'detach_disk',
    );
  });
  let hint: unknown;
  await c('attach_disk (v2) returns a non-empty hint of strings', async () => {
    hint = await cpi.call('attach_disk', [theVm.cid, d1], { apiVersion: 2 });
    checkHint(hint, 'attach_disk result');
  });
  await c('attach_disk (v1) returns null and still records the disk in the settings', async () => {
    ensureEqual(
      await cpi.call('attach_disk', [theVm.cid, d2], { apiVersion: 1 }),
      null,
      'attach_disk v1 result',
    );
    if (suite.isDocker)
      ensure(
        d2 in persistentOf((await readSettings(docker, theVm.cid)).settings),
        'disks.persistent lacks the v1-attached disk',
      );
  });
  await c('attach_disk of an attached disk to the same VM is harmless (a retry)', async () => {
    const again = await cpi.call('attach_disk', [theVm.cid, d1], { apiVersion: 2 });
    ensureEqual(again, hint, 'the hint of the repeated attach');
  });
  await c('get_disks lists exactly the attached disks', async () => {
    ensure(
      sameSet(await cpi.call<string[]>('get_disks', [theVm.cid]), [d1, d2]),
      'get_disks differs from what was attached',
    );
  });
  await dockerOnly(
    'get_disks, settings disks.persistent and the VM mounts agree; settings hints equal attach hints',
    async () => {
      const listed = await cpi.call<string[]>('get_disks', [theVm.cid]);
      const file = await readSettings(docker, theVm.cid);
      checkSettingsShape(suite, file, theVm);
      const persistent = persistentOf(file.settings);
      ensure(
        sameSet(Object.keys(persistent), listed),
        `settings name ${Object.keys(persistent).join(',')}, get_disks ${listed.join(',')}`,
      );
      ensureEqual(persistent[d1], hint, `settings hint of ${d1}`);
      const mounts = await mountsInVm(docker, theVm.cid);
      const paths = listed.map((d) => hintPath(persistent[d]));
      ensure(
        sameSet(mounts, paths),
        `mounted in the VM: ${mounts.join(',') || 'nothing'}; hints: ${paths.join(',')}`,
      );
    },
  );
  await c('set_disk_metadata returns null; of a missing disk it is an error', async () => {
    ensureEqual(
      await cpi.call('set_disk_metadata', [
        d1,
        {
          director: 'conformance',
          deployment: 'dep',
          instance_id: 'x',
          instance_index: '0',
          instance_group: 'web',
          attached_at: new Date().toISOString(),
        },
      ]),
      null,
      'result',
    );
    ensureErrorType(
      await cpi.callError('set_disk_metadata', [missing('disk'), { a: 'b' }]),
      ['Bosh::Clouds::DiskNotFound', 'Bosh::Clouds::CloudError'],
      'missing disk',
    );
  });
  await c('reboot_vm returns null; the VM comes back with its disks', async () => {
    const r = await cpi.call('reboot_vm', [theVm.cid]);
    ensure(r === null || r === '', `reboot_vm returned ${short(r)}`);
    if (suite.isDocker) await waitRunning(docker, theVm.cid, 60_000);
    ensure(
      sameSet(await cpi.call<string[]>('get_disks', [theVm.cid]), [d1, d2]),
      'get_disks changed across the reboot',
    );
    if (suite.isDocker) {
      const mounts = await mountsInVm(docker, theVm.cid);
      ensure(mounts.length === 2, `after the reboot the VM mounts ${mounts.join(',') || 'nothing'}`);
    }
  });
  let snap = '';
  await c('snapshot_disk returns a snapshot CID', async () => {
    snap = await cpi.call<string>('snapshot_disk', [
      d1,
      { director: 'conformance', deployment: 'dep', instance_id: 'x' },
    ]);
    ensure(typeof snap === 'string' && snap !== '', `result ${short(snap)}`);
    created.snaps.push(snap);
  });
  await c('detach_disk returns null; get_disks and settings follow', async () => {
    ensureEqual(await cpi.call('detach_disk', [theVm.cid, d2]), null, 'detach_disk result');
    ensureEqual(await cpi.call('get_disks', [theVm.cid]), [d1], 'get_disks');
    if (suite.isDocker) {
      ensure(
        sameSet(Object.keys(persistentOf((await readSettings(docker, theVm.cid)).settings)), [d1]),
        'disks.persistent still lists the detached disk',
      );
      ensure(
        sameSet(await mountsInVm(docker, theVm.cid), [hintPath(hint)]),
        'the VM still mounts the detached disk',
      );
    }
  });
  await c('detach_disk again is DiskNotAttached', async () => {
    ensureErrorType(
      await cpi.callError('detach_disk', [theVm.cid, d2]),
      'Bosh::Clouds::DiskNotAttached',
      'second detach_disk',
    );
  });
  await c('detach_disk of a missing disk is DiskNotFound or DiskNotAttached', async () => {
    ensureErrorType(
      await cpi.callError('detach_disk', [theVm.cid, missing('disk')]),
      ['Bosh::Clouds::DiskNotFound', 'Bosh::Clouds::DiskNotAttached'],
      'detach_disk',
    );
  });
  await c('attach_disk of a missing disk is DiskNotFound; to a missing VM VMNotFound', async () => {
    ensureErrorType(
      await cpi.callError('attach_disk', [theVm.cid, missing('disk')]),
      ['Bosh::Clouds::DiskNotFound'],
      'missing disk',
    );
    ensureErrorType(
      await cpi.callError('attach_disk', [missing('vm'), d2]),
      ['Bosh::Clouds::VMNotFound'],
      'missing VM',
    );
  });
  await c('resize_disk grows a detached disk; shrinking is NotSupported', async () => {
    ensureEqual(await cpi.call('resize_disk', [d2, 48]), null, 'resize_disk result');
    ensureErrorType(
      await cpi.callError('resize_disk', [d2, 16]),
      'Bosh::Clouds::NotSupported',
      'resize_disk to a smaller size',
    );
    ensureEqual(await cpi.call('has_disk', [d2]), true, 'has_disk after the refused shrink');
  });
  await c('update_disk: returns a CID or null; shrinking is NotSupported or NotImplemented', async () => {
    const run = await cpi.request('update_disk', [d2, 64, {}]);
    ensure(run.response, run.framing.join('; '));
    const e = run.response.error;
    if (e) {
      ensureErrorType(e, ['Bosh::Clouds::NotSupported', 'Bosh::Clouds::NotImplemented'], 'update_disk');
      return;
    }
    const r = run.response.result;
    ensure(r === null || typeof r === 'string', `update_disk returned ${short(r)}`);
    if (typeof r === 'string' && r !== d2) {
      created.disks.push(r);
      d2 = r;
    }
    ensureErrorType(
      await cpi.callError('update_disk', [d2, 16, {}]),
      ['Bosh::Clouds::NotSupported', 'Bosh::Clouds::NotImplemented'],
      'update_disk to a smaller size',
    );
  });
  await c('create_disk from a snapshot (cloud_properties.snapshot_cid) gives a new disk', async () => {
    const restored = await disk(64, { snapshot_cid: snap });
    ensureEqual(await cpi.call('has_disk', [restored]), true, 'has_disk of the restored disk');
    await cpi.call('delete_disk', [restored]);
  });
  await c('delete_snapshot returns null, twice (idempotent)', async () => {
    ensureEqual(await cpi.call('delete_snapshot', [snap]), null, 'first delete_snapshot');
    ensureEqual(await cpi.call('delete_snapshot', [snap]), null, 'second delete_snapshot');
  });
  await c('delete_disk returns null; then DiskNotFound; has_disk false', async () => {
    ensureEqual(await cpi.call('delete_disk', [d2]), null, 'delete_disk');
    ensureErrorType(
      await cpi.callError('delete_disk', [d2]),
      'Bosh::Clouds::DiskNotFound',
      'second delete_disk',
    );
    ensureEqual(await cpi.call('has_disk', [d2]), false, 'has_disk after delete');
  });
  await c('delete_vm with a disk attached: the disk survives and can be attached elsewhere', async () => {
    ensureEqual(await cpi.call('delete_vm', [theVm.cid]), null, 'delete_vm');
    ensureEqual(await cpi.call('has_vm', [theVm.cid]), false, 'has_vm after delete');
    ensureEqual(await cpi.call('has_disk', [d1]), true, 'has_disk of the disk that was attached');
    if (suite.isDocker) ensure(!(await docker.vmContainer(theVm.cid)), 'the container is still there');
    const other = await createVm(cpi, suite.stemcellCid, suite.addresses);
    created.vms.push(other.cid);
    checkHint(await cpi.call('attach_disk', [other.cid, d1]), 'attach to another VM');
    ensureEqual(await cpi.call('get_disks', [other.cid]), [d1], 'get_disks of the other VM');
    await cpi.call('detach_disk', [other.cid, d1]);
    await cpi.call('delete_vm', [other.cid]);
  });
  await c('delete_vm again is VMNotFound (idempotent)', async () => {
    ensureErrorType(
      await cpi.callError('delete_vm', [theVm.cid]),
      'Bosh::Clouds::VMNotFound',
      'second delete_vm',
    );
  });
}
