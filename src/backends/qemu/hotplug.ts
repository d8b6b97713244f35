import type { DiskCid } from '../../cpi/types.ts';
import { cloudError } from '../../rpc/errors.ts';
import { diskDeviceId, diskNodeName, parseId } from './ids.ts';
import { type AttachedDisk, persistentBlockdev, persistentDevice } from './machine.ts';
import type { DataDir } from './paths.ts';
import { type QmpClient, QmpError } from './qmp.ts';

/** Persistent disks of a running VM, seen and changed through QMP. */

interface BlockInfo {
  device: string;
  qdev?: string;
  inserted?: { file: string; 'node-name'?: string };
}

/** The persistent disks QEMU has attached right now (query-block), by CID. */
export async function attachedDiskCids(data: DataDir, qmp: QmpClient): Promise<DiskCid[]> {
  const blocks = await qmp.execute<BlockInfo[]>('query-block');
  const prefix = `${data.disks}/`;
  const cids: DiskCid[] = [];
  for (const block of blocks) {
    const file = block.inserted?.file;
    if (!file?.startsWith(prefix) || !block.inserted?.['node-name']?.startsWith('pdn-')) continue;
    const [cid, name] = file.slice(prefix.length).split('/');
    const diskCid = name === 'disk.qcow2' ? parseId('disk', cid ?? '') : undefined;
    if (diskCid) cids.push(diskCid);
  }
  return cids.sort();
}

export async function isPlugged(qmp: QmpClient, serial: string): Promise<boolean> {
  const blocks = await qmp.execute<BlockInfo[]>('query-block');
  const node = diskNodeName(serial);
  return blocks.some((b) => b.inserted?.['node-name'] === node);
}

async function nodeExists(qmp: QmpClient, nodeName: string): Promise<boolean> {
  const nodes = await qmp.execute<Array<{ 'node-name': string }>>('query-named-block-nodes', { flat: true });
  return nodes.some((n) => n['node-name'] === nodeName);
}

/** blockdev-add + device_add virtio-blk-pci with the disk's serial; undone when the device cannot be added. */
export async function plug(qmp: QmpClient, disk: AttachedDisk): Promise<void> {
  const node = diskNodeName(disk.serial);
  if (!(await nodeExists(qmp, node))) await qmp.execute('blockdev-add', persistentBlockdev(disk));
  try {
    await qmp.execute('device_add', persistentDevice(disk));
  } catch (e) {
    await qmp.execute('blockdev-del', { 'node-name': node }).catch(() => undefined);
    throw e;
  }
}

/**
 * device_del, then wait until the guest has let the device go (DEVICE_DELETED: the guest
 * kernel acknowledges the ACPI eject), then blockdev-del.
 */
export async function unplug(qmp: QmpClient, serial: string, timeoutMs: number): Promise<void> {
  const id = diskDeviceId(serial);
  let present = true;
  try {
    await qmp.execute('device_del', { id });
  } catch (e) {
    if (!(e instanceof QmpError)) throw e;
    if (e.errorClass === 'DeviceNotFound') present = false;
    else if (!/already in the process of unplug/i.test(e.description)) throw e;
  }
  if (present) {
    // The event goes only to connections open at the time: a retry of a detach that was killed
    // after its device_del may have missed it, so the device's disappearance is also polled.
    const deadline = Date.now() + timeoutMs;
    let deleted = false;
    while (!deleted && Date.now() < deadline) {
      const slice = Math.max(1, Math.min(250, deadline - Date.now()));
      deleted =
        (await qmp.waitForEvent((ev) => ev.event === 'DEVICE_DELETED' && ev.data?.device === id, slice)) !==
          undefined || !(await isPlugged(qmp, serial));
    }
    if (!deleted)
      throw cloudError(
        `The guest did not release disk device ${id} within ${Math.round(timeoutMs / 1000)} s (is it still mounted, or is the guest not running an OS yet?)`,
        true,
      );
  }
  await releaseNode(qmp, serial);
}

/**
 * Removes the disk's block node if it outlived its device (a detach killed between DEVICE_DELETED
 * and blockdev-del): query-block no longer shows it, but QEMU still holds the image open and locked.
 */
export async function releaseNode(qmp: QmpClient, serial: string, waitMs = 10_000): Promise<void> {
  const node = diskNodeName(serial);
  const deadline = Date.now() + waitMs;
  while (await nodeExists(qmp, node)) {
    try {
      await qmp.execute('blockdev-del', { 'node-name': node });
      return;
    } catch (e) {
      // A device deleted a moment ago can hold its node a little longer ("… is in use").
      if (!(e instanceof QmpError && /is in use/i.test(e.description)) || Date.now() >= deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
