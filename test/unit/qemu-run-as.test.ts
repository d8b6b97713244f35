import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseQemuProperties } from '../../src/backends/qemu/config.ts';
import type { QemuContext } from '../../src/backends/qemu/context.ts';
import { qemuArgs } from '../../src/backends/qemu/machine.ts';
import { DataDir } from '../../src/backends/qemu/paths.ts';
import type { VmRecord } from '../../src/backends/qemu/records.ts';
import {
  allocateRunAs,
  grantFile,
  revokeFile,
  sandboxArgs,
  UID_SLOTS,
} from '../../src/backends/qemu/run-as.ts';
import { vmCid } from '../support/ids.ts';

const root = mkdtempSync(join(tmpdir(), 'cpi-run-as-'));
after(() => rmSync(root, { recursive: true, force: true }));

function context(props: Record<string, unknown> = {}): QemuContext {
  const dataDir = join(root, `d${Math.random().toString(16).slice(2, 8)}`);
  const parsed = parseQemuProperties({ data_dir: '/var/lib/unused', ...props });
  return { props: parsed, data: new DataDir(dataDir) } as unknown as QemuContext;
}

const VM: VmRecord = {
  cid: 'vm-00000000-0000-4000-8000-000000000001' as VmRecord['cid'],
  agent_id: 'a',
  stemcell_cid: 'stemcell-x' as VmRecord['stemcell_cid'],
  director_uuid: 'd',
  created_at: '',
  cpu: 1,
  ram_mib: 256,
  accel: 'tcg',
  nics: [],
  ephemeral: null,
};

test('by default QEMU runs under seccomp as a uid of its own (it ran as root without -sandbox)', () => {
  const props = parseQemuProperties({});
  assert.equal(props.sandbox, true);
  assert.equal(props.vm_uid_base, 2_000_000_000);
  const args = qemuArgs(context(), { ...VM, run_as: { uid: 2_000_000_007, gid: 2_000_000_000 } }, []);
  const sandbox = args[args.indexOf('-sandbox') + 1];
  assert.equal(sandbox, 'on,obsolete=deny,resourcecontrol=deny');
  assert.equal(args[args.indexOf('-runas') + 1], '2000000007:2000000000');
});

test('as root (vm_uid_base: null) the sandbox also denies privilege changes; sandbox: false drops it', () => {
  assert.deepEqual(sandboxArgs({ sandbox: true }, undefined), [
    '-sandbox',
    'on,obsolete=deny,resourcecontrol=deny,elevateprivileges=deny',
  ]);
  assert.deepEqual(sandboxArgs({ sandbox: false }, undefined), []);
  assert.equal(parseQemuProperties({ vm_uid_base: null }).vm_uid_base, null);
  assert.throws(() => parseQemuProperties({ vm_uid_base: 0 }), /vm_uid_base/);
  assert.throws(() => parseQemuProperties({ sandbox: 'yes' }), /sandbox/);
});

test('each VM gets a uid no other VM of the data_dir has', async () => {
  const ctx = context();
  mkdirSync(ctx.data.vms, { recursive: true });
  const first = await allocateRunAs(ctx, VM.cid);
  assert.ok(first);
  assert.equal(first.gid, 2_000_000_000);
  assert.ok(first.uid > first.gid && first.uid <= first.gid + UID_SLOTS);
  // Another VM already holds that uid: the next one is taken.
  const other = vmCid('vm-00000000-0000-4000-8000-000000000002');
  mkdirSync(ctx.data.vm(other).dir, { recursive: true });
  writeFileSync(ctx.data.vm(other).record, JSON.stringify({ ...VM, cid: other, run_as: first }));
  const second = await allocateRunAs(ctx, VM.cid);
  assert.notEqual(second?.uid, first.uid);
  assert.equal(await allocateRunAs(context({ vm_uid_base: null }), VM.cid), undefined);
});

test('a file QEMU opens later is handed to the VM uid, with a traversable path, and taken back', async () => {
  const ctx = context();
  const disk = join(ctx.data.disks, 'disk-1', 'disk.qcow2');
  mkdirSync(join(ctx.data.disks, 'disk-1'), { recursive: true, mode: 0o700 });
  writeFileSync(disk, 'qcow2', { mode: 0o600 });
  const runAs = { uid: 2_000_000_005, gid: 2_000_000_000 };
  await grantFile(ctx, runAs, disk);
  assert.equal(statSync(disk).uid, runAs.uid);
  assert.equal(statSync(disk).mode & 0o777, 0o600);
  for (const dir of [ctx.data.root, ctx.data.disks, join(ctx.data.disks, 'disk-1')]) {
    assert.equal(statSync(dir).gid, runAs.gid, dir);
    assert.equal(statSync(dir).mode & 0o777, 0o710, dir);
  }
  await revokeFile(runAs, disk);
  assert.equal(statSync(disk).uid, 0);
  await grantFile(ctx, undefined, disk);
  assert.equal(statSync(disk).uid, 0, 'nothing changes when QEMU runs as root');
});
