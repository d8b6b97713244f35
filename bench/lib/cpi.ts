import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import {
  type CpiErrorBody,
  cpiRequest,
  type ProcessRun,
  parseResponse,
  runProcess,
  runProcessSync,
} from '../../conformance/lib/cpi-process.ts';

export const REPO = join(import.meta.dirname, '../..');
export const CPI_BIN = join(REPO, 'bin/cpi');
/** The executable bin/cpi runs (and the release packages): what a comparison with another CPI's binary runs. */
export const COMPILED_CPI = join(REPO, 'dist/cpi');

export type CpiError = CpiErrorBody;

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
    return cpiRequest(method, args, { directorUuid: this.directorUuid, apiVersion: this.apiVersion });
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

  private parse<T>(method: string, run: ProcessRun): CpiResult<T> {
    const response = parseResponse<T>(run.stdout);
    if (!response) throw new Error(`${method}: the CPI wrote no JSON response: ${run.stdout}\n${run.stderr}`);
    return {
      ms: run.ms,
      result: response.result,
      error: response.error,
      log: response.log,
      stderr: run.stderr,
    };
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
    const run = runProcessSync([this.bin, ...this.argv], this.request(method, args), {
      env: this.env(method),
    });
    return this.parse<T>(method, run);
  }

  private async callOnce<T>(method: string, args: unknown[]): Promise<CpiResult<T>> {
    const run = await runProcess([this.bin, ...this.argv], this.request(method, args), {
      env: this.env(method),
    });
    return this.parse<T>(method, run);
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
