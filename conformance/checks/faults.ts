import { randomUUID } from 'node:crypto';
import { ensure, sameSet, short } from '../lib/assert.ts';
import { KillTally } from '../lib/cpi.ts';
import type { Suite } from '../lib/env.ts';
import { describeDiff, type Snapshot, settledDiff, snapshot, waitForStillness } from '../lib/state.ts';
import {
  checksum,
  createVm,
  execInVm,
  hintPath,
  mountsInVm,
  persistentOf,
  readSettings,
  waitRunning,
  writeData,
} from '../lib/vm.ts';
import { runHostFaults } from './host-checks.ts';

export const FAULT_OPS = [
  'create_vm',
  'create_disk',
  'attach_disk',
  'detach_disk',
  'snapshot_disk',
  'delete_vm',
] as const;
type Op = (typeof FAULT_OPS)[number];

/** Names in the snapshot that appeared since `before` (paths split into their components). */
function newNames(before: Snapshot, after: Snapshot): string[] {
  const names = new Set<string>();
  for (const path of Object.keys(after.files)) {
    if (path in before.files) continue;
    for (const part of path.split('/')) names.add(part);
  }
  return [...names];
}

/** VM CIDs on the run's new containers and VM-less volumes (from the CPI's labels). */
async function newVmLabels(suite: Suite, before: Snapshot): Promise<{ vms: string[]; unlabelled: string[] }> {
  const after = await snapshot(suite.scope);
  const vms = new Set<string>();
  const unlabelled: string[] = [];
  for (const ct of await suite.docker.containers()) {
    const key = ct.Id.slice(0, 12);
    if (!(key in after.containers) || key in before.containers) continue;
    const vm = ct.Labels?.['io.bosh.cpi.vm'];
    if (vm) vms.add(vm);
    if (!ct.Labels || !('io.bosh.cpi' in ct.Labels) || !vm) unlabelled.push(`container ${ct.Names[0]}`);
  }
  for (const v of await suite.docker.volumes()) {
    if (!(v.Name in after.volumes) || v.Name in before.volumes) continue;
    const vm = v.Labels?.['io.bosh.cpi.vm'];
    if (!v.Labels || !('io.bosh.cpi' in v.Labels) || !vm) unlabelled.push(`volume ${v.Name}`);
    else vms.add(vm);
  }
  return { vms: [...vms], unlabelled };
}

/** The attachment as the CPI reports it, as the agent would read it, and as the VM really has it. */
async function attachmentView(suite: Suite, vm: string) {
  const listed = await suite.cpi.call<string[]>('get_disks', [vm]);
  const file = await readSettings(suite.docker, vm);
  const persistent = persistentOf(file.settings);
  const mounts = await mountsInVm(suite.docker, vm);
  return { listed, persistent, mounts };
}

/**
 * The invariants that must hold once a killed call's leftovers have settled: what get_disks says
 * is mounted is mounted; and the settings never name a disk that is not mounted (the agent would
 * bind-mount an empty directory onto /var/vcap/store and write the job's data into the container).
 */
async function attachmentSane(suite: Suite, vm: string, disk: string): Promise<string[]> {
  const problems: string[] = [];
  const v = await attachmentView(suite, vm);
  const hintOf = (d: string) =>
    v.persistent[d] !== undefined ? hintPath(v.persistent[d]) : `/warden-cpi-dev/${d}`;
  const mountedDisks = [disk].filter((d) => v.mounts.includes(hintOf(d)));
  if (sameSet(v.listed, mountedDisks) === false)
    problems.push(`get_disks says [${v.listed.join(', ')}] but the VM mounts [${v.mounts.join(', ')}]`);
  for (const d of Object.keys(v.persistent))
    if (!v.mounts.includes(hintOf(d)))
      problems.push(`the settings name ${d} at ${hintOf(d)}, which is not mounted in the VM`);
  return problems;
}

export async function runFaults(suite: Suite): Promise<void> {
  const { cpi, reporter, docker } = suite;
  if (suite.hostProbe) return runHostFaults(suite, suite.hostProbe);
  if (!suite.isDocker) {
    reporter.skip('faults', 'kill -9 faults', 'their invariants read the VM through docker exec');
    return;
  }
  const c = (name: string, fn: () => unknown) => reporter.check('faults', name, fn);
  const total = Number(process.env.CONFORMANCE_FAULT_RUNS ?? suite.scale.faultRuns);
  const live = { vms: new Set<string>(), disks: new Set<string>(), snaps: new Set<string>() };
  const vmOf = async () => {
    const vm = await createVm(cpi, suite.stemcellCid, suite.addresses);
    live.vms.add(vm.cid);
    await waitRunning(docker, vm.cid);
    return vm.cid;
  };

  try {
    // A workhorse VM and disk for attach/detach/snapshot runs, with data on the disk.
    const w = await vmOf();
    const d = await cpi.call<string>('create_disk', [32, {}, w]);
    live.disks.add(d);
    const path = hintPath(await cpi.call('attach_disk', [w, d]));
    const sum = await writeData(docker, w, path, 1);
    let attached = true;

    // Calibrate: how long each operation takes uninterrupted, so kill points spread over all of it.
    const durations: Record<Op, number> = {
      create_vm: 800,
      create_disk: 200,
      attach_disk: 400,
      detach_disk: 400,
      snapshot_disk: 300,
      delete_vm: 500,
    };
    {
      const t0 = performance.now();
      const cal = await createVm(cpi, suite.stemcellCid, suite.addresses);
      durations.create_vm = performance.now() - t0;
      const t1 = performance.now();
      await cpi.call('delete_vm', [cal.cid]);
      durations.delete_vm = performance.now() - t1;
      const t2 = performance.now();
      const cd = await cpi.call<string>('create_disk', [16, {}, null]);
      durations.create_disk = performance.now() - t2;
      const t3 = performance.now();
      const s = await cpi.call<string>('snapshot_disk', [cd, {}]);
      durations.snapshot_disk = performance.now() - t3;
      await cpi.call('delete_snapshot', [s]);
      const t4 = performance.now();
      await cpi.call('detach_disk', [w, d]);
      durations.detach_disk = performance.now() - t4;
      const t5 = performance.now();
      await cpi.call('attach_disk', [w, d]);
      durations.attach_disk = performance.now() - t5;
      await cpi.call('delete_disk', [cd]);
    }
    reporter.log(
      `   calibrated (ms): ${Object.entries(durations)
        .map(([k, v]) => `${k} ${Math.round(v)}`)
        .join(', ')}`,
    );

    const killAt = (op: Op) => Math.round(20 + Math.random() * durations[op] * 0.9);
    const counts = new KillTally();

    for (let i = 0; i < total; i++) {
      const only = process.env.CONFORMANCE_FAULT_OPS?.split(',');
      const ops = only ? FAULT_OPS.filter((o) => only.includes(o)) : FAULT_OPS;
      const op = ops[i % ops.length] as Op;
      const t = killAt(op);
      const label = `kill -9 #${i + 1} in ${op} at ${t} ms`;
      if (op === 'create_vm') {
        const before = await snapshot(suite.scope);
        const args = [`agent-${randomUUID()}`, suite.stemcellCid, {}, suite.addresses.network(), [], {}];
        const run = await cpi.request('create_vm', args, { killAfterMs: t });
        const result = run.response?.result as [string] | undefined;
        if (result?.[0]) live.vms.add(result[0]);
        await c(
          `${label} (${counts.note(run)}): leftovers are labelled, known to has_vm and removed by delete_vm; a retry succeeds`,
          async () => {
            await waitForStillness(suite.scope);
            const { vms, unlabelled } = await newVmLabels(suite, before);
            ensure(unlabelled.length === 0, `unlabelled leftovers: ${unlabelled.join(', ')}`);
            for (const vm of vms) {
              const has = await cpi.call('has_vm', [vm]);
              const del = await cpi.request('delete_vm', [vm]);
              ensure(
                del.response &&
                  (!del.response.error || del.response.error.type === 'Bosh::Clouds::VMNotFound'),
                `delete_vm of leftover ${vm}: ${short(del.response?.error ?? del.framing)}`,
              );
              ensure(
                has === true || del.response?.error?.type === 'Bosh::Clouds::VMNotFound',
                `has_vm(${vm}) is ${has}`,
              );
              live.vms.delete(vm);
            }
            const retry = await createVm(cpi, suite.stemcellCid, suite.addresses);
            await cpi.call('delete_vm', [retry.cid]);
            const diff = await settledDiff(suite.scope, before);
            ensure(
              diff.added.length === 0,
              () =>
                `after deleting every labelled leftover through the CPI, still there:\n${describeDiff({ added: diff.added, removed: [] })}`,
            );
          },
        );
      } else if (op === 'create_disk') {
        const before = await snapshot(suite.scope);
        const run = await cpi.request('create_disk', [16, {}, w], { killAfterMs: t });
        await c(
          `${label} (${counts.note(run)}): the disk is whole (has_disk, deletable) or absent; a retry succeeds`,
          async () => {
            const after = await waitForStillness(suite.scope);
            const result = run.response?.result;
            const candidates = new Set(newNames(before, after));
            if (typeof result === 'string') candidates.add(result);
            for (const name of candidates) {
              if (!name || name.startsWith('.')) continue;
              if ((await cpi.request('has_disk', [name])).response?.result === true) {
                const del = await cpi.request('delete_disk', [name]);
                ensure(
                  !del.response?.error,
                  `delete_disk of the left-over disk ${name}: ${short(del.response?.error ?? del.framing)}`,
                );
              }
            }
            const retry = await cpi.call<string>('create_disk', [16, {}, w]);
            ensure((await cpi.call('has_disk', [retry])) === true, 'has_disk of the retried disk is false');
            await cpi.call('delete_disk', [retry]);
            const diff = await settledDiff(suite.scope, before);
            ensure(
              diff.added.length === 0,
              () =>
                `partial leftovers no CPI call can find or remove:\n${describeDiff({ added: diff.added, removed: [] })}`,
            );
          },
        );
      } else if (op === 'attach_disk' || op === 'detach_disk') {
        // attach runs need the disk detached first, detach runs need it attached.
        const want = op === 'detach_disk';
        if (attached !== want) {
          await cpi.call(want ? 'attach_disk' : 'detach_disk', [w, d]);
          attached = want;
        }
        const run = await cpi.request(op, [w, d], { killAfterMs: t });
        await c(
          `${label} (${counts.note(run)}): get_disks tells the truth, settings never name an unmounted disk; a retry converges`,
          async () => {
            await waitForStillness(suite.scope);
            const problems = await attachmentSane(suite, w, d);
            const retry = await cpi.request(op, [w, d]);
            const e = retry.response?.error;
            const okRetry =
              retry.response && (!e || (op === 'detach_disk' && e.type === 'Bosh::Clouds::DiskNotAttached'));
            if (!okRetry) problems.push(`the retried ${op}: ${short(e ?? retry.framing)}`);
            attached = op === 'attach_disk';
            const v = await attachmentView(suite, w);
            const expect = attached ? [d] : [];
            if (!sameSet(v.listed, expect))
              problems.push(`after the retry get_disks says [${v.listed.join(', ')}]`);
            if (!sameSet(Object.keys(v.persistent), expect))
              problems.push(`after the retry the settings name [${Object.keys(v.persistent).join(', ')}]`);
            if (v.mounts.length !== expect.length)
              problems.push(`after the retry the VM mounts [${v.mounts.join(', ')}]`);
            if (attached) {
              const got = await checksum(docker, w, path);
              if (got !== sum) problems.push('the data on the disk changed');
            }
            ensure(problems.length === 0, problems.join('\n'));
          },
        );
      } else if (op === 'snapshot_disk') {
        if (!attached) {
          await cpi.call('attach_disk', [w, d]);
          attached = true;
        }
        const before = await snapshot(suite.scope);
        const run = await cpi.request('snapshot_disk', [d, {}], { killAfterMs: t });
        if (typeof run.response?.result === 'string') live.snaps.add(run.response.result);
        await c(
          `${label} (${counts.note(run)}): the disk is not left frozen, its data is intact; a retry succeeds and restores`,
          async () => {
            const after = await waitForStillness(suite.scope);
            const write = await execInVm(docker, w, `echo ok > ${path}/after-kill && sync`, 15_000);
            ensure(
              write.code === 0,
              `writing to the disk after the kill failed or hung (frozen filesystem?): ${write.stderr}`,
            );
            ensure((await checksum(docker, w, path)) === sum, 'the data on the disk changed');
            for (const name of newNames(before, after)) {
              if (!name || name.startsWith('.')) continue;
              if ((await cpi.request('has_disk', [name])).response?.result === true) continue;
              await cpi.request('delete_snapshot', [name]);
            }
            const snap = await cpi.call<string>('snapshot_disk', [d, {}]);
            const restored = await cpi.call<string>('create_disk', [32, { snapshot_cid: snap }, null]);
            await cpi.call('delete_disk', [restored]);
            await cpi.call('delete_snapshot', [snap]);
            live.snaps.delete(snap);
            const diff = await settledDiff(suite.scope, before);
            ensure(
              diff.added.length === 0,
              () => `leftovers:\n${describeDiff({ added: diff.added, removed: [] })}`,
            );
          },
        );
      } else if (op === 'delete_vm') {
        const base = await snapshot(suite.scope);
        const dd = await cpi.call<string>('create_disk', [16, {}, null]);
        live.disks.add(dd);
        const vm = await vmOf();
        const p = hintPath(await cpi.call('attach_disk', [vm, dd]));
        const s = await writeData(docker, vm, p, 1);
        const run = await cpi.request('delete_vm', [vm], { killAfterMs: t });
        await c(
          `${label} (${counts.note(run)}): the VM is there or gone, never half; a retry finishes; its disk survives with its data`,
          async () => {
            await waitForStillness(suite.scope);
            const has = await cpi.call<boolean>('has_vm', [vm]);
            const container = await docker.vmContainer(vm);
            ensure(
              has === (container !== undefined),
              `has_vm says ${has} but the container is ${container ? container.State : 'gone'}`,
            );
            const retry = await cpi.request('delete_vm', [vm]);
            const e = retry.response?.error;
            ensure(
              retry.response && (!e || e.type === 'Bosh::Clouds::VMNotFound'),
              `the retried delete_vm: ${short(e ?? retry.framing)}`,
            );
            live.vms.delete(vm);
            ensure((await cpi.call('has_vm', [vm])) === false, 'has_vm is still true after the retry');
            ensure((await cpi.call('has_disk', [dd])) === true, 'the attached disk is gone');
            const other = w;
            if (attached) {
              await cpi.call('detach_disk', [w, d]);
              attached = false;
            }
            const p2 = hintPath(await cpi.call('attach_disk', [other, dd]));
            ensure((await checksum(docker, other, p2)) === s, 'the disk lost its data');
            await cpi.call('detach_disk', [other, dd]);
            await cpi.call('delete_disk', [dd]);
            live.disks.delete(dd);
            const diff = await settledDiff(suite.scope, base);
            ensure(
              diff.added.length === 0,
              () =>
                `leftovers of the deleted VM:\n${describeDiff({ added: diff.added, removed: [] })}\nthe retried delete_vm logged:\n${retry.response?.log.slice(-1500)}`,
            );
          },
        );
      }
    }
    reporter.log(
      `   ${counts.killed} runs killed mid-call, ${counts.finished} finished before their kill point`,
    );
    await c(`most fault runs really were killed mid-call (${counts.killed} of ${total})`, () =>
      ensure(
        counts.killed >= total / 2,
        `only ${counts.killed} of ${total} runs were killed before they finished`,
      ),
    );
  } finally {
    for (const vm of live.vms) await cpi.request('delete_vm', [vm]);
    for (const s of live.snaps) await cpi.request('delete_snapshot', [s]);
    for (const disk of live.disks) await cpi.request('delete_disk', [disk]);
  }
}
