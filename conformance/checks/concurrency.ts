import { randomUUID } from 'node:crypto';
import { ensure, sameSet, short } from '../lib/assert.ts';
import type { Suite } from '../lib/env.ts';
import { describeDiff, settledDiff, snapshot } from '../lib/state.ts';
import { hintPath, mountsInVm, persistentOf, readSettings } from '../lib/vm.ts';

interface Outcome<T> {
  ok: boolean;
  value?: T;
  error?: string;
}

async function settle<T>(p: Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await p };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

const failures = (outcomes: Array<Outcome<unknown>>, what: string[]) =>
  outcomes
    .map((o, i) => (o.ok ? '' : `${what[i]}: ${o.error}`))
    .filter(Boolean)
    .join('\n');

/**
 * Many CPI processes at once, as a Director with max_in_flight does: creates and deletes of VMs
 * and disks racing each other, and attach/detach of different disks on one VM. Nothing may be
 * lost: every call succeeds, and get_disks, the settings file and the VM's mounts agree.
 */
export async function runConcurrency(suite: Suite): Promise<void> {
  const { cpi, reporter, docker } = suite;
  const c = (name: string, fn: () => unknown) => reporter.check('concurrency', name, fn);
  const width = suite.scale.concurrency;
  const half = Math.floor(width / 2);
  const baseline = await snapshot(suite.scope);
  const liveVms = new Set<string>();
  const liveDisks = new Set<string>();
  const createVm = async () => {
    const r = await cpi.call('create_vm', [
      `agent-${randomUUID()}`,
      suite.stemcellCid,
      {},
      suite.addresses.network(),
      [],
      {},
    ]);
    const cid = (r as [string])[0];
    liveVms.add(cid);
    return cid;
  };
  const createDisk = async () => {
    const cid = await cpi.call<string>('create_disk', [16, {}, null]);
    liveDisks.add(cid);
    return cid;
  };
  const deleteVm = async (cid: string) => {
    await cpi.call('delete_vm', [cid]);
    liveVms.delete(cid);
  };
  const deleteDisk = async (cid: string) => {
    await cpi.call('delete_disk', [cid]);
    liveDisks.delete(cid);
  };

  try {
    const rounds = suite.opts.full ? 3 : 1;
    let vms: string[] = [];
    let disks: string[] = [];
    for (let round = 1; round <= rounds; round++) {
      await c(
        `round ${round}: ${width} processes at once: ${half} create_vm + ${width - half} create_disk all succeed`,
        async () => {
          const jobs = [
            ...Array.from({ length: half }, () => settle(createVm())),
            ...Array.from({ length: width - half }, () => settle(createDisk())),
          ];
          const names = [...Array(half).fill('create_vm'), ...Array(width - half).fill('create_disk')];
          const out = await Promise.all(jobs);
          vms = out
            .slice(0, half)
            .filter((o) => o.ok)
            .map((o) => o.value as string);
          disks = out
            .slice(half)
            .filter((o) => o.ok)
            .map((o) => o.value as string);
          ensure(
            out.every((o) => o.ok),
            () => failures(out, names),
          );
          ensure(new Set([...vms, ...disks]).size === width, 'two calls returned the same CID');
        },
      );
      await c(
        `round ${round}: has_vm / has_disk are true for every created resource; every VM has its own settings`,
        async () => {
          for (const v of vms) ensure((await cpi.call('has_vm', [v])) === true, `has_vm ${v} is false`);
          for (const d of disks) ensure((await cpi.call('has_disk', [d])) === true, `has_disk ${d} is false`);
          if (suite.isDocker)
            for (const v of vms) {
              const s = (await readSettings(docker, v)).settings as { vm?: { name?: string } };
              ensure(s.vm?.name === v, `VM ${v} has the settings of ${short(s.vm)}`);
            }
        },
      );
      await c(
        `round ${round}: ${width} processes at once: delete_vm of the old VMs races create_vm of new ones`,
        async () => {
          const old = [...vms];
          const jobs = [
            ...old.map((v) => settle(deleteVm(v))),
            ...Array.from({ length: width - old.length }, () => settle(createVm())),
          ];
          const names = [...old.map((v) => `delete_vm ${v}`), ...Array(width - old.length).fill('create_vm')];
          const out = await Promise.all(jobs);
          vms = out
            .slice(old.length)
            .filter((o) => o.ok)
            .map((o) => o.value as string);
          ensure(
            out.every((o) => o.ok),
            () => failures(out, names),
          );
          for (const v of old)
            ensure((await cpi.call('has_vm', [v])) === false, `has_vm of deleted ${v} is true`);
          for (const v of vms)
            ensure((await cpi.call('has_vm', [v])) === true, `has_vm of new ${v} is false`);
        },
      );
      await c(`round ${round}: ${width} processes at once: delete every VM and disk`, async () => {
        const targets = [...vms.map((v) => ['vm', v] as const), ...disks.map((d) => ['disk', d] as const)];
        const out = await Promise.all(
          targets.map(([k, id]) => settle(k === 'vm' ? deleteVm(id) : deleteDisk(id))),
        );
        ensure(
          out.every((o) => o.ok),
          () =>
            failures(
              out,
              targets.map(([k, id]) => `delete_${k} ${id}`),
            ),
        );
        for (const [k, id] of targets)
          ensure(
            (await cpi.call(k === 'vm' ? 'has_vm' : 'has_disk', [id])) === false,
            `has_${k} ${id} still true`,
          );
      });
    }
    await c('after the concurrent rounds nothing is left over', async () => {
      const d = await settledDiff(suite.scope, baseline);
      ensure(d.added.length === 0, () => describeDiff({ added: d.added, removed: [] }));
    });

    // Different disks on one VM, attached and detached at the same time.
    const n = suite.opts.full ? 10 : 6;
    const vm = await createVm();
    const vmDisks = await Promise.all(Array.from({ length: n }, () => createDisk()));
    const agree = async (expected: string[], what: string) => {
      const listed = await cpi.call<string[]>('get_disks', [vm]);
      ensure(
        sameSet(listed, expected),
        `${what}: get_disks says [${listed.join(', ')}], expected [${expected.join(', ')}]`,
      );
      if (!suite.isDocker) return;
      const persistent = persistentOf((await readSettings(docker, vm)).settings);
      ensure(
        sameSet(Object.keys(persistent), expected),
        `${what}: settings disks.persistent has [${Object.keys(persistent).join(', ')}], expected [${expected.join(', ')}]`,
      );
      const mounts = await mountsInVm(docker, vm);
      const wanted = expected.map((d) => hintPath(persistent[d]));
      ensure(
        sameSet(mounts, wanted),
        `${what}: the VM mounts [${mounts.join(', ')}], expected [${wanted.join(', ')}]`,
      );
    };
    await c(
      `${n} concurrent attach_disk calls on one VM: all succeed; get_disks, settings and mounts agree`,
      async () => {
        const out = await Promise.all(vmDisks.map((d) => settle(cpi.call('attach_disk', [vm, d]))));
        ensure(
          out.every((o) => o.ok),
          () =>
            failures(
              out,
              vmDisks.map((d) => `attach ${d}`),
            ),
        );
        await agree(vmDisks, 'after attaching');
      },
    );
    const keep = vmDisks.slice(0, Math.floor(n / 2));
    const drop = vmDisks.slice(Math.floor(n / 2));
    const extra = await Promise.all(Array.from({ length: 2 }, () => createDisk()));
    await c('concurrent detach of some disks and attach of others on one VM: state agrees', async () => {
      const jobs = [
        ...drop.map((d) => settle(cpi.call('detach_disk', [vm, d]))),
        ...extra.map((d) => settle(cpi.call('attach_disk', [vm, d]))),
      ];
      const out = await Promise.all(jobs);
      ensure(
        out.every((o) => o.ok),
        () => failures(out, [...drop.map((d) => `detach ${d}`), ...extra.map((d) => `attach ${d}`)]),
      );
      await agree([...keep, ...extra], 'after mixed attach/detach');
    });
    await c(
      'concurrent detach of every disk on one VM: get_disks is [] and the settings list none',
      async () => {
        const all = [...keep, ...extra];
        const out = await Promise.all(all.map((d) => settle(cpi.call('detach_disk', [vm, d]))));
        ensure(
          out.every((o) => o.ok),
          () =>
            failures(
              out,
              all.map((d) => `detach ${d}`),
            ),
        );
        await agree([], 'after detaching all');
      },
    );
  } finally {
    await Promise.all([...liveVms].map((v) => cpi.request('delete_vm', [v])));
    await Promise.all([...liveDisks].map((d) => cpi.request('delete_disk', [d])));
  }
}
