import type { Readable } from 'node:stream';
import { apiError, DockerApiError, type DockerClient } from './client.ts';

export interface ProgressMessage {
  status?: string;
  progress?: string;
  stream?: string;
}

/**
 * Sends a tar stream to an endpoint that answers with newline-delimited JSON progress
 * (/images/create, /images/load). The engine answers 200 and reports failures inside the
 * stream, so every line is checked for an `error`; other lines go to `onMessage`.
 */
export async function postWithProgress(
  docker: DockerClient,
  path: string,
  body: Readable,
  what: string,
  timeoutMs: number,
  /** Called for every line that is not an error; `message` is undefined when the line is not JSON. */
  onMessage: (message: ProgressMessage | undefined, raw: string) => void,
): Promise<void> {
  let buffered = '';
  let failure: string | undefined;
  const handle = (line: string) => {
    if (!line.trim()) return;
    let message: ProgressMessage & { error?: string };
    try {
      message = JSON.parse(line);
    } catch {
      onMessage(undefined, line);
      return;
    }
    if (message.error) failure = message.error;
    else onMessage(message, line);
  };
  const res = await docker.transport.stream(
    { method: 'POST', path, headers: { 'content-type': 'application/x-tar' }, body, timeoutMs },
    (chunk) => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) handle(line);
    },
  );
  handle(buffered);
  if (res.status >= 400) throw apiError(res.status, res.body, what);
  if (failure) throw new DockerApiError(500, failure, what);
}
