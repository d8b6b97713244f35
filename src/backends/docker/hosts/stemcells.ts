import type { Transform } from 'node:stream';
import type { CloudProperties, Metadata, StemcellCid } from '../../../cpi/types.ts';
import { CpiFailure, cloudError, vmCreationFailed } from '../../../rpc/errors.ts';
import { apiError } from '../engine/client.ts';
import { postWithProgress } from '../engine/progress.ts';
import type { ImageInspect } from '../engine/types.ts';
import { newId, stemcellImageRef } from '../ids.ts';
import * as stemcells from '../stemcells.ts';
import { withTimeout } from './placement.ts';
import type { DockerHost, HostPool } from './pool.ts';

/** How long create_vm waits for other hosts to say whether they hold a stemcell it needs. */
const LOOKUP_TIMEOUT_MS = 10_000;

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * One stemcell, one CID, imported into every host at once. A host that fails (it is down, say)
 * does not fail the upload as long as one host has the image: create_vm copies it from there
 * when it first needs it on the other host (see ensureStemcell).
 */
export async function createStemcell(
  pool: HostPool,
  imagePath: string,
  props: CloudProperties,
  tags: Metadata,
): Promise<StemcellCid> {
  const cid = newId('stemcell');
  if (pool.hosts.length === 1)
    return pool.on(pool.first, (h) => stemcells.createStemcell(h.context, imagePath, props, tags, cid));
  pool.logger.info(`Importing stemcell ${cid} into Docker hosts ${pool.names} in parallel`);
  const outcomes = await Promise.allSettled(
    pool.hosts.map((host) =>
      pool.on(host, (h) => stemcells.createStemcell(h.context, imagePath, props, tags, cid)),
    ),
  );
  const failed = pool.hosts
    .map((host, i) => ({ host, outcome: outcomes[i] as PromiseSettledResult<string> }))
    .filter(
      (x): x is { host: DockerHost; outcome: PromiseRejectedResult } => x.outcome.status === 'rejected',
    );
  if (failed.length === pool.hosts.length) {
    const reasons = failed.map((f) => messageOf(f.outcome.reason)).join('; ');
    const retry = failed.some((f) => f.outcome.reason instanceof CpiFailure && f.outcome.reason.okToRetry);
    throw cloudError(`Stemcell could not be imported into any Docker host: ${reasons}`, retry);
  }
  for (const f of failed)
    pool.logger.warn(
      `Stemcell ${cid} is not on Docker host '${f.host.name}' (${messageOf(f.outcome.reason)}); ` +
        'the first create_vm there copies it from a host that has it',
    );
  const ok = pool.hosts.filter((h) => !failed.some((f) => f.host === h)).map((h) => h.name);
  pool.logger.info(`Stemcell ${cid} is on Docker host${ok.length > 1 ? 's' : ''} ${ok.join(', ')}`);
  return cid;
}

/**
 * Removes the stemcell from every host. A host that cannot be reached fails the call (after the
 * others were cleaned), so the Director retries and no host keeps an orphaned image.
 */
export async function deleteStemcell(pool: HostPool, cid: StemcellCid): Promise<void> {
  const outcomes = await Promise.allSettled(
    pool.hosts.map((host) => pool.on(host, (h) => stemcells.deleteStemcell(h.context, cid))),
  );
  const failures = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failures.length === 1) throw failures[0]?.reason;
  if (failures.length > 1) {
    const retry = failures.some((f) => f.reason instanceof CpiFailure && f.reason.okToRetry);
    throw cloudError(
      `Deleting stemcell '${cid}' failed on ${failures.length} hosts: ${failures.map((f) => messageOf(f.reason)).join('; ')}`,
      retry,
    );
  }
}

/**
 * Makes sure `target` has the stemcell's image before a VM is created there. When it lacks it
 * (it was down during create_stemcell, or joined the config later) the image is streamed from
 * another engine that has it: GET /images/{name}/get there, POST /images/load here. The CPI keeps
 * no copy of its own; the engines are the store, and `docker load` checks every layer's digest.
 */
export async function ensureStemcell(pool: HostPool, target: DockerHost, cid: StemcellCid): Promise<void> {
  if (pool.hosts.length === 1) return;
  const ref = stemcellImageRef(cid);
  if (await target.context.images.inspect(ref)) return;
  const others = pool.hosts.filter((h) => h !== target);
  const lookups = await Promise.all(
    others.map(async (host) => {
      try {
        const image = await withTimeout(host.context.images.inspect(ref), LOOKUP_TIMEOUT_MS, 'image lookup');
        return { host, image, error: undefined };
      } catch (e) {
        const failure = pool.failure(host, e);
        return { host, image: undefined, error: messageOf(failure) };
      }
    }),
  );
  const source = lookups.find((l) => l.image);
  if (!source?.image) {
    const unreachable = lookups.filter((l) => l.error);
    const why = lookups.map((l) => `${l.host.name}: ${l.error ?? 'not there'}`).join('; ');
    throw vmCreationFailed(
      `Stemcell '${cid}' is not on Docker host '${target.name}' nor on any other reachable host (${why})` +
        (unreachable.length ? '' : '; upload the stemcell again'),
      unreachable.length > 0,
    );
  }
  await copyImage(pool, source.host, target, ref, source.image);
}

/** Streams an image from one engine into another; the image keeps its ID, tag and labels. */
async function copyImage(
  pool: HostPool,
  from: DockerHost,
  to: DockerHost,
  ref: string,
  image: ImageInspect,
): Promise<void> {
  const size = (image as ImageInspect & { Size?: number }).Size ?? 0;
  const log = pool.logger;
  log.info(
    `Copying stemcell image ${ref} (${(size / 1048576).toFixed(1)} MiB) from Docker host '${from.name}' to '${to.name}'`,
  );
  const started = performance.now();
  const exported = await pool.on(from, async (h) => {
    const docker = h.context.docker;
    const res = await docker.transport.open({
      method: 'GET',
      path: await docker.path(`/images/${encodeURIComponent(ref)}/get`),
      timeoutMs: 300_000,
    });
    if (res.status >= 400) {
      const chunks: Buffer[] = [];
      for await (const c of res.body) chunks.push(c as Buffer);
      throw apiError(res.status, Buffer.concat(chunks), `Exporting image '${ref}'`);
    }
    return res.body;
  });
  let seen = 0;
  let next = 0.25;
  const { Transform } = process.getBuiltinModule('node:stream');
  const meter: Transform = new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (size > 0 && seen / size >= next) {
        log.info(`Copied ${Math.min(100, Math.round((seen / size) * 100))}% of ${ref} to '${to.name}'`);
        while (seen / size >= next) next += 0.25;
      }
      done(null, chunk);
    },
  });
  exported.on('error', (e) => meter.destroy(e));
  await pool.on(to, async (h) => {
    const docker = h.context.docker;
    await postWithProgress(
      docker,
      await docker.path('/images/load', { quiet: true }),
      exported.pipe(meter),
      `Loading image '${ref}'`,
      300_000,
      () => {},
    );
    if (!(await h.context.images.inspect(ref)))
      throw cloudError(`Loading image '${ref}' reported success, but the image is not there`);
  });
  log.info(
    `Stemcell image ${ref} is now on Docker host '${to.name}' (${(seen / 1048576).toFixed(1)} MiB in ${Math.round(performance.now() - started)} ms)`,
  );
}
