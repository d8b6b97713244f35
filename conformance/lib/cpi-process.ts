import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/**
 * A CPI process as the Director runs one: a command, one request on stdin, one response on
 * stdout, the exit code. The one driver the tests, the conformance suite and the benchmarks
 * share; each adds only what it checks or measures on top.
 */

export interface CpiErrorBody {
  type: string;
  message: string;
  ok_to_retry: boolean;
}

export interface CpiResponse<T = unknown> {
  result: T;
  error: CpiErrorBody | null;
  log: string;
}

export interface ProcessRun {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  ms: number;
  /** Killed on purpose (killAfterMs), not for running too long. */
  killed: boolean;
  timedOut: boolean;
}

export interface ProcessOptions {
  /** The environment, whole (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** SIGKILL the whole process group after this many ms (fault injection). */
  killAfterMs?: number;
  /** Give up and SIGKILL after this many ms. */
  timeoutMs?: number;
}

export interface RequestFields {
  directorUuid: string;
  /** null leaves api_version out (as the Director's info call and the CLI's v1 calls do). */
  apiVersion: number | null;
  context?: Record<string, unknown>;
  /** Top-level keys added to the request (unknown-field cases). */
  extra?: Record<string, unknown>;
}

/** The request JSON a Director sends. */
export function cpiRequest(method: string, args: unknown[], fields: RequestFields): string {
  return JSON.stringify({
    method,
    arguments: args,
    context: {
      director_uuid: fields.directorUuid,
      request_id: `cpi-${randomBytes(3).readUIntBE(0, 3)}`,
      ...(fields.context ?? {}),
    },
    ...(fields.apiVersion === null ? {} : { api_version: fields.apiVersion }),
    ...(fields.extra ?? {}),
  });
}

/** The response on stdout, or undefined when stdout is not one JSON document. */
export function parseResponse<T = unknown>(stdout: string): CpiResponse<T> | undefined {
  try {
    return JSON.parse(stdout) as CpiResponse<T>;
  } catch {
    return undefined;
  }
}

/**
 * Runs `argv` with `input` on stdin. The process leads its own group, so a kill reaches it and
 * everything it forked.
 */
export function runProcess(
  argv: readonly string[],
  input: string | Buffer,
  opts: ProcessOptions = {},
): Promise<ProcessRun> {
  const [command = '', ...args] = argv;
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
      env: opts.env ?? process.env,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let killed = false;
    let timedOut = false;
    const killGroup = () => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timers: NodeJS.Timeout[] = [];
    if (opts.killAfterMs !== undefined)
      timers.push(
        setTimeout(() => {
          killed = true;
          killGroup();
        }, opts.killAfterMs),
      );
    if (opts.timeoutMs !== undefined)
      timers.push(
        setTimeout(() => {
          timedOut = true;
          killGroup();
        }, opts.timeoutMs),
      );
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.stdin.on('error', () => {});
    child.stdin.end(input);
    child.on('close', (exitCode, signal) => {
      for (const t of timers) clearTimeout(t);
      resolve({
        exitCode,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        ms: performance.now() - started,
        killed: killed && !timedOut,
        timedOut,
      });
    });
  });
}

/**
 * The same, blocking: nothing else runs in this process meanwhile, so `ms` is the child's wall
 * time plus fork/exec (what the benchmarks time serial calls with).
 */
export function runProcessSync(
  argv: readonly string[],
  input: string | Buffer,
  opts: Pick<ProcessOptions, 'env'> = {},
): ProcessRun {
  const [command = '', ...args] = argv;
  const started = performance.now();
  const child = spawnSync(command, args, { input, env: opts.env ?? process.env, maxBuffer: 64 << 20 });
  return {
    exitCode: child.status,
    signal: child.signal,
    stdout: child.stdout.toString('utf8'),
    stderr: child.stderr.toString('utf8'),
    ms: performance.now() - started,
    killed: false,
    timedOut: false,
  };
}
