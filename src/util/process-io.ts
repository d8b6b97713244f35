/**
 * The process's own input and output: the request on stdin, the response on stdout, log lines on
 * stderr and the files a config names. The shipped executable runs on Bun, where loading
 * `node:fs` costs ~2 ms and `process.stdout`/`process.stderr` ~8 ms of every call; its native
 * API does the same without either. On Node (development, unit tests) node:fs is loaded on
 * first use. bench/README.md ("Start-up") has the measurements.
 */
import type * as NodeFs from 'node:fs';
import { type BunRuntime, bun } from './bun.ts';

let nodeFs: typeof NodeFs | undefined;
const fs = (): typeof NodeFs => {
  nodeFs ??= process.getBuiltinModule('node:fs');
  return nodeFs;
};

export class InputTooLarge extends Error {
  constructor(readonly size: number) {
    super(`input of ${size} bytes`);
  }
}

/**
 * All of stdin. Past `limit` bytes reading goes on (so the caller's write never blocks) but
 * nothing more is kept, and InputTooLarge is thrown at the end.
 */
export async function readStdin(limit: number): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const keep = (chunk: Uint8Array) => {
    size += chunk.length;
    if (size <= limit + 1) chunks.push(chunk);
  };
  if (bun) {
    for await (const chunk of bun.stdin.stream()) keep(chunk);
  } else {
    try {
      for (;;) {
        const buffer = Buffer.allocUnsafe(65536);
        const n = fs().readSync(0, buffer, 0, buffer.length, null);
        if (n === 0) break;
        keep(buffer.subarray(0, n));
      }
    } catch {
      // A non-blocking stdin (EAGAIN) is read through process.stdin from where the reads stopped.
      for await (const chunk of process.stdin as AsyncIterable<Buffer>) keep(chunk);
    }
  }
  if (size > limit) throw new InputTooLarge(size);
  return Buffer.concat(chunks);
}

/** Writes all of `bytes` to stdout; resolves once they are written. */
export async function writeStdout(bytes: Uint8Array): Promise<void> {
  if (bun) {
    await bun.write(bun.stdout, bytes);
    return;
  }
  let written = 0;
  try {
    while (written < bytes.length) written += fs().writeSync(1, bytes, written);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
    await new Promise<void>((resolve, reject) =>
      process.stdout.write(bytes.subarray(written), (err) => (err ? reject(err) : resolve())),
    );
  }
}

/** Writes one line to stderr before returning (a call killed later still leaves it behind). */
export function writeStderrLine(line: string): void {
  if (bun) {
    // Bun's console writes synchronously to its file descriptor; '%s' keeps a '%' in `line` as is.
    // A stderr nobody reads any more must not fail the call: the line is in the response's log too.
    try {
      console.error('%s', line);
    } catch {
      // dropped
    }
    return;
  }
  const bytes = Buffer.from(`${line}\n`);
  let written = 0;
  try {
    while (written < bytes.length) written += fs().writeSync(2, bytes, written);
  } catch {
    process.stderr.write(bytes.subarray(written));
  }
}

/**
 * A file's text; a failure carries the errno code (ENOENT, EACCES, EISDIR…) as Node's does. On
 * Bun the file is mapped (0.1 ms, against ~1 ms for the first asynchronous read of a process);
 * what cannot be mapped (an empty file, a FIFO) is read.
 */
export async function readTextFile(path: string): Promise<string> {
  if (bun) return mappedText(bun, path) ?? bun.file(path).text();
  return fs().promises.readFile(path, 'utf8');
}

/** The same, synchronously, for the rare file read while a config is checked (TLS material). */
export function readTextFileSync(path: string): string {
  // What cannot be mapped is read through node:fs, whose error says why.
  return (bun && mappedText(bun, path)) ?? fs().readFileSync(path, 'utf8');
}

/** The file's text through Bun's mmap; undefined when it cannot be mapped. */
function mappedText(runtime: BunRuntime, path: string): string | undefined {
  try {
    return new TextDecoder().decode(runtime.mmap(path));
  } catch {
    return undefined;
  }
}
