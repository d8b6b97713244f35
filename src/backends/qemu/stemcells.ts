import { type FileHandle, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { CloudProperties, Metadata, StemcellCid } from '../../cpi/types.ts';
import { cloudError } from '../../rpc/errors.ts';
import { readJsonIfExists, syncDirectory, writeJsonAtomic } from '../../util/atomic-file.ts';
import { runChecked } from '../../util/command.ts';
import { NotRegularFile, openRegularFile } from '../../util/regular-file.ts';
import type { QemuContext } from './context.ts';
import { isId, newId, parseId } from './ids.ts';
import type { ImageFormat } from './qemu-img.ts';
import type { StemcellRecord, VmRecord } from './records.ts';

/**
 * OpenStack/KVM stemcells: `image` is a tarball holding `root.img` (raw or qcow2). A raw or
 * qcow2 `image` is taken as it is too. Either way the stemcell is stored as a standalone qcow2
 * base image; VMs boot from qcow2 overlays of it.
 */
export const STEMCELL_FORMATS = ['openstack-qcow2', 'openstack-raw', 'qemu-qcow2', 'qemu-raw'] as const;

const ROOT_IMAGE = 'root.img';

type Sniffed = ImageFormat | 'tar' | 'tar.gz';

/**
 * Reads the first bytes of a stemcell image that is a regular file itself: a link (`root.img` →
 * /dev/sda would make a host disk a VM's root), a device or a FIFO is refused before it is read.
 */
async function sniff(path: string, what: string, opts: { singleLink?: boolean } = {}): Promise<Sniffed> {
  let handle: FileHandle;
  try {
    ({ handle } = await openRegularFile(path, opts));
  } catch (e) {
    if (e instanceof NotRegularFile)
      throw cloudError(`The ${what} is ${e.kind}, not a regular file; refusing it`);
    throw cloudError(`Cannot read ${what}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await handle.read(head, 0, 512, 0);
    if (bytesRead >= 4 && head.subarray(0, 4).equals(Buffer.from([0x51, 0x46, 0x49, 0xfb]))) return 'qcow2';
    if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'tar.gz';
    if (bytesRead >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
    return 'raw';
  } finally {
    await handle.close();
  }
}

/** Extracts root.img (GNU tar: it handles sparse entries, and it refuses names that climb out). */
async function extractRootImage(tarball: string, compressed: boolean, into: string): Promise<string> {
  const listing = await runChecked('tar', [compressed ? '-tzf' : '-tf', tarball], { timeoutMs: 30 * 60_000 });
  const member = listing.stdout.split('\n').find((name) => name === ROOT_IMAGE || name === `./${ROOT_IMAGE}`);
  if (!member)
    throw cloudError(
      `The stemcell image is a tarball without ${ROOT_IMAGE} (an OpenStack/KVM stemcell has one)`,
    );
  await runChecked(
    'tar',
    [compressed ? '-xzf' : '-xf', tarball, '-C', into, '--no-same-owner', '--no-same-permissions', member],
    {
      timeoutMs: 60 * 60_000,
    },
  );
  return join(into, member);
}

export async function createStemcell(
  ctx: QemuContext,
  imagePath: string,
  cloudProperties: CloudProperties,
  tags: Metadata,
): Promise<StemcellCid> {
  await ctx.data.ensure();
  await ctx.data.sweepStaging();
  const cid = newId('stemcell');
  const staging = await ctx.data.staging('stemcell');
  try {
    let source = imagePath;
    let kind = await sniff(imagePath, `stemcell image '${imagePath}'`);
    if (kind === 'tar' || kind === 'tar.gz') {
      source = await ctx.logger.timed('extract root.img', () =>
        extractRootImage(imagePath, kind === 'tar.gz', staging),
      );
      // GNU tar recreates links, devices and FIFOs as they are in the archive.
      kind = await sniff(source, `${ROOT_IMAGE} in the stemcell`, { singleLink: true });
      if (kind === 'tar' || kind === 'tar.gz')
        throw cloudError(`${ROOT_IMAGE} in the stemcell is itself a tarball`);
    }
    const format: ImageFormat = kind;
    const info = await ctx.img.info(source, format);
    // A qcow2 that names a backing or data file would let a stemcell read any file on the host.
    if (info.backingFilename || info.dataFile)
      throw cloudError(
        `The stemcell's qcow2 image refers to another file (${info.backingFilename ?? info.dataFile}); refusing it`,
      );
    const paths = ctx.data.stemcell(cid);
    const target = join(staging, 'image.qcow2');
    await ctx.logger.timed('convert to qcow2', () => ctx.img.convert(source, format, target, 'qcow2'));
    if (source !== imagePath) await rm(source, { force: true });
    const record: StemcellRecord = {
      cid,
      source_format: format,
      virtual_size: info.virtualSize,
      cloud_properties: cloudProperties,
      tags,
      created_at: new Date().toISOString(),
    };
    await writeJsonAtomic(join(staging, 'stemcell.json'), record);
    await rename(staging, paths.dir);
    await syncDirectory(ctx.data.stemcells);
    ctx.logger.info(
      `Imported stemcell ${cid} (${format}, ${Math.round(info.virtualSize / 1048576)} MiB virtual)`,
    );
    return cid;
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw e;
  }
}

export async function readStemcell(ctx: QemuContext, cid: StemcellCid): Promise<StemcellRecord | undefined> {
  if (!isId('stemcell', cid)) return undefined;
  const record = await readJsonIfExists<StemcellRecord>(ctx.data.stemcell(cid).record);
  return record?.deleted ? undefined : record;
}

async function vmsUsing(ctx: QemuContext, stemcellCid: StemcellCid): Promise<string[]> {
  const users: string[] = [];
  let names: string[];
  try {
    names = await readdir(ctx.data.vms);
  } catch {
    return users;
  }
  for (const name of names) {
    const vmCid = parseId('vm', name);
    if (!vmCid) continue;
    const paths = ctx.data.vm(vmCid);
    const vm =
      (await readJsonIfExists<Pick<VmRecord, 'stemcell_cid'>>(paths.record)) ??
      (await readJsonIfExists<Pick<VmRecord, 'stemcell_cid'>>(paths.creating));
    if (vm?.stemcell_cid === stemcellCid) users.push(name);
  }
  return users;
}

/** Quiet when the stemcell is absent (the Director does not know StemcellNotFound). */
export async function deleteStemcell(ctx: QemuContext, cid: StemcellCid): Promise<void> {
  await withStemcellRecord(ctx, cid, async (record, paths) => {
    const users = await vmsUsing(ctx, cid);
    if (users.length > 0) {
      // Their overlays still read the base image: keep it until the last of them is deleted.
      await writeJsonAtomic(paths.record, { ...record, deleted: true });
      ctx.logger.warn(`Stemcell ${cid} is still used by ${users.join(', ')}; its image goes when they do`);
      return;
    }
    await ctx.data.removeDir(paths.dir);
    ctx.logger.info(`Deleted stemcell ${cid}`);
  });
}

/** Runs `step` under the stemcell's lock when its record exists; nothing for an unknown or busy one. */
async function withStemcellRecord(
  ctx: QemuContext,
  cid: StemcellCid,
  step: (record: StemcellRecord, paths: ReturnType<QemuContext['data']['stemcell']>) => Promise<void>,
): Promise<void> {
  if (!isId('stemcell', cid)) return;
  const paths = ctx.data.stemcell(cid);
  await ctx.locked(
    paths.dir,
    async () => {
      const record = await readJsonIfExists<StemcellRecord>(paths.record);
      if (record) await step(record, paths);
    },
    () => undefined,
  );
}

/** Removes a stemcell that delete_stemcell marked deleted once no VM uses it any more. */
export async function collectStemcell(ctx: QemuContext, cid: StemcellCid): Promise<void> {
  await withStemcellRecord(ctx, cid, async (record, paths) => {
    if (!record.deleted || (await vmsUsing(ctx, cid)).length > 0) return;
    await ctx.data.removeDir(paths.dir);
    ctx.logger.info(`Deleted stemcell ${cid}, whose last VM is gone`);
  });
}
