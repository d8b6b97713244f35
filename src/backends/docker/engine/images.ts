import type { Readable } from 'node:stream';
import type { DockerClient } from './client.ts';
import { postWithProgress } from './progress.ts';
import type { ImageInspect } from './types.ts';

/** /images endpoints. */
export class Images {
  constructor(private readonly docker: DockerClient) {}

  /**
   * Streams a (possibly gzipped) rootfs tarball into `docker import`. The engine answers 200 and
   * reports failures inside its progress stream, so every line is checked for an error.
   */
  async import(
    source: Readable,
    repo: string,
    tag: string,
    changes: string[],
    onProgress: (line: string) => void,
  ): Promise<string> {
    const query = new URLSearchParams({ fromSrc: '-', repo, tag });
    for (const change of changes) query.append('changes', change);
    const path = `${await this.docker.path('/images/create')}?${query.toString()}`;
    let imageId = '';
    await postWithProgress(this.docker, path, source, `Importing image ${repo}:${tag}`, 0, (msg, raw) => {
      if (!msg) onProgress(raw);
      else if (msg.status && /^sha256:[0-9a-f]{64}$/.test(msg.status)) imageId = msg.status;
      else if (msg.status) onProgress(`${msg.status} ${msg.progress ?? ''}`.trim());
    });
    return imageId;
  }

  async inspect(ref: string): Promise<ImageInspect | undefined> {
    return this.docker.inspect<ImageInspect>(
      `/images/${encodeURIComponent(ref)}/json`,
      `Inspecting image '${ref}'`,
    );
  }

  async tag(ref: string, repo: string, tag: string): Promise<void> {
    await this.docker.call('POST', `/images/${encodeURIComponent(ref)}/tag`, `Tagging image '${ref}'`, {
      query: { repo, tag },
    });
  }

  /** Returns 'removed', 'absent' or 'in-use' (a container still uses the image). */
  async remove(
    ref: string,
    opts: { force?: boolean; noprune?: boolean } = {},
  ): Promise<'removed' | 'absent' | 'in-use'> {
    const res = await this.docker.call(
      'DELETE',
      `/images/${encodeURIComponent(ref)}`,
      `Removing image '${ref}'`,
      {
        query: { force: opts.force ?? false, noprune: opts.noprune ?? false },
        accept: [404, 409],
      },
    );
    return res.status === 404 ? 'absent' : res.status === 409 ? 'in-use' : 'removed';
  }

  list(
    labels: string[],
    dangling?: boolean,
  ): Promise<Array<{ Id: string; RepoTags: string[] | null; Labels: Record<string, string> | null }>> {
    const filters: Record<string, string[]> = { label: labels };
    if (dangling !== undefined) filters.dangling = [String(dangling)];
    return this.docker.json('GET', '/images/json', 'Listing images', {
      query: { filters: JSON.stringify(filters) },
    });
  }
}
