import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { diskHint } from '../../src/backends/qemu/agent-env.ts';
import { DISK_CID_LENGTH, diskSerial, isId, newId } from '../../src/backends/qemu/ids.ts';
import { type QmpClient, QmpConnectionError, type QmpEvent } from '../../src/backends/qemu/qmp.ts';
import { rebootRunning } from '../../src/backends/qemu/vms.ts';
import { diskCid } from '../support/ids.ts';

describe('QEMU disk identity', () => {
  test('a new disk CID is 20 characters, a valid virtio serial, and is the serial itself', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const cid = newId('disk');
      assert.match(cid, /^disk-[0-9a-f]{15}$/);
      assert.equal(cid.length, DISK_CID_LENGTH);
      assert.ok(isId('disk', cid));
      assert.equal(diskSerial(cid), cid);
      seen.add(cid);
    }
    assert.equal(seen.size, 200);
  });

  test("the agent's glob /dev/disk/by-id/*<CID> matches the udev name of the disk's serial", () => {
    const cid = newId('disk');
    const byId = `virtio-${diskSerial(cid)}`;
    assert.ok(byId.endsWith(cid));
    assert.deepEqual(diskHint(cid), { id: cid, path: `/dev/disk/by-id/${byId}` });
  });

  test('disks of earlier versions (disk-<uuid>) keep their serial and get a path the fallback resolves', () => {
    const old = diskCid('disk-0123abcd-4567-89ef-0123-456789abcdef');
    assert.ok(isId('disk', old));
    assert.equal(diskSerial(old), '0123abcd456789ef0123');
    assert.deepEqual(diskHint(old), {
      id: '0123abcd456789ef0123',
      path: '/dev/disk/by-id/virtio-0123abcd456789ef0123',
    });
  });

  test('other shapes are refused', () => {
    for (const bad of [
      'disk-0123456789abcd',
      'disk-0123456789abcdef',
      'disk-0123456789ABCDE',
      'vm-0123456789abcde',
    ])
      assert.equal(isId('disk', bad), false, bad);
    assert.equal(isId('vm', newId('disk')), false);
  });
});

/** A QMP session that answers like QEMU and records the commands it got. */
function fakeQmp(opts: { status?: string; event?: QmpEvent['event']; closes?: boolean; drops?: boolean }) {
  const commands: string[] = [];
  const qmp = {
    execute: async (command: string) => {
      commands.push(command);
      if (command === 'query-status') return { status: opts.status ?? 'running' };
      return {};
    },
    waitForEvent: async (match: (e: QmpEvent) => boolean) => {
      if (opts.drops) throw new QmpConnectionError('closed');
      const event = opts.event ? ({ event: opts.event, data: {} } as unknown as QmpEvent) : undefined;
      return event && match(event) ? event : undefined;
    },
    waitForClose: async () => opts.closes ?? false,
  };
  return { qmp: qmp as unknown as QmpClient, commands };
}

describe('QEMU reboot_vm', () => {
  test('presses ctrl-alt-delete and is done when the guest resets itself', async () => {
    const { qmp, commands } = fakeQmp({ event: 'RESET' });
    assert.equal(await rebootRunning(qmp, 1000), 'clean');
    assert.deepEqual(commands, ['query-status', 'send-key']);
  });

  test('resets by force when the guest does not reboot in time', async () => {
    const { qmp, commands } = fakeQmp({});
    assert.equal(await rebootRunning(qmp, 10), 'forced');
    assert.deepEqual(commands, ['query-status', 'send-key', 'system_reset', 'query-status']);
  });

  test('a paused guest cannot act on keys: reset by force and resumed', async () => {
    const { qmp, commands } = fakeQmp({ status: 'paused' });
    assert.equal(await rebootRunning(qmp, 1000), 'forced');
    assert.deepEqual(commands, ['query-status', 'system_reset', 'query-status', 'cont']);
  });

  test('a guest that powers off instead: QEMU exits and the caller starts it again', async () => {
    assert.equal(await rebootRunning(fakeQmp({ event: 'SHUTDOWN', closes: true }).qmp, 1000), 'gone');
    assert.equal(await rebootRunning(fakeQmp({ drops: true }).qmp, 1000), 'gone');
  });
});
