import type { DockerClient } from './client.ts';
import type { EngineInfo } from './types.ts';

/** /info: what the engine says about the host it runs on. */
export class System {
  private cached: Promise<EngineInfo> | undefined;

  constructor(private readonly docker: DockerClient) {}

  /** Asked once per process: a host's cgroup version does not change between two calls. */
  info(): Promise<EngineInfo> {
    this.cached ??= this.docker
      .json<EngineInfo>('GET', '/info', 'Reading the engine information', { timeoutMs: 30_000 })
      .catch((e: unknown) => {
        this.cached = undefined;
        throw e;
      });
    return this.cached;
  }
}
