import type { Transform } from 'node:stream';
import type { CloudProperties, Metadata, StemcellCid } from '../../cpi/types.ts';
import { cloudError } from '../../rpc/errors.ts';
import { NotRegularFile, openRegularFile } from '../../util/regular-file.ts';
import type { DockerContext } from './context.ts';
import { isId, newId, STEMCELL_REPO, stemcellImageRef } from './ids.ts';
import { LABELS } from './labels.ts';

/** A Dockerfile LABEL instruction with both sides quoted, as `docker import --change` takes it. */
const quote = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
const labelChange = (key: string, value: string) => `LABEL ${quote(key)}=${quote(value)}`;

/** Counts bytes as they stream past and logs progress every 10%. */
function progressMeter(total: number, log: (line: string) => void): Transform {
  let seen = 0;
  let nextReport = 0.1;
  const started = Date.now();
  const { Transform } = process.getBuiltinModule('node:stream');
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (total > 0 && seen / total >= nextReport) {
        const mib = seen / 1048576;
        log(
          `Imported ${Math.round((seen / total) * 100)}% (${mib.toFixed(0)} MiB, ${(mib / ((Date.now() - started) / 1000 || 1)).toFixed(0)} MiB/s)`,
        );
        while (seen / total >= nextReport) nextReport += 0.1;
      }
      done(null, chunk);
    },
  });
}

export async function createStemcell(
  ctx: DockerContext,
  imagePath: string,
  props: CloudProperties,
  tags: Metadata,
  /** The same CID on every host when one stemcell is imported into several engines. */
  cid = newId('stemcell'),
): Promise<StemcellCid> {
  const reference = props.image_reference;
  if (reference !== undefined) {
    if (typeof reference !== 'string' || reference === '')
      throw cloudError(
        'Light stemcell: cloud_properties.image_reference must be a non-empty image reference',
      );
    const image = await ctx.images.inspect(reference);
    if (!image)
      throw cloudError(
        `Light stemcell: image '${reference}' is not on Docker host ${ctx.docker.endpoint}; load or pull it there first`,
      );
    if (
      typeof props.digest === 'string' &&
      props.digest &&
      !image.Id.endsWith(props.digest.replace(/^sha256:/, ''))
    )
      ctx.logger.warn(
        `Light stemcell image '${reference}' has ID ${image.Id}, not the digest ${props.digest} the stemcell names`,
      );
    await ctx.images.tag(reference, STEMCELL_REPO, cid);
    ctx.logger.info(`Light stemcell ${cid} refers to image '${reference}' (${image.Id})`);
    return cid;
  }

  // A link is not followed, a device or FIFO not read: the image must be a regular file itself.
  let opened: Awaited<ReturnType<typeof openRegularFile>>;
  try {
    opened = await openRegularFile(imagePath);
  } catch (e) {
    if (e instanceof NotRegularFile)
      throw cloudError(`Stemcell image '${imagePath}' is ${e.kind}, not a regular file; refusing it`);
    throw cloudError(
      `Cannot read stemcell image '${imagePath}': ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
    );
  }
  const { handle, size } = opened;
  if (size === 0) {
    await handle.close();
    throw cloudError(
      `Stemcell image '${imagePath}' is empty; a light stemcell needs cloud_properties.image_reference`,
    );
  }

  const changes = [
    labelChange(LABELS.cpi, 'docker'),
    labelChange(LABELS.stemcell, cid),
    labelChange(LABELS.director, ctx.directorUuid),
    labelChange(LABELS.createdAt, new Date().toISOString()),
  ];
  // `init` (e.g. `systemd`) tells create_vm how to start the stemcell (see container-init.ts).
  for (const key of ['name', 'version', 'os', 'init']) {
    const value = props[key];
    if (typeof value === 'string' || typeof value === 'number')
      changes.push(labelChange(`io.bosh.stemcell.${key}`, String(value)));
  }
  for (const [key, value] of Object.entries(tags))
    changes.push(labelChange(`${LABELS.stemcellTag}${key}`, value));

  ctx.logger.info(
    `Importing stemcell ${cid} from ${imagePath} (${(size / 1048576).toFixed(1)} MiB) into ${ctx.docker.endpoint}`,
  );
  const source = handle
    .createReadStream({ highWaterMark: 1 << 20 })
    .pipe(progressMeter(size, (line) => ctx.logger.info(line)));
  try {
    await ctx.images.import(source, STEMCELL_REPO, cid, changes, (line) =>
      ctx.logger.debug(`import: ${line}`),
    );
  } catch (e) {
    // The engine may have created the image before failing; leave nothing behind.
    await ctx.images.remove(stemcellImageRef(cid), { force: true }).catch(() => undefined);
    throw e;
  } finally {
    await handle.close().catch(() => undefined);
  }
  return cid;
}

/**
 * Removes the stemcell's image. While containers still use it, only its tag goes; the image
 * itself is removed by delete_vm when its last container goes (see removeUnusedStemcellImage).
 */
export async function deleteStemcell(ctx: DockerContext, cid: StemcellCid): Promise<void> {
  if (!isId('stemcell', cid)) {
    ctx.logger.info(`'${cid}' is not a stemcell ID of this CPI; nothing to delete`);
    return;
  }
  const ref = stemcellImageRef(cid);
  const outcome = await ctx.images.remove(ref);
  if (outcome === 'in-use') {
    await ctx.images.remove(ref, { force: true });
    ctx.logger.info(`Stemcell ${cid} is still used by VMs: untagged; its image goes with the last of them`);
  } else {
    ctx.logger.info(outcome === 'absent' ? `Stemcell ${cid} was already gone` : `Deleted stemcell ${cid}`);
  }
}

/** Called after a container is removed: drops a deleted stemcell's image once nothing uses it. */
export async function removeUnusedStemcellImage(ctx: DockerContext, imageId: string): Promise<void> {
  const image = await ctx.images.inspect(imageId);
  if (!image || (image.RepoTags ?? []).length > 0 || !image.Config?.Labels?.[LABELS.stemcell]) return;
  const outcome = await ctx.images.remove(imageId);
  if (outcome === 'removed')
    ctx.logger.info(`Removed the image of deleted stemcell ${image.Config.Labels[LABELS.stemcell]}`);
}

/** Every deleted stemcell's image that no container uses any more (a retried delete_vm no longer knows which). */
export async function removeUnusedStemcellImages(ctx: DockerContext): Promise<void> {
  for (const image of await ctx.images.list([LABELS.stemcell], true))
    await removeUnusedStemcellImage(ctx, image.Id);
}
