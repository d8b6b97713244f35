import { open, rename, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import type { DiskCid } from '../../cpi/types.ts';
import { cloudError, notSupported } from '../../rpc/errors.ts';
import { syncDirectory } from '../../util/atomic-file.ts';
import { runChecked } from '../../util/command.ts';
import type { QemuContext } from './context.ts';
import { holder, saveDisk, withDisk } from './disk-store.ts';

const MiB = 1024 * 1024;

const EXT_MAGIC_OFFSET = 1024 + 56;

/** True when the disk holds an ext2/3/4 file system on the whole device (no partition table). */
async function hasWholeDeviceExt(ctx: QemuContext, image: string, scratch: string): Promise<boolean> {
  const head = join(scratch, 'head.raw');
  await ctx.img.head(image, 'qcow2', head, 4096);
  const handle = await open(head, 'r');
  try {
    const magic = Buffer.alloc(2);
    await handle.read(magic, 0, 2, EXT_MAGIC_OFFSET);
    return magic.readUInt16LE(0) === 0xef53;
  } finally {
    await handle.close();
  }
}

/**
 * Grows a detached disk. A whole-device ext file system grows with it: the content is copied to
 * a sparse raw file, checked and resized there, and converted back; the original stays
 * untouched until the new image is renamed over it. A blank or partitioned disk only gets
 * bigger (the agent owns its partitions).
 */
export async function resizeDisk(ctx: QemuContext, diskCid: DiskCid, newSizeMiB: number): Promise<void> {
  await withDisk(ctx, diskCid, async (record) => {
    const vm = await holder(ctx, record);
    if (vm) throw cloudError(`Disk '${diskCid}' is attached to VM '${vm}'; detach it before resizing it`);
    const paths = ctx.data.disk(diskCid);
    const current = (await ctx.img.info(paths.image, 'qcow2')).virtualSize;
    const target = newSizeMiB * MiB;
    if (target < current)
      throw notSupported(
        `Disk '${diskCid}' is ${Math.ceil(current / MiB)} MiB; shrinking it to ${newSizeMiB} MiB is not supported`,
      );
    if (target === current) return;
    const scratch = await ctx.data.staging('resize');
    try {
      if (await hasWholeDeviceExt(ctx, paths.image, scratch)) {
        const raw = join(scratch, 'disk.raw');
        const grown = join(scratch, 'disk.qcow2');
        await ctx.img.convert(paths.image, 'qcow2', raw, 'raw');
        await truncate(raw, target);
        // e2fsck exits 1 when it corrected something: fine for a file system about to grow.
        await runChecked('e2fsck', ['-f', '-p', raw], { timeoutMs: 60 * 60_000, okExitCodes: [0, 1] });
        await runChecked('resize2fs', [raw], { timeoutMs: 60 * 60_000 });
        await ctx.img.convert(raw, 'raw', grown, 'qcow2');
        await rename(grown, paths.image);
        await syncDirectory(paths.dir);
        ctx.logger.info(`Resized disk ${diskCid} and its ext4 file system to ${newSizeMiB} MiB`);
      } else {
        await ctx.img.resize(paths.image, target);
        ctx.logger.info(`Resized disk ${diskCid} to ${newSizeMiB} MiB (no whole-device file system to grow)`);
      }
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
    await saveDisk(ctx, { ...record, size_mib: newSizeMiB });
  });
}
