import { DockerApi } from '../../conformance/lib/docker.ts';

/**
 * The "raw backend" side of the comparisons: the bare Engine API requests, sent from this
 * (already running) process over the local socket with keep-alive. No process start-up, no
 * validation, no lookups: the least work Docker itself needs for the same result.
 */
export class RawEngine extends DockerApi {
  constructor(socketPath = '/var/run/docker.sock', version = '1.41') {
    super(`unix://${socketPath}`, { maxSockets: 64, version });
  }
}

/** Times an async step in ms. */
export async function timed<T>(step: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await step();
  return { ms: performance.now() - started, value };
}
