import { mkdtempSync } from 'node:fs';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Starts `server` (an http or net server standing in for an engine) on a socket in a fresh temp dir. */
export async function listenOnUnixSocket(
  server: Server,
): Promise<{ socket: string; close: () => Promise<void> }> {
  const socket = join(mkdtempSync(join(tmpdir(), 'fake-engine-')), 'docker.sock');
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return { socket, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
