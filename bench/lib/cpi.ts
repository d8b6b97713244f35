import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';

export const REPO = join(import.meta.dirname, '../..');
export const CPI_BIN = join(REPO, 'bin/cpi');

export interface CpiError {
  type: string;
  message: string;
  ok_to_retry: boolean;
}

export interface CpiResult<T = unknown> {
  ms: number;
  result: T;
  error: CpiError | null;
  log: string;
  stderr: string;
}

/**
 * Runs the real bin/cpi, one process per call, the way the Director does. Serial calls use
 * spawnSync (nothing else runs in this process meanwhile, so the timing is the child's wall
 * time plus fork/exec); concurrent calls use spawn.
 */
export class CpiRunner {
  /** Set to a file path to have every engine request of every call appended there (bench/trace-requests.cjs). */
  traceFile: string | undefined;
  /**
   * A call that answers an error is run again this many times (after a second), and the error is
   * kept in `failures`: on a shared Docker host other people's engines come and go (the helper then
   * briefly finds a vanishing dockerd), which should not end a long run. Only successful runs are timed.
   */
  retries = 0;
  readonly failures: Array<{ method: string; error: string }> = [];
  /** The arguments `bin` is run with: the config path unless set (another CPI's own form). */
  argv: string[];
  /** Extra environment of every call. */
  extraEnv: NodeJS.ProcessEnv = {};

  constructor(
    readonly configPath: string,
    readonly directorUuid: string,
    /** The wrapper to run: this checkout's bin/cpi unless comparing against another build. */
    readonly bin = CPI_BIN,
    readonly apiVersion = 2,
  ) {
    this.argv = [configPath];
  }

  request(method: string, args: unknown[]): string {
    return JSON.stringify({
      method,
      arguments: args,
      context: { director_uuid: this.directorUuid, request_id: `cpi-${randomUUID().slice(0, 8)}` },
      api_version: this.apiVersion,
    });
  }

  private env(method: string): NodeJS.ProcessEnv {
    if (!this.traceFile) return { ...process.env, ...this.extraEnv };
    return {
      ...process.env,
      ...this.extraEnv,
      // The trace hooks node:http: the traced call runs the same bundle on Node, not the compiled CPI.
      BOSH_CPI_NODE: process.execPath,
      NODE_OPTIONS: `--require ${join(REPO, 'bench/trace-requests.cjs')}`,
      BENCH_TRACE_FILE: this.traceFile,
      BENCH_TRACE_TAG: method,
    };
  }

  private parse<T>(method: string, stdout: string, stderr: string, ms: number): CpiResult<T> {
    let response: { result: T; error: CpiError | null; log: string };
    try {
      response = JSON.parse(stdout);
    } catch {
      throw new Error(`${method}: the CPI wrote no JSON response: ${stdout}\n${stderr}`);
    }
    return { ms, result: response.result, error: response.error, log: response.log, stderr };
  }

  callSync<T = unknown>(method: string, args: unknown[]): CpiResult<T> {
    for (let attempt = 0; ; attempt++) {
      const r = this.callSyncOnce<T>(method, args);
      if (!r.error || attempt >= this.retries) return r;
      this.failures.push({ method, error: `${r.error.type}: ${r.error.message}` });
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
    }
  }

  async call<T = unknown>(method: string, args: unknown[]): Promise<CpiResult<T>> {
    for (let attempt = 0; ; attempt++) {
      const r = await this.callOnce<T>(method, args);
      if (!r.error || attempt >= this.retries) return r;
      this.failures.push({ method, error: `${r.error.type}: ${r.error.message}` });
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  private callSyncOnce<T>(method: string, args: unknown[]): CpiResult<T> {
    const input = this.request(method, args);
    const started = performance.now();
    const child = spawnSync(this.bin, this.argv, {
      input,
      env: this.env(method),
      maxBuffer: 64 << 20,
    });
    const ms = performance.now() - started;
    return this.parse<T>(method, child.stdout.toString('utf8'), child.stderr.toString('utf8'), ms);
  }

  private callOnce<T>(method: string, args: unknown[]): Promise<CpiResult<T>> {
    const input = this.request(method, args);
    return new Promise((resolve, reject) => {
      const started = performance.now();
      const child = spawn(this.bin, this.argv, {
        env: this.env(method),
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (c: Buffer) => out.push(c));
      child.stderr.on('data', (c: Buffer) => err.push(c));
      child.on('error', reject);
      child.stdin.end(input);
      child.on('close', () => {
        const ms = performance.now() - started;
        try {
          resolve(
            this.parse<T>(
              method,
              Buffer.concat(out).toString('utf8'),
              Buffer.concat(err).toString('utf8'),
              ms,
            ),
          );
        } catch (e) {
          reject(e);
        }
      });
    });
  }
}

/** Throws when the call answered an error: the benchmark measures successful work only. */
export function must<T>(method: string, r: CpiResult<T>): CpiResult<T> {
  if (r.error) throw new Error(`${method} failed: ${r.error.type}: ${r.error.message}\n${r.stderr}`);
  return r;
}

/** Wall time of one process, run to completion with the given stdin, in ms. */
export function processMs(cmd: string, args: string[], input: string, env: NodeJS.ProcessEnv): number {
  const started = performance.now();
  const child = spawnSync(cmd, args, { input, env });
  const ms = performance.now() - started;
  if (child.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${child.status}: ${child.stderr}`);
  return ms;
}
