import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensure, sameSet, short, sleep } from '../lib/assert.ts';
import type { CpiRun } from '../lib/cpi.ts';
import { PrivateEngine } from '../lib/engine.ts';
import { pickSubnet, refreshStemcellImages, type Suite } from '../lib/env.ts';
import { loopDevices, mountTable, type Scope } from '../lib/state.ts';
import {
  Addresses,
  checksum,
  createVm,
  hintPath,
  mountsInVm,
  persistentOf,
  readSettings,
  waitRunning,
  writeData,
} from '../lib/vm.ts';

/** An error a caller can act on: it names the engine or the connection, not just "failed". */
const CLEAR =
  /docker|engine|daemon|connect|socket|refused|unreachable|ENOENT|ECONN|reset|closed|timed? ?out|host/i;

/**
 * Stops and starts a private dockerd under running VMs (never the shared engine). Calls in flight
 * fail with clear errors; during the outage nothing is reported missing; afterwards the VMs run
 * again with their disks attached and their data intact, and new calls work.
 */
export async function runEngineRestart(suite: Suite): Promise<void> {
  const { reporter } = suite;
  if (!suite.isDocker) {
    reporter.skip('faults', 'engine restart', 'the CPI is not the Docker one');
    return;
  }
  const why = PrivateEngine.available();
  if (why) {
    reporter.fail('faults', 'engine restart: a private dockerd can be started', why);
    return;
  }
  const c = (name: string, fn: () => unknown) => reporter.check('faults', `engine restart: ${name}`, fn);
  const engine = await PrivateEngine.prepare();
  const dataDir = `/var/lib/bosh-conformance-${engine.tag}-engine2-data`;
  const config = structuredClone(suite.config) as {
    cloud: { plugin: string; properties: Record<string, Record<string, unknown>> };
  };
  config.cloud.properties[config.cloud.plugin] = {
    ...(config.cloud.properties[config.cloud.plugin] ?? {}),
    host: engine.host,
    data_dir: dataDir,
    default_network: 'none',
  };
  const configPath = join(suite.workDir, 'cpi-engine2.json');
  writeFileSync(configPath, JSON.stringify(config), { mode: 0o600 });
  const cpi = suite.cpi.withConfig(configPath);
  let stemcell = '';
  const vms: string[] = [];
  const disks: string[] = [];
  try {
    const started = await c('a private dockerd starts (own data root, exec root, socket; no bridge)', () =>
      engine.start(),
    );
    if (!started) return;
    const scope: Scope = {
      ...suite.scope,
      docker: engine.api,
      dataDir,
      subnetPrefix: pickSubnet(await engine.api.networks()),
      stemcellImageIds: new Set(),
    };
    const addresses = new Addresses(scope.subnetPrefix);
    reporter.log(
      `   private engine ${engine.host} (pid ${engine.pid}), subnet ${scope.subnetPrefix}0/24, data_dir ${dataDir}`,
    );
    stemcell = await cpi.call<string>('create_stemcell', [suite.stemcellImage, {}]);
    await refreshStemcellImages({ ...suite, stemcellCid: stemcell }, engine.api, scope.stemcellImageIds);

    const vm = await createVm(cpi, stemcell, addresses);
    vms.push(vm.cid);
    await waitRunning(engine.api, vm.cid);
    const disk = await cpi.call<string>('create_disk', [32, {}, vm.cid]);
    disks.push(disk);
    const path = hintPath(await cpi.call('attach_disk', [vm.cid, disk]));
    const sum = await writeData(engine.api, vm.cid, path, 2);
    const spare = await cpi.call<string>('create_disk', [16, {}, null]);
    disks.push(spare);

    // Calls in flight when the engine goes down.
    const inflight: Array<Promise<CpiRun>> = [
      cpi.request('create_vm', [`agent-${randomUUID()}`, stemcell, {}, addresses.network(), [], {}], {
        timeoutMs: 180_000,
      }),
      cpi.request('attach_disk', [vm.cid, spare], { timeoutMs: 180_000 }),
      cpi.request('snapshot_disk', [disk, {}], { timeoutMs: 180_000 }),
    ];
    await sleep(150);
    const stopping = engine.stop();
    const runs = await Promise.all(inflight);
    await stopping;
    await c(
      'calls in flight end with a well-formed response; failures name the engine or the connection',
      () => {
        const problems: string[] = [];
        for (const run of runs) {
          if (run.framing.length) problems.push(`${run.label}: ${run.framing.join('; ')}`);
          const e = run.response?.error;
          if (e && !CLEAR.test(e.message))
            problems.push(`${run.label}: unclear error ${e.type}: ${e.message}`);
        }
        ensure(problems.length === 0, problems.join('\n'));
      },
    );
    const created = runs[0]?.response?.result as [string] | undefined;
    if (created?.[0]) vms.push(created[0]);
    const snapshotTaken = runs[2]?.response?.result;

    // The outage: nothing may be reported missing.
    const outage = async (
      method: string,
      args: unknown[],
      forbidden: { result?: unknown; types?: string[] },
    ) => {
      const run = await cpi.request(method, args, { timeoutMs: 120_000 });
      ensure(run.framing.length === 0, `${method}: ${run.framing.join('; ')}`);
      const res = run.response;
      ensure(res, `${method}: no response`);
      if (!res.error) {
        ensure(
          !('result' in forbidden) || res.result !== forbidden.result,
          `${method} answered ${short(res.result)} while the engine is down`,
        );
        return;
      }
      ensure(
        !forbidden.types?.includes(res.error.type),
        `${method} answered ${res.error.type} while the engine is down: the caller would forget a live resource`,
      );
      ensure(CLEAR.test(res.error.message), `${method}: unclear error ${res.error.message}`);
    };
    await c('during the outage has_vm is an error, never false', async () => {
      const run = await cpi.request('has_vm', [vm.cid], { timeoutMs: 120_000 });
      ensure(run.response?.error, `has_vm answered ${short(run.response?.result ?? run.framing)}`);
      ensure(CLEAR.test(run.response.error.message), `unclear error: ${run.response.error.message}`);
    });
    await c('during the outage has_disk is never false, get_disks never []', async () => {
      await outage('has_disk', [disk], { result: false });
      await outage('get_disks', [vm.cid], { types: ['Bosh::Clouds::VMNotFound'] });
      const g = await cpi.request('get_disks', [vm.cid]);
      ensure(
        !(Array.isArray(g.response?.result) && (g.response.result as unknown[]).length === 0),
        'get_disks answered [] during the outage',
      );
    });
    await c('during the outage delete_vm / delete_disk never answer VMNotFound / DiskNotFound', async () => {
      await outage('delete_vm', [vm.cid], { types: ['Bosh::Clouds::VMNotFound'], result: null });
      await outage('delete_disk', [spare], { types: ['Bosh::Clouds::DiskNotFound'] });
    });
    await c('during the outage create_vm fails cleanly, info still works', async () => {
      const run = await cpi.request(
        'create_vm',
        [`agent-${randomUUID()}`, stemcell, {}, addresses.network(), [], {}],
        { timeoutMs: 120_000 },
      );
      ensure(run.response?.error, `create_vm answered ${short(run.response?.result ?? run.framing)}`);
      ensure(CLEAR.test(run.response.error.message), `unclear error: ${run.response.error.message}`);
      const info = await cpi.request('info', []);
      ensure(
        info.response && !info.response.error,
        `info failed: ${short(info.response?.error ?? info.framing)}`,
      );
    });

    await c('the private dockerd starts again', () => engine.start());
    await c('after the restart the VM runs again (restart policy) and has_vm is true', async () => {
      await waitRunning(engine.api, vm.cid, 90_000);
      ensure((await cpi.call('has_vm', [vm.cid])) === true, 'has_vm is false');
    });
    await c(
      'after the restart the disk is still attached: get_disks, settings and the VM mounts agree',
      async () => {
        const listed = await cpi.call<string[]>('get_disks', [vm.cid]);
        const attachedSpare = listed.includes(spare);
        const expect = attachedSpare ? [disk, spare] : [disk];
        ensure(sameSet(listed, expect), `get_disks says [${listed.join(', ')}]`);
        const persistent = persistentOf((await readSettings(engine.api, vm.cid)).settings);
        for (const d of Object.keys(persistent))
          ensure(listed.includes(d), `the settings name ${d}, which get_disks does not list`);
        ensure(disk in persistent, 'the settings lost the attached disk');
        const mounts = await mountsInVm(engine.api, vm.cid);
        ensure(mounts.includes(path), `the VM mounts [${mounts.join(', ')}], not ${path}`);
      },
    );
    await reporter.check('data safety', 'data on a persistent disk survives an engine restart', async () => {
      ensure((await checksum(engine.api, vm.cid, path)) === sum, 'the checksum changed');
    });
    await c('after the restart the calls that failed in flight succeed when retried', async () => {
      const attach = await cpi.call('attach_disk', [vm.cid, spare]);
      ensure(attach, 'attach_disk returned no hint');
      ensure(
        sameSet(await cpi.call<string[]>('get_disks', [vm.cid]), [disk, spare]),
        'get_disks after the retried attach',
      );
      const again = await createVm(cpi, stemcell, addresses);
      vms.push(again.cid);
      await waitRunning(engine.api, again.cid);
      const snap =
        typeof snapshotTaken === 'string'
          ? snapshotTaken
          : await cpi.call<string>('snapshot_disk', [disk, {}]);
      await cpi.call('delete_snapshot', [snap]);
    });
    await c(
      'after the restart every VM and disk deletes cleanly, leaving no container, volume or mount',
      async () => {
        for (const d of [spare, disk]) await cpi.call('detach_disk', [vm.cid, d]);
        for (const v of vms) {
          const run = await cpi.request('delete_vm', [v]);
          ensure(
            run.response && (!run.response.error || run.response.error.type === 'Bosh::Clouds::VMNotFound'),
            `delete_vm ${v}: ${short(run.response?.error)}`,
          );
        }
        vms.length = 0;
        for (const d of disks) await cpi.call('delete_disk', [d]);
        disks.length = 0;
        await cpi.call('delete_stemcell', [stemcell]);
        stemcell = '';
        // Calls that failed in flight may have left labelled pieces whose CID the caller never
        // learnt; their labels must let delete_vm find and remove them.
        const vmLabels = new Set<string>();
        for (const ct of await engine.api.containers())
          if (ct.Labels?.['io.bosh.cpi.vm']) vmLabels.add(ct.Labels['io.bosh.cpi.vm']);
        for (const v of await engine.api.volumes())
          if (v.Labels?.['io.bosh.cpi.vm']) vmLabels.add(v.Labels['io.bosh.cpi.vm']);
        for (const v of vmLabels) {
          const run = await cpi.request('delete_vm', [v]);
          ensure(
            run.response && (!run.response.error || run.response.error.type === 'Bosh::Clouds::VMNotFound'),
            `delete_vm of left-over ${v}: ${short(run.response?.error)}`,
          );
        }
        const unlabelled = (await engine.api.volumes()).filter(
          (v) => !v.Labels || !('io.bosh.cpi' in v.Labels),
        );
        ensure(unlabelled.length === 0, `unlabelled volumes: ${unlabelled.map((v) => v.Name).join(', ')}`);
        const left = (await engine.api.containers()).filter(
          (ct) => ct.Labels?.['io.bosh.cpi.role'] !== 'helper' && 'io.bosh.cpi' in (ct.Labels ?? {}),
        );
        ensure(left.length === 0, `containers left: ${left.map((ct) => ct.Names[0]).join(', ')}`);
        const vols = (await engine.api.volumes()).filter((v) => v.Labels && 'io.bosh.cpi' in v.Labels);
        ensure(vols.length === 0, `volumes left: ${vols.map((v) => v.Name).join(', ')}`);
        const loops = loopDevices().filter((l) => l.backFile.startsWith(`${dataDir}/`));
        ensure(loops.length === 0, `loop devices left: ${loops.map((l) => l.name).join(', ')}`);
      },
    );
  } finally {
    if (engine.pid) {
      for (const v of vms) await cpi.request('delete_vm', [v]).catch(() => undefined);
      for (const d of disks) await cpi.request('delete_disk', [d]).catch(() => undefined);
      if (stemcell) await cpi.request('delete_stemcell', [stemcell]).catch(() => undefined);
    }
    await engine.destroy();
    for (const m of mountTable()
      .map((x) => x.target)
      .filter((t) => t === dataDir || t.startsWith(`${dataDir}/`))
      .sort((a, b) => b.length - a.length))
      execFileSync('umount', ['-l', m], { stdio: 'ignore' });
    for (const l of loopDevices())
      if (l.backFile.startsWith(`${dataDir}/`)) execFileSync('losetup', ['-d', l.name], { stdio: 'ignore' });
    spawnSync('chattr', ['-R', '-f', '-i', dataDir]);
    rmSync(dataDir, { recursive: true, force: true });
  }
}
