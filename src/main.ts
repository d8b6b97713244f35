import { handleCall } from './handle.ts';
import { Redactor } from './log/redact.ts';
import { asCpiFailure, cpiError } from './rpc/errors.ts';
import { MAX_REQUEST_BYTES } from './rpc/request.ts';
import { type CpiResponse, errorResponse } from './rpc/response.ts';
import { InputTooLarge, readStdin, writeStderrLine, writeStdout } from './util/process-io.ts';

async function readRequest(): Promise<Buffer> {
  try {
    return await readStdin(MAX_REQUEST_BYTES);
  } catch (e) {
    if (e instanceof InputTooLarge)
      throw cpiError(`Request is ${e.size} bytes, more than the ${MAX_REQUEST_BYTES} bytes accepted`);
    throw e;
  }
}

async function main(): Promise<void> {
  const redactor = new Redactor();
  // A promise nobody waits for any more (work abandoned when the call already failed) must not end
  // the process before it has written its response.
  process.on('unhandledRejection', (reason) => {
    writeStderrLine(`unhandled rejection (ignored): ${redactor.redact(String(reason))}`);
  });
  let response: CpiResponse;
  try {
    response = await handleCall({ readInput: readRequest, argv: process.argv.slice(2), redactor });
  } catch (e) {
    response = errorResponse(asCpiFailure(e), '', redactor.redact);
  }
  // Exits right after the write: work abandoned by a failed call must not keep the process alive.
  writeStdout(Buffer.from(`${JSON.stringify(response)}\n`)).then(
    () => process.exit(0),
    () => process.exit(1),
  );
}

void main();
