import { DockerApiError, type DockerClient } from './client.ts';
import { createTar, firstFileOf, type TarEntry } from './tar.ts';
import type { ContainerInspect, ContainerSummary } from './types.ts';

/** How long a start refused because another start is under way keeps trying. */
const START_RACE_WAIT_MS = 60_000;
/** How long it waits for the other start each time before it tries again. */
const OTHER_START_WAIT_MS = 2_000;

/** containerd's refusal of a start while a task of the container exists ("task <id>: already exists"). */
export const isStartRace = (e: unknown): e is DockerApiError =>
  e instanceof DockerApiError && e.status === 500 && /already exists/i.test(e.apiMessage);

/** /containers endpoints. */
export class Containers {
  constructor(private readonly docker: DockerClient) {}

  async create(name: string, spec: Record<string, unknown>): Promise<string> {
    const res = await this.docker.json<{ Id: string }>(
      'POST',
      '/containers/create',
      `Creating container '${name}'`,
      {
        query: { name },
        body: spec,
      },
    );
    return res.Id;
  }

  /**
   * Starts the container; 304 (already running) is success. A start racing another one (the
   * engine's restart policy after an engine restart, or another CPI process) can be refused by
   * containerd with "task <id>: already exists". Then the other start is waited for (up to
   * 2 s), and the container started again if it did not come up: the refused start's cleanup can
   * undo the other one, and the restart policy then tries again later, so both keep trying until
   * one of them gets through or `raceWaitMs` has passed.
   */
  async start(
    id: string,
    raceWaitMs = START_RACE_WAIT_MS,
    otherStartWaitMs = OTHER_START_WAIT_MS,
  ): Promise<void> {
    const deadline = Date.now() + raceWaitMs;
    for (;;) {
      try {
        await this.startOnce(id);
        return;
      } catch (e) {
        if (!isStartRace(e) || Date.now() >= deadline) throw e;
      }
      const settled = Math.min(deadline, Date.now() + otherStartWaitMs);
      for (;;) {
        if ((await this.inspect(id))?.State?.Running) return;
        if (Date.now() >= settled) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private async startOnce(id: string): Promise<void> {
    await this.docker.call('POST', `/containers/${id}/start`, `Starting container '${id}'`, {
      accept: [304],
    });
  }

  async inspect(id: string): Promise<ContainerInspect | undefined> {
    return this.docker.inspect<ContainerInspect>(
      `/containers/${encodeURIComponent(id)}/json`,
      `Inspecting container '${id}'`,
    );
  }

  list(labels: string[], all = true): Promise<ContainerSummary[]> {
    return this.docker.json<ContainerSummary[]>('GET', '/containers/json', 'Listing containers', {
      query: { all, filters: JSON.stringify({ label: labels }) },
    });
  }

  /** Returns false when the container was already gone. */
  async remove(id: string, opts: { force?: boolean; volumes?: boolean } = {}): Promise<boolean> {
    const res = await this.docker.call('DELETE', `/containers/${id}`, `Removing container '${id}'`, {
      query: { force: opts.force ?? true, v: opts.volumes ?? false },
      accept: [404],
      timeoutMs: 300_000,
    });
    return res.status !== 404;
  }

  /**
   * Sends the container's stop signal and waits; the engine kills it after `timeoutSeconds`
   * (default: the container's StopTimeout, else the engine's 10 s). 304: not running.
   */
  async stop(id: string, timeoutSeconds?: number): Promise<void> {
    await this.docker.call('POST', `/containers/${id}/stop`, `Stopping container '${id}'`, {
      query: { t: timeoutSeconds },
      accept: [304, 404],
      timeoutMs: ((timeoutSeconds ?? 60) + 120) * 1000,
    });
  }

  async restart(id: string, timeoutSeconds: number): Promise<void> {
    await this.docker.call('POST', `/containers/${id}/restart`, `Restarting container '${id}'`, {
      query: { t: timeoutSeconds },
      timeoutMs: (timeoutSeconds + 120) * 1000,
    });
  }

  /** Returns false when there is no container `id` (by ID or name). */
  async rename(id: string, name: string): Promise<boolean> {
    const res = await this.docker.call(
      'POST',
      `/containers/${encodeURIComponent(id)}/rename`,
      `Renaming container '${id}' to '${name}'`,
      { query: { name }, accept: [404] },
    );
    return res.status !== 404;
  }

  /** Unpacks files into the container's filesystem (running or not). */
  async putFiles(id: string, dir: string, entries: TarEntry[]): Promise<void> {
    await this.docker.call(
      'PUT',
      `/containers/${id}/archive`,
      `Writing files into '${dir}' of container '${id}'`,
      {
        query: { path: dir },
        rawBody: createTar(entries),
        contentType: 'application/x-tar',
      },
    );
  }

  /** Reads one file from the container's filesystem; undefined when it does not exist. */
  async readFile(id: string, path: string): Promise<Buffer | undefined> {
    const res = await this.docker.call(
      'GET',
      `/containers/${id}/archive`,
      `Reading '${path}' of container '${id}'`,
      {
        query: { path },
        accept: [404],
      },
    );
    return res.status === 404 ? undefined : firstFileOf(res.body);
  }
}
