import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CPI_BIN = join(REPO, 'bin/cpi');

export interface CpiRun {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  response: {
    result: unknown;
    error: null | { type: string; message: string; ok_to_retry: boolean };
    log: string;
  };
  ms: number;
}

/** Runs the real bin/cpi as BOSH does: one request on stdin, one response on stdout. */
export function runCpi(
  configPath: string,
  input: string | Buffer,
  opts: { argv?: string[]; user?: string } = {},
): Promise<CpiRun> {
  const args = opts.argv ?? [configPath];
  const [cmd, cmdArgs] = opts.user ? ['runuser', ['-u', opts.user, '--', CPI_BIN, ...args]] : [CPI_BIN, args];
  return new Promise((resolvePromise, reject) => {
    const started = performance.now();
    const child = spawn(cmd as string, cmdArgs as string[], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.stdin.on('error', () => {});
    child.stdin.end(input);
    child.on('close', (code) => {
      const stdout = Buffer.concat(out).toString('utf8');
      let response: CpiRun['response'];
      try {
        response = JSON.parse(stdout);
      } catch {
        reject(
          new Error(`CPI wrote no JSON response (exit ${code}): ${stdout}\n${Buffer.concat(err).toString()}`),
        );
        return;
      }
      resolvePromise({
        exitCode: code,
        stdout,
        stderr: Buffer.concat(err).toString('utf8'),
        response,
        ms: performance.now() - started,
      });
    });
  });
}

export function request(
  method: string,
  args: unknown[],
  apiVersion?: number,
  context: Record<string, unknown> = {},
) {
  return JSON.stringify({
    method,
    arguments: args,
    context: {
      director_uuid: 'test-director',
      request_id: `cpi-${Math.floor(Math.random() * 1e6)}`,
      ...context,
    },
    ...(apiVersion !== undefined ? { api_version: apiVersion } : {}),
  });
}

export function writeConfig(properties: Record<string, unknown>, plugin = 'docker'): string {
  const dir = mkdtempSync(join(tmpdir(), 'cpi-config-'));
  const path = join(dir, 'cpi.json');
  writeFileSync(path, JSON.stringify({ cloud: { plugin, properties } }), { mode: 0o644 });
  return path;
}

/** A CPI client bound to one config: call('create_vm', [...]) returns the result or throws the CPI error. */
export class Cpi {
  context: Record<string, unknown> = {};

  constructor(
    readonly configPath: string,
    readonly apiVersion = 2,
  ) {}

  async run(method: string, args: unknown[], apiVersion = this.apiVersion): Promise<CpiRun> {
    return runCpi(this.configPath, request(method, args, apiVersion, this.context));
  }

  async call<T = unknown>(method: string, args: unknown[], apiVersion = this.apiVersion): Promise<T> {
    const run = await this.run(method, args, apiVersion);
    if (run.response.error) {
      const e = new Error(
        `${method} failed: ${run.response.error.type}: ${run.response.error.message}`,
      ) as Error & { cpiType: string };
      e.cpiType = run.response.error.type;
      throw e;
    }
    return run.response.result as T;
  }
}
