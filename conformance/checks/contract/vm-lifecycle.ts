import { randomUUID } from 'node:crypto';
import { ensure, ensureEqual, sameSet, short } from '../../lib/assert.ts';
import type { CreatedVm } from '../../lib/vm.ts';
import { type createVm, persistentOf, readSettings, waitRunning } from '../../lib/vm.ts';
import type { ContractRun, Created } from './context.ts';
import { checkSettingsShape } from './settings-shape.ts';

/** A VM and its settings: create_vm in each API version, has_vm, set_vm_metadata. Returns the VM the disk checks use. */
export async function runVmLifecycle(
  t: ContractRun,
  maxApi: number,
  created: Created,
): Promise<CreatedVm | undefined> {
  const { suite, c, dockerOnly } = t;
  const { cpi, reporter, docker } = suite;
  const env = {
    bosh: {
      password: suite.secrets.envPassword,
      keep_root_password: false,
      authorized_keys: ['ssh-ed25519 AAAAC3Nza conformance'],
      mbus: {
        urls: ['nats://127.0.0.1:4222'],
        cert: { ca: 'ca', certificate: 'cert', private_key: suite.secrets.envPrivateKey },
      },
      blobstores: [{ provider: 'local', options: { blobstore_path: '/var/vcap/micro_bosh/data/cache' } }],
      tags: { ünïcode: 'välue ✓', empty: '' },
      swap_size: 0,
      job_dir: { tmpfs: true, tmpfs_size: '16m' },
      parallel: 5,
      ipv6: { enable: false },
    },
    persistent_disk_fs: 'ext4',
    nothing: null,
    list: [1, 'two', { three: [3] }],
  };
  let vm: Awaited<ReturnType<typeof createVm>> | undefined;
  await c('create_vm (v2) returns [vm_cid, networks]', async () => {
    const agentId = `agent-${randomUUID()}`;
    const networks = suite.addresses.network();
    const r = await cpi.call('create_vm', [agentId, suite.stemcellCid, {}, networks, [], env], {
      apiVersion: 2,
    });
    ensure(
      Array.isArray(r) && r.length === 2 && typeof r[0] === 'string' && r[0] !== '',
      `result ${short(r)}`,
    );
    ensure(
      r[1] !== null && typeof r[1] === 'object' && !Array.isArray(r[1]),
      `networks part ${short(r[1])} is not an object`,
    );
    ensure(
      sameSet(Object.keys(r[1]), Object.keys(networks)),
      `networks part names ${Object.keys(r[1]).join(',')}`,
    );
    vm = { cid: r[0], agentId, networks, env };
    created.vms.push(r[0]);
  });
  if (!vm) {
    reporter.fail('contract', 'the remaining contract checks need a VM', 'create_vm failed; skipping them');
    return undefined;
  }
  const theVm = vm;
  await c('has_vm is true for the new VM', async () =>
    ensureEqual(await cpi.call('has_vm', [theVm.cid]), true, 'has_vm'),
  );
  await dockerOnly('the VM is a running container labelled io.bosh.cpi', async () => {
    await waitRunning(docker, theVm.cid, 30_000);
    const ct = await docker.vmContainer(theVm.cid);
    ensure(ct?.Labels && 'io.bosh.cpi' in ct.Labels, 'the container lacks the io.bosh.cpi label');
  });
  await dockerOnly('agent settings: schema, env verbatim, mode 0600', async () => {
    checkSettingsShape(suite, await readSettings(docker, theVm.cid), theVm);
  });
  await dockerOnly('agent settings: disks.persistent starts empty', async () => {
    ensureEqual(persistentOf((await readSettings(docker, theVm.cid)).settings), {}, 'disks.persistent');
  });
  await c('create_vm (v1, no api_version) returns the bare CID', async () => {
    const r = await cpi.call(
      'create_vm',
      [`agent-${randomUUID()}`, suite.stemcellCid, {}, suite.addresses.network(), null, {}],
      { apiVersion: null },
    );
    ensure(typeof r === 'string' && r !== '', `result ${short(r)}`);
    created.vms.push(r);
    ensureEqual(await cpi.call('delete_vm', [r]), null, 'delete_vm result');
  });
  if (maxApi >= 3) {
    await c('create_vm (v3) returns [vm_cid, networks]', async () => {
      const r = await cpi.call(
        'create_vm',
        [`agent-${randomUUID()}`, suite.stemcellCid, {}, suite.addresses.network(), [], {}],
        { apiVersion: 3 },
      );
      ensure(Array.isArray(r) && typeof r[0] === 'string', `result ${short(r)}`);
      created.vms.push(r[0]);
      await cpi.call('delete_vm', [r[0]]);
    });
  }
  await c('set_vm_metadata returns null', async () => {
    const meta = {
      director: 'conformance',
      deployment: 'dep',
      instance_group: 'web',
      job: 'web',
      id: randomUUID(),
      name: 'web/abc',
      index: '0',
      created_at: new Date().toISOString(),
    };
    ensureEqual(await cpi.call('set_vm_metadata', [theVm.cid, meta]), null, 'result');
  });

  return theVm;
}
