import { randomUUID } from 'node:crypto';
import { ensure, ensureEqual, sameSet, short } from '../lib/assert.ts';
import { KillTally } from '../lib/cpi.ts';
import type { Suite } from '../lib/env.ts';
import type { HostProbe } from '../lib/host-probe.ts';
import { describeDiff, type Snapshot, settledDiff, snapshot, waitForStillness } from '../lib/state.ts';
import { createVm } from '../lib/vm.ts';

/**
 * Faults and data safety for CPIs whose VMs cannot be entered with docker exec: what a VM or disk
 * is made of is read on the host through a HostProbe, and disk data is written into a detached
 * disk and read back from it, never through a guest.
 */

const DATA_BYTES = 1024 * 1024;
const VM_PROPS = { cpu: 1, ram: 256 };

/** Second path components under `dir/` that appeared since `before` (new resource CIDs). */
function newCids(before: Snapshot, after: Snapshot, dir: string): string[] {
  const cids = new Set<string>();
  for (const path of Object.keys(after.files)) {
    if (path in before.files) continue;
    const [top, cid] = path.split('/');
    if (top === dir && cid && !cid.startsWith('.')) cids.add(cid);
  }
  return [...cids];
}

async function bootedVm(suite: Suite, probe: HostProbe, live: Set<string>, wait = true): Promise<string> {
  const vm = await createVm(suite.cpi, suite.stemcellCid, suite.addresses, { cloudProperties: VM_PROPS });
  live.add(vm.cid);
  if (wait) await probe.waitReady(vm.cid);
  return vm.cid;
}

export async function runHostDataSafety(suite: Suite, probe: HostProbe): Promise<void> {
  const { cpi, reporter } = suite;
  const c = (name: string, fn: () => unknown) => reporter.check('data safety', name, fn);
  const vms = new Set<string>();
  const disks = new Set<string>();
  try {
    const [a, b] = await Promise.all([bootedVm(suite, probe, vms), bootedVm(suite, probe, vms)]);
    const d = await cpi.call<string>('create_disk', [32, {}, a]);
    disks.add(d);
    const sum = probe.writeDisk(d, DATA_BYTES);
    await c('data written into a detached disk reads back the same', () =>
      ensureEqual(probe.checksumDisk(d, DATA_BYTES), sum, 'checksum'),
    );
    await c('survives attach_disk and detach_disk', async () => {
      await cpi.call('attach_disk', [a, d]);
      ensure(sameSet(await cpi.call<string[]>('get_disks', [a]), [d]), 'get_disks does not list the disk');
      await cpi.call('detach_disk', [a, d]);
      ensureEqual(probe.checksumDisk(d, DATA_BYTES), sum, 'checksum after detach');
    });
    await c('survives detach and attach to another VM', async () => {
      await cpi.call('attach_disk', [b, d]);
      await cpi.call('detach_disk', [b, d]);
      ensureEqual(probe.checksumDisk(d, DATA_BYTES), sum, 'checksum after the other VM');
    });
    await c('survives deletion of the VM it was attached to, which leaves nothing behind', async () => {
      await cpi.call('attach_disk', [b, d]);
      await cpi.call('delete_vm', [b]);
      vms.delete(b);
      ensureEqual(await cpi.call('has_vm', [b]), false, 'has_vm after delete_vm');
      ensureEqual(await cpi.call('has_disk', [d]), true, 'has_disk after delete_vm');
      ensureEqual(probe.leftoversOf(b), [], 'what is left of the deleted VM');
      ensureEqual(probe.checksumDisk(d, DATA_BYTES), sum, 'checksum after the VM was deleted');
      await cpi.call('attach_disk', [a, d]);
      await cpi.call('detach_disk', [a, d]);
      ensureEqual(probe.checksumDisk(d, DATA_BYTES), sum, 'checksum after attaching to a third VM');
    });
  } finally {
    for (const vm of vms) await cpi.request('delete_vm', [vm]);
    for (const d of disks) await cpi.request('delete_disk', [d]);
  }
}

type Op = 'create_vm' | 'create_disk' | 'attach_disk' | 'detach_disk' | 'delete_vm';
const OPS: Op[] = ['create_vm', 'create_disk', 'attach_disk', 'detach_disk', 'delete_vm'];

export async function runHostFaults(suite: Suite, probe: HostProbe): Promise<void> {
  const { cpi, reporter } = suite;
  const c = (name: string, fn: () => unknown) => reporter.check('faults', name, fn);
  const live = new Set<string>();
  const disks = new Set<string>();
  const perOp = Number(process.env.CONFORMANCE_FAULT_RUNS_PER_OP ?? (suite.opts.full ? 3 : 1));
  const timed = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
    const t0 = performance.now();
    return [await fn(), performance.now() - t0];
  };
  try {
    const w = await bootedVm(suite, probe, live);
    const d = await cpi.call<string>('create_disk', [32, {}, w]);
    disks.add(d);
    const sum = probe.writeDisk(d, DATA_BYTES);

    // Calibration: the uninterrupted duration of each call, and the cost of a call that does nothing.
    let startMs = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 2; i++) startMs = Math.min(startMs, (await timed(() => cpi.call('has_vm', [w])))[1]);
    // The faster of two uninterrupted runs each: a first, cold run can take twice as long, and kill
    // points spread over it would mostly land after the call (the check below counts that).
    const durations = {} as Record<Op, number>;
    const fastest = (op: Op, ms: number) => {
      durations[op] = Math.min(durations[op] ?? Number.POSITIVE_INFINITY, ms);
    };
    for (let round = 0; round < 2; round++) {
      const [cal, createMs] = await timed(() =>
        createVm(cpi, suite.stemcellCid, suite.addresses, { cloudProperties: VM_PROPS }),
      );
      fastest('create_vm', createMs);
      fastest('delete_vm', (await timed(() => cpi.call('delete_vm', [cal.cid])))[1]);
      const [cd, diskMs] = await timed(() => cpi.call<string>('create_disk', [16, {}, null]));
      fastest('create_disk', diskMs);
      await cpi.call('delete_disk', [cd]);
      fastest('attach_disk', (await timed(() => cpi.call('attach_disk', [w, d])))[1]);
      fastest('detach_disk', (await timed(() => cpi.call('detach_disk', [w, d])))[1]);
    }
    reporter.log(
      `   calibrated (ms): ${Object.entries(durations)
        .map(([k, v]) => `${k} ${Math.round(v)}`)
        .join(', ')}, a call that does nothing ${Math.round(startMs)}`,
    );
    // Kill points lie after process start (before it the call has not begun) and inside the call.
    const killAt = (op: Op) => {
      const start = Math.min(startMs, 0.6 * durations[op]);
      return Math.round(start + (0.1 + 0.8 * Math.random()) * Math.max(durations[op] - start, 20));
    };
    const counts = new KillTally();
    const noLeftovers = async (base: Snapshot, what: string) => {
      const diff = await settledDiff(suite.scope, base);
      ensure(diff.added.length === 0, () => `${what}:\n${describeDiff({ added: diff.added, removed: [] })}`);
    };
    const dataIntact = (disk: string, expected: string) =>
      ensureEqual(probe.checksumDisk(disk, DATA_BYTES), expected, `checksum of ${disk}`);

    const only = process.env.CONFORMANCE_FAULT_OPS?.split(',');
    const ops = only ? OPS.filter((o) => only.includes(o)) : OPS;
    const runs = ops.flatMap((op) => Array.from({ length: perOp }, () => op));
    // A call that finished before its kill point was faster than calibrated (VMs booting under TCG
    // make the first runs slow): its kill points move inside what it took, and it runs once more,
    // at most as many extra runs as planned, so most runs test an interrupted call.
    let extraRuns = 0;
    const interrupted = async (op: Op, args: unknown[], t: number) => {
      const run = await cpi.request(op, args, { killAfterMs: t });
      if (!run.killed) {
        fastest(op, run.ms);
        if (extraRuns < ops.length * perOp) {
          extraRuns++;
          runs.push(op);
        }
      }
      return run;
    };
    for (const [i, op] of runs.entries()) {
      const t = killAt(op);
      const label = `kill -9 #${i + 1} in ${op} at ${t} ms`;
      if (op === 'create_vm') {
        const before = await snapshot(suite.scope);
        const args = [
          `agent-${randomUUID()}`,
          suite.stemcellCid,
          VM_PROPS,
          suite.addresses.network(),
          [],
          {},
        ];
        const run = await interrupted(op, args, t);
        const result = run.response?.result as [string] | string | undefined;
        const answered = Array.isArray(result) ? result[0] : result;
        await c(
          `${label} (${counts.note(run)}): a VM the CPI knows is whole and deletable, one it does not know left nothing; a retry succeeds`,
          async () => {
            const after = await waitForStillness(suite.scope);
            const candidates = new Set(newCids(before, after, 'vms'));
            if (answered) candidates.add(answered);
            const problems: string[] = [];
            for (const vm of candidates) {
              if ((await cpi.call('has_vm', [vm])) === true) {
                const del = await cpi.request('delete_vm', [vm]);
                if (del.response?.error) problems.push(`delete_vm of ${vm}: ${short(del.response.error)}`);
              }
            }
            const retry = await createVm(cpi, suite.stemcellCid, suite.addresses, {
              cloudProperties: VM_PROPS,
            });
            ensure((await cpi.call('has_vm', [retry.cid])) === true, 'has_vm of the retried VM is false');
            await cpi.call('delete_vm', [retry.cid]);
            for (const vm of candidates) {
              const left = probe.leftoversOf(vm);
              if (left.length)
                problems.push(`${vm}, which the CPI no longer knows, left: ${left.join('; ')}`);
            }
            ensure(problems.length === 0, problems.join('\n'));
            await noLeftovers(before, 'leftovers no CPI call removed');
          },
        );
      } else if (op === 'create_disk') {
        const before = await snapshot(suite.scope);
        const run = await interrupted(op, [16, {}, w], t);
        await c(
          `${label} (${counts.note(run)}): the disk is whole (has_disk, deletable) or absent; a retry succeeds`,
          async () => {
            const after = await waitForStillness(suite.scope);
            const candidates = new Set(newCids(before, after, 'disks'));
            if (typeof run.response?.result === 'string') candidates.add(run.response.result);
            for (const disk of candidates) {
              if ((await cpi.call('has_disk', [disk])) !== true) continue;
              const del = await cpi.request('delete_disk', [disk]);
              ensure(
                !del.response?.error,
                `delete_disk of the left-over ${disk}: ${short(del.response?.error)}`,
              );
            }
            const retry = await cpi.call<string>('create_disk', [16, {}, w]);
            ensure((await cpi.call('has_disk', [retry])) === true, 'has_disk of the retried disk is false');
            await cpi.call('delete_disk', [retry]);
            await noLeftovers(before, 'partial disks no CPI call can find or remove');
          },
        );
      } else if (op === 'attach_disk' || op === 'detach_disk') {
        // The disk rests detached between runs: a detach run attaches it first.
        if (op === 'detach_disk') await cpi.call('attach_disk', [w, d]);
        const run = await interrupted(op, [w, d], t);
        await c(
          `${label} (${counts.note(run)}): a retry converges, get_disks tells the truth, the disk keeps its data`,
          async () => {
            await waitForStillness(suite.scope);
            const retry = await cpi.request(op, [w, d]);
            const e = retry.response?.error;
            ensure(
              retry.response && (!e || (op === 'detach_disk' && e.type === 'Bosh::Clouds::DiskNotAttached')),
              `the retried ${op}: ${short(e ?? retry.framing)}`,
            );
            const expect = op === 'attach_disk' ? [d] : [];
            const listed = await cpi.call<string[]>('get_disks', [w]);
            ensure(sameSet(listed, expect), `after the retry get_disks says [${listed.join(', ')}]`);
            if (op === 'attach_disk') await cpi.call('detach_disk', [w, d]);
            ensureEqual(await cpi.call('get_disks', [w]), [], 'get_disks once detached');
            dataIntact(d, sum);
          },
        );
      } else {
        const base = await snapshot(suite.scope);
        const dd = await cpi.call<string>('create_disk', [16, {}, null]);
        disks.add(dd);
        const s = probe.writeDisk(dd, DATA_BYTES);
        const vm = await bootedVm(suite, probe, live, false);
        await cpi.call('attach_disk', [vm, dd]);
        const run = await interrupted(op, [vm], t);
        await c(
          `${label} (${counts.note(run)}): the VM is whole or gone, never half; a retry finishes; its disk keeps its data`,
          async () => {
            await waitForStillness(suite.scope);
            const problems: string[] = [];
            if ((await cpi.call('has_vm', [vm])) === false) {
              const left = probe.leftoversOf(vm);
              if (left.length)
                problems.push(`has_vm is false right after the kill, but left: ${left.join('; ')}`);
            }
            const retry = await cpi.request('delete_vm', [vm]);
            const e = retry.response?.error;
            if (!retry.response || (e && e.type !== 'Bosh::Clouds::VMNotFound'))
              problems.push(`the retried delete_vm: ${short(e ?? retry.framing)}`);
            live.delete(vm);
            if ((await cpi.call('has_vm', [vm])) !== false)
              problems.push('has_vm is still true after the retry');
            const left = probe.leftoversOf(vm);
            if (left.length) problems.push(`after the retry, left: ${left.join('; ')}`);
            if ((await cpi.call('has_disk', [dd])) !== true) problems.push('the attached disk is gone');
            else if (probe.checksumDisk(dd, DATA_BYTES) !== s) problems.push('the disk lost its data');
            ensure(problems.length === 0, problems.join('\n'));
            await cpi.call('delete_disk', [dd]);
            disks.delete(dd);
            await noLeftovers(base, 'leftovers of the deleted VM');
          },
        );
      }
    }
    reporter.log(
      `   ${counts.killed} runs killed mid-call, ${counts.finished} finished before their kill point`,
    );
    await c(`most fault runs really were killed mid-call (${counts.killed} of ${runs.length})`, () =>
      ensure(counts.killed >= runs.length / 2, `only ${counts.killed} of ${runs.length} were killed`),
    );
  } finally {
    for (const vm of live) await cpi.request('delete_vm', [vm]);
    for (const disk of disks) await cpi.request('delete_disk', [disk]);
  }
}
