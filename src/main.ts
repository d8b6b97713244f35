import { handleCall } from './handle.ts';
import { Redactor } from './log/redact.ts';
import { asCpiFailure, cpiError } from './rpc/errors.ts';
import { MAX_REQUEST_BYTES } from './rpc/request.ts';
import { type CpiResponse, errorResponse } from './rpc/response.ts';

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    // Keep reading (and dropping) past the limit so the caller's write never blocks.
    if (size <= MAX_REQUEST_BYTES + 1) chunks.push(chunk);
  }
  if (size > MAX_REQUEST_BYTES)
    throw cpiError(`Request is ${size} bytes, more than the ${MAX_REQUEST_BYTES} bytes accepted`);
  return Buffer.concat(chunks);
}

async function main(): Promise<void> {
  const redactor = new Redactor();
  let response: CpiResponse;
  try {
    response = await handleCall({ readInput: readStdin, argv: process.argv.slice(2), redactor });
  } catch (e) {
    response = errorResponse(asCpiFailure(e), '', redactor.redact);
  }
  const line = `${JSON.stringify(response)}\n`;
  process.stdout.write(line, (err) => process.exit(err ? 1 : 0));
}

void main();
