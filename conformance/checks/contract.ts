import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { CheckError, ensure, ensureEqual, ensureErrorType, sameSet, short } from '../lib/assert.ts';
import { KNOWN_ERROR_TYPES } from '../lib/cpi.ts';
import type { Suite } from '../lib/env.ts';
import { describeDiff, isEmpty, settledDiff, snapshot } from '../lib/state.ts';
import { createVm, hintPath, mountsInVm, persistentOf, readSettings, waitRunning } from '../lib/vm.ts';

/** Every method of the contract (protocol.md §3); the suite exercises each at least once. */
export const METHODS = [
  'info',
  'create_stemcell',
  'delete_stemcell',
  'create_vm',
  'delete_vm',
  'has_vm',
  'reboot_vm',
  'set_vm_metadata',
  'calculate_vm_cloud_properties',
  'create_disk',
  'delete_disk',
  'has_disk',
  'attach_disk',
  'detach_disk',
  'set_disk_metadata',
  'get_disks',
  'resize_disk',
  'update_disk',
  'snapshot_disk',
  'delete_snapshot',
  'create_network',
  'delete_network',
  'current_vm_id',
  'configure_networks',
  'ping',
] as const;

const missing = (kind: string) => `${kind}-${randomUUID()}`;

/** A hint the agent can use: a non-empty string, or a non-empty object whose values are all strings. */
function checkHint(hint: unknown, what: string): void {
  if (typeof hint === 'string') {
    ensure(hint !== '', `${what}: the hint is an empty string`);
    return;
  }
  ensure(
    hint !== null && typeof hint === 'object' && !Array.isArray(hint),
    `${what}: the hint ${short(hint)} is neither a string nor an object`,
  );
  const entries = Object.entries(hint as Record<string, unknown>);
  ensure(entries.length > 0, `${what}: the hint is an empty object`);
  for (const [k, v] of entries)
    ensure(
      typeof v === 'string',
      `${what}: hint value ${k} is ${short(v)}, not a string (the agent's unchecked type assertion crashes on it)`,
    );
}

/** The settings file against protocol.md §4.1 and what create_vm was given. */
export function checkSettingsShape(
  suite: Suite,
  file: { mode: string; settings: Record<string, unknown> },
  vm: { cid: string; agentId: string; networks: Record<string, unknown>; env: Record<string, unknown> },
): void {
  const s = file.settings;
  ensure(
    file.mode === '600',
    `the settings file has mode ${file.mode}, not 600 (it holds the mbus password)`,
  );
  ensureEqual(s.agent_id, vm.agentId, 'settings.agent_id');
  const vmSection = s.vm as Record<string, unknown> | undefined;
  ensure(
    vmSection && typeof vmSection.name === 'string' && vmSection.name !== '',
    'settings.vm.name is missing or not a string',
  );
  ensureEqual(vmSection?.name, vm.cid, 'settings.vm.name');
  const agent = (suite.config.cloud as { properties: { agent: { mbus: string } } }).properties.agent;
  ensureEqual(s.mbus, agent.mbus, 'settings.mbus (from the config)');
  ensure(
    Array.isArray(s.ntp) && s.ntp.every((x) => typeof x === 'string'),
    `settings.ntp is ${short(s.ntp)}, not a list of strings`,
  );
  const disks = s.disks as Record<string, unknown> | undefined;
  ensure(disks && typeof disks === 'object', 'settings.disks is missing');
  ensure(
    typeof disks.system === 'string',
    `settings.disks.system is ${short(disks.system)}, not a string (an object breaks the agent)`,
  );
  const persistent = disks.persistent;
  ensure(
    persistent !== null && typeof persistent === 'object' && !Array.isArray(persistent),
    'settings.disks.persistent is not an object',
  );
  for (const [cid, hint] of Object.entries(persistent as Record<string, unknown>))
    checkHint(hint, `settings.disks.persistent.${cid}`);
  if (disks.ephemeral !== undefined && disks.ephemeral !== null && typeof disks.ephemeral !== 'string')
    checkHint(disks.ephemeral, 'settings.disks.ephemeral');
  ensure(
    isDeepStrictEqual(s.env, vm.env),
    () => `settings.env is not create_vm's env verbatim: ${short(s.env, 500)} vs ${short(vm.env, 500)}`,
  );
  const nets = s.networks as Record<string, Record<string, unknown>> | undefined;
  ensure(nets && typeof nets === 'object', 'settings.networks is missing');
  ensure(
    sameSet(Object.keys(nets), Object.keys(vm.networks)),
    `settings.networks has ${Object.keys(nets).join(',')}, create_vm gave ${Object.keys(vm.networks).join(',')}`,
  );
  for (const [name, spec] of Object.entries(vm.networks as Record<string, Record<string, unknown>>)) {
    const got = nets[name] ?? {};
    ensureEqual(got.type, spec.type, `settings.networks.${name}.type`);
    if (spec.ip) ensureEqual(got.ip, spec.ip, `settings.networks.${name}.ip`);
    ensure(
      got.preconfigured === true,
      `settings.networks.${name}.preconfigured is ${short(got.preconfigured)}: in a container the agent must not touch interfaces`,
    );
  }
  if (s.blobstore !== undefined) {
    const b = s.blobstore as Record<string, unknown>;
    ensure(
      typeof b.provider === 'string' && typeof b.options === 'object',
      `settings.blobstore ${short(b)} lacks provider/options`,
    );
  }
}

export async function runContract(suite: Suite): Promise<void> {
  const { cpi, reporter, docker } = suite;
  const c = (name: string, fn: () => unknown) => reporter.check('contract', name, fn);
  const dockerOnly = async (name: string, fn: () => unknown) => {
    if (suite.isDocker) return c(name, fn);
    reporter.skip('contract', name, 'the CPI is not the Docker one');
    return false;
  };

  let maxApi = 1;
  await c(
    'info: {stemcell_formats: string[], api_version >= 2} (Director request, no api_version)',
    async () => {
      const info = await cpi.call<Record<string, unknown>>('info', [], { apiVersion: null });
      ensure(info && typeof info === 'object', `info returned ${short(info)}`);
      ensure(
        Array.isArray(info.stemcell_formats) && info.stemcell_formats.every((f) => typeof f === 'string'),
        `stemcell_formats is ${short(info.stemcell_formats)}`,
      );
      ensure(
        Number.isInteger(info.api_version) && (info.api_version as number) >= 2,
        `api_version is ${short(info.api_version)}; the Director needs >= 2`,
      );
      maxApi = info.api_version as number;
    },
  );
  await c('info: same answer to the CLI (api_version 1 in the request, no context vm)', async () => {
    const info = await cpi.call<Record<string, unknown>>('info', [], { apiVersion: 1 });
    ensure(Array.isArray(info.stemcell_formats), `stemcell_formats is ${short(info.stemcell_formats)}`);
  });
  await c('info: works with the Director environment (PATH only, nothing else)', async () => {
    const run = await cpi.request('info', [], {
      apiVersion: null,
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    ensure(run.response && !run.response.error, `info failed: ${short(run.response?.error ?? run.framing)}`);
  });
  await c('an api_version above the one info reports is refused with a known error', async () => {
    const e = await cpi.callError('has_vm', [missing('vm')], { apiVersion: maxApi + 1 });
    ensure(KNOWN_ERROR_TYPES.has(e.type), `type ${e.type}`);
  });
  await c('an unknown method is Bosh::Clouds::NotImplemented', async () => {
    ensureErrorType(
      await cpi.callError('no_such_method', []),
      'Bosh::Clouds::NotImplemented',
      'no_such_method',
    );
  });
  for (const [method, args, types] of [
    ['current_vm_id', [], ['Bosh::Clouds::NotImplemented']],
    ['ping', [], ['Bosh::Clouds::NotImplemented']],
    [
      'configure_networks',
      [missing('vm'), suite.addresses.network()],
      ['Bosh::Clouds::NotSupported', 'Bosh::Clouds::NotImplemented'],
    ],
  ] as const) {
    await c(`${method} answers ${types.join(' or ')}`, async () => {
      ensureErrorType(
        await cpi.callError(method, [...args], { apiVersion: method === 'configure_networks' ? 1 : 2 }),
        [...types],
        method,
      );
    });
  }
  await c('create_network / delete_network: implemented or NotImplemented', async () => {
    for (const [method, args] of [
      [
        'create_network',
        [
          {
            type: 'manual',
            cloud_properties: {},
            range: `${suite.subnetPrefix}0/24`,
            gateway: `${suite.subnetPrefix}1`,
          },
        ],
      ],
      ['delete_network', [missing('net')]],
    ] as const) {
      const run = await cpi.request(method, [...args]);
      ensure(run.response, `${method}: ${run.framing.join('; ')}`);
      const e = run.response.error;
      if (e && e.type === 'Bosh::Clouds::NotImplemented') continue;
      if (method === 'create_network' && !e) {
        const r = run.response.result;
        ensure(
          Array.isArray(r) && r.length === 3 && typeof r[0] === 'string',
          `create_network returned ${short(r)}, not [id, {range,gateway,reserved}, cloud_properties]`,
        );
        await cpi.call('delete_network', [r[0]]);
      }
      if (method === 'delete_network' && e)
        ensureErrorType(e, 'Bosh::Clouds::NetworkNotFound', 'delete_network of a missing network');
    }
  });
  await c('calculate_vm_cloud_properties returns an object', async () => {
    const r = await cpi.call('calculate_vm_cloud_properties', [
      { cpu: 2, ram: 1024, ephemeral_disk_size: 2048 },
    ]);
    ensure(r !== null && typeof r === 'object' && !Array.isArray(r), `returned ${short(r)}`);
  });

  // Missing resources and the exact error types callers depend on.
  await c('delete_vm of a missing VM is VMNotFound', async () => {
    ensureErrorType(
      await cpi.callError('delete_vm', [missing('vm')]),
      'Bosh::Clouds::VMNotFound',
      'delete_vm',
    );
    ensureErrorType(
      await cpi.callError('delete_vm', ['i-0123456789abcdef']),
      'Bosh::Clouds::VMNotFound',
      'delete_vm of a foreign-looking CID',
    );
  });
  await c('delete_disk of a missing disk is DiskNotFound', async () => {
    ensureErrorType(
      await cpi.callError('delete_disk', [missing('disk')]),
      'Bosh::Clouds::DiskNotFound',
      'delete_disk',
    );
    ensureErrorType(
      await cpi.callError('delete_disk', ['vol-0123456789abcdef']),
      'Bosh::Clouds::DiskNotFound',
      'delete_disk of a foreign-looking CID',
    );
  });
  await c('has_vm / has_disk of missing resources are false (real booleans)', async () => {
    ensureEqual(await cpi.call('has_vm', [missing('vm')]), false, 'has_vm');
    ensureEqual(await cpi.call('has_disk', [missing('disk')]), false, 'has_disk');
  });
  await c(
    'delete_stemcell of a missing stemcell succeeds quietly (the Director does not know StemcellNotFound)',
    async () => {
      ensureEqual(await cpi.call('delete_stemcell', [missing('stemcell')]), null, 'delete_stemcell result');
    },
  );
  await c(
    'get_disks / reboot_vm / set_vm_metadata of a missing VM are errors, not answers about nothing',
    async () => {
      for (const [m, args] of [
        ['get_disks', [missing('vm')]],
        ['reboot_vm', [missing('vm')]],
        ['set_vm_metadata', [missing('vm'), { director: 'd' }]],
      ] as const) {
        const e = await cpi.callError(m, [...args]);
        ensureErrorType(e, ['Bosh::Clouds::VMNotFound', 'Bosh::Clouds::CloudError'], m);
      }
    },
  );
  await c('create_vm from a missing stemcell fails and creates nothing', async () => {
    const before = await snapshot(suite.scope);
    const e = await cpi.callError('create_vm', [
      'agent-x',
      missing('stemcell'),
      {},
      suite.addresses.network(),
      [],
      {},
    ]);
    ensureErrorType(e, ['Bosh::Clouds::VMCreationFailed', 'Bosh::Clouds::CloudError'], 'create_vm');
    const d = await settledDiff(suite.scope, before);
    ensure(isEmpty(d), () => `it left:\n${describeDiff(d)}`);
  });

  // A VM and its settings.
  const created: { vms: string[]; disks: string[]; snaps: string[] } = { vms: [], disks: [], snaps: [] };
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
    return;
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

  // Disks.
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
  await c('create_stemcell (v2, two arguments) and delete_stemcell twice', async () => {
    const cid = await cpi.call<string>('create_stemcell', [suite.stemcellImage, {}], { apiVersion: 2 });
    ensure(typeof cid === 'string' && cid !== '', `create_stemcell returned ${short(cid)}`);
    ensureEqual(await cpi.call('delete_stemcell', [cid]), null, 'delete_stemcell');
    ensureEqual(await cpi.call('delete_stemcell', [cid]), null, 'second delete_stemcell');
  });
  await c('create_stemcell of a missing image fails', async () => {
    const e = await cpi.callError('create_stemcell', ['/nonexistent/conformance/image', {}]);
    ensure(KNOWN_ERROR_TYPES.has(e.type), e.type);
  });
  // Leave nothing behind for later categories.
  for (const d of created.disks) await cpi.request('delete_disk', [d]);
  for (const v of created.vms) await cpi.request('delete_vm', [v]);
  if (suite.isDocker) {
    await c('after deleting everything, no container of the deleted VMs remains', async () => {
      for (const v of created.vms) ensure(!(await docker.vmContainer(v)), `container of ${v} remains`);
    });
  }
}

/** Per method: every response the suite received was framed correctly (one JSON object, exit 0, ...). */
export async function finishFraming(suite: Suite, requireAll = true): Promise<void> {
  const runs = suite.cpi.allRuns.filter((r) => !r.killed);
  for (const method of METHODS) {
    const of = runs.filter((r) => r.label.startsWith(`${method}(`));
    if (of.length === 0 && !requireAll) continue;
    await suite.reporter.check(
      'contract',
      `framing: all ${of.length} ${method} responses of the run are one JSON object each, exit 0`,
      () => {
        if (of.length === 0 && requireAll) throw new CheckError(`${method} was never called`);
        const bad = of.filter((r) => r.framing.length);
        if (bad.length)
          throw new CheckError(
            bad
              .slice(0, 3)
              .map((r) => `${r.label}: ${r.framing.join('; ')}`)
              .join('\n'),
          );
        const badLog = of.filter((r) => typeof r.response?.log !== 'string');
        if (badLog.length) throw new CheckError('log is not a string');
      },
    );
  }
}
