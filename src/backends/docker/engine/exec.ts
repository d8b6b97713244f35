import type { DockerClient } from './client.ts';
import { apiError } from './client.ts';
import type { ExecResult } from './types.ts';

/**
 * Splits the engine's multiplexed exec stream (8-byte frame headers: stream type, 3 zero
 * bytes, big-endian length) into stdout and stderr.
 */
export class StreamDemuxer {
  private pending: Buffer = Buffer.alloc(0);
  readonly stdout: Buffer[] = [];
  readonly stderr: Buffer[] = [];

  push(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (this.pending.length >= 8) {
      const length = this.pending.readUInt32BE(4);
      if (this.pending.length < 8 + length) return;
      const frame = this.pending.subarray(8, 8 + length);
      (this.pending[0] === 2 ? this.stderr : this.stdout).push(frame);
      this.pending = this.pending.subarray(8 + length);
    }
  }
}

export async function execInContainer(
  docker: DockerClient,
  containerId: string,
  cmd: string[],
  what: string,
  timeoutMs = 600_000,
): Promise<ExecResult> {
  const created = await docker.json<{ Id: string }>('POST', `/containers/${containerId}/exec`, what, {
    body: { Cmd: cmd, AttachStdout: true, AttachStderr: true, Tty: false },
  });
  const demux = new StreamDemuxer();
  const started = await docker.transport.stream(
    {
      method: 'POST',
      path: await docker.path(`/exec/${created.Id}/start`),
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify({ Detach: false, Tty: false })),
      timeoutMs,
    },
    (chunk) => demux.push(chunk),
  );
  if (started.status >= 400) throw apiError(started.status, started.body, what);
  const inspected = await docker.json<{ ExitCode: number | null; Running: boolean }>(
    'GET',
    `/exec/${created.Id}/json`,
    what,
  );
  return {
    exitCode: inspected.ExitCode ?? -1,
    stdout: Buffer.concat(demux.stdout).toString('utf8'),
    stderr: Buffer.concat(demux.stderr).toString('utf8'),
  };
}
