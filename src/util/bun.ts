/**
 * Bun's global API, as far as this CPI uses it, when the process runs on Bun (the shipped
 * executable); undefined on Node. Declared here rather than through @types/bun, which would also
 * retype Node's globals. process-io.ts, random.ts and unix-socket.ts use it to stay clear of Node
 * built-ins whose loading costs the executable milliseconds per call (bench/README.md, "Start-up").
 */

/** The part of a Bun socket used here. */
export interface BunSocket {
  write(data: Buffer | string): number;
  pause(): void;
  resume(): void;
  ref(): void;
  unref(): void;
  terminate(): void;
}

export interface BunSocketHandlers {
  data(socket: BunSocket, data: Buffer): void;
  drain(socket: BunSocket): void;
  end(socket: BunSocket): void;
  close(socket: BunSocket, error?: Error): void;
  error(socket: BunSocket, error: Error): void;
}

export interface BunRuntime {
  stdin: { stream(): ReadableStream<Uint8Array> };
  stdout: unknown;
  file(path: string): { text(): Promise<string> };
  mmap(path: string): Uint8Array;
  write(destination: unknown, data: Uint8Array | string): Promise<number>;
  CryptoHasher: new (
    algorithm: 'sha256',
  ) => { update(data: string): unknown; digest(encoding: 'hex'): string };
  connect(options: { unix: string; socket: BunSocketHandlers }): Promise<BunSocket>;
}

export const bun: BunRuntime | undefined = (globalThis as { Bun?: BunRuntime }).Bun;
