import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type CpiResponse,
  cpiRequest,
  parseResponse,
  runProcess,
} from '../../conformance/lib/cpi-process.ts';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CPI_BIN = join(REPO, 'bin/cpi');

export interface CpiRun {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  response: CpiResponse;
  ms: number;
}

/** Runs the real bin/cpi as BOSH does: one request on stdin, one response on stdout. */
export async function runCpi(
  configPath: string,
  input: string | Buffer,
  opts: { argv?: string[]; user?: string } = {},
): Promise<CpiRun> {
  const args = opts.argv ?? [configPath];
  const argv = opts.user ? ['runuser', '-u', opts.user, '--', CPI_BIN, ...args] : [CPI_BIN, ...args];
  const run = await runProcess(argv, input);
  const response = parseResponse(run.stdout);
  if (!response)
    throw new Error(`CPI wrote no JSON response (exit ${run.exitCode}): ${run.stdout}\n${run.stderr}`);
  return { exitCode: run.exitCode, stdout: run.stdout, stderr: run.stderr, response, ms: run.ms };
}

export function request(
  method: string,
  args: unknown[],
  apiVersion?: number,
  context: Record<string, unknown> = {},
) {
  return cpiRequest(method, args, { directorUuid: 'test-director', apiVersion: apiVersion ?? null, context });
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
