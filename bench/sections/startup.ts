import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bench } from '../lib/context.ts';
import { CPI_BIN, processMs, REPO } from '../lib/cpi.ts';
import { type Summary, summarize } from '../lib/stats.ts';

export interface StartupResult {
  /** The machine's own NODE_EXTRA_CA_CERTS (or the Debian bundle when it has none). */
  extraCaCerts: string;
  /** Rows × {without, with} the variable in the caller's environment. */
  rows: Record<string, { without: Summary; with: Summary }>;
}

const BUNDLE = join(REPO, 'dist/cpi.cjs');

/**
 * Wall time of a whole `info` call next to a bare `node -e 0`, interleaved run by run so load
 * from other users of the machine hits both alike. bin/cpi clears NODE_EXTRA_CA_CERTS before it
 * starts node; the `node dist/cpi.cjs` row runs the bundle without that wrapper, to show both
 * what the variable costs and what the wrapper costs.
 */
export function startup(bench: Bench, reps: number): StartupResult {
  const extraCaCerts = process.env.NODE_EXTRA_CA_CERTS ?? '/etc/ssl/certs/ca-certificates.crt';
  const info = bench.cpi.request('info', []);
  const base: NodeJS.ProcessEnv = { ...process.env };
  delete base.NODE_EXTRA_CA_CERTS;
  delete base.NODE_OPTIONS;
  const envs = { without: base, with: { ...base, NODE_EXTRA_CA_CERTS: extraCaCerts } };
  // bin/cpi with the bundle swapped for an empty file: what the wrapper and loading a file cost.
  const empty = join(bench.tmp, 'empty.cjs');
  const wrapper = join(bench.tmp, 'cpi-wrapper-empty');
  writeFileSync(empty, '');
  const wrapperText = readFileSync(CPI_BIN, 'utf8');
  const bundleRef = '"$here/../dist/cpi.cjs"';
  writeFileSync(wrapper, wrapperText.replace(bundleRef, `'${empty}'`), { mode: 0o755 });
  const variants: Record<string, (env: NodeJS.ProcessEnv) => number> = {
    'node -e 0': (env) => processMs('node', ['-e', '0'], '', env),
    'node empty.cjs': (env) => processMs('node', [empty], '', env),
    ...(wrapperText.includes(bundleRef)
      ? { 'bin/cpi wrapper → empty.cjs': (env: NodeJS.ProcessEnv) => processMs(wrapper, [], '', env) }
      : {}),
    'bin/cpi (info)': (env) => processMs(CPI_BIN, [bench.configPath], info, env),
    'node dist/cpi.cjs (info, no wrapper)': (env) => processMs('node', [BUNDLE, bench.configPath], info, env),
  };
  const samples: Record<string, { without: number[]; with: number[] }> = {};
  for (const name of Object.keys(variants)) samples[name] = { without: [], with: [] };
  // Warm the page cache and the engine's code paths first.
  for (const run of Object.values(variants)) for (let i = 0; i < 3; i++) run(envs.without);
  for (let i = 0; i < reps; i++) {
    for (const [name, run] of Object.entries(variants)) {
      for (const which of i % 2 === 0 ? (['without', 'with'] as const) : (['with', 'without'] as const)) {
        samples[name]?.[which].push(run(envs[which]));
      }
    }
  }
  const rows: StartupResult['rows'] = {};
  for (const [name, s] of Object.entries(samples))
    rows[name] = { without: summarize(s.without), with: summarize(s.with) };
  return { extraCaCerts, rows };
}
