import { readSync, writeSync } from 'node:fs';
import { handleCall } from './handle.ts';
import { Redactor } from './log/redact.ts';
import { asCpiFailure, cpiError } from './rpc/errors.ts';
import { MAX_REQUEST_BYTES } from './rpc/request.ts';
import { type CpiResponse, errorResponse } from './rpc/response.ts';

/**
 * Reads the request straight from fd 0: process.stdin would load Node's stream machinery, a few
 * ms of every call. A stdin that cannot be read that way (non-blocking: EAGAIN) is read through
 * process.stdin from where the direct reads stopped.
 */
async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  const keep = (chunk: Buffer) => {
    size += chunk.length;
    // Keep reading (and dropping) past the limit so the caller's write never blocks.
    if (size <= MAX_REQUEST_BYTES + 1) chunks.push(chunk);
  };
  try {
    for (;;) {
      const buffer = Buffer.allocUnsafe(65536);
      const n = readSync(0, buffer, 0, buffer.length, null);
      if (n === 0) break;
      keep(buffer.subarray(0, n));
    }
  } catch {
    for await (const chunk of process.stdin as AsyncIterable<Buffer>) keep(chunk);
  }
  if (size > MAX_REQUEST_BYTES)
    throw cpiError(`Request is ${size} bytes, more than the ${MAX_REQUEST_BYTES} bytes accepted`);
  return Buffer.concat(chunks);
}

async function main(): Promise<void> {
  const redactor = new Redactor();
  // A promise nobody waits for any more (work abandoned when the call already failed) must not end
  // the process before it has written its response.
  process.on('unhandledRejection', (reason) => {
    writeSync(2, `unhandled rejection (ignored): ${redactor.redact(String(reason))}\n`);
  });
  let response: CpiResponse;
  try {
    response = await handleCall({ readInput: readStdin, argv: process.argv.slice(2), redactor });
  } catch (e) {
    response = errorResponse(asCpiFailure(e), '', redactor.redact);
  }
  writeResponse(Buffer.from(`${JSON.stringify(response)}\n`));
}

/** Writes the response to fd 1 directly (see readStdin), through process.stdout only if fd 1 is non-blocking. */
function writeResponse(bytes: Buffer): void {
  let written = 0;
  try {
    while (written < bytes.length) written += writeSync(1, bytes, written);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') process.exit(1);
    process.stdout.write(bytes.subarray(written), (err) => process.exit(err ? 1 : 0));
    return;
  }
  process.exit(0);
}

void main();
