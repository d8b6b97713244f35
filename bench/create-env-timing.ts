/**
 * Times a real `bosh create-env` lifecycle for any CPI release + manifest, so that two CPIs can be
 * compared with the same harness (issue 13: "real create-env ≤ 0.5× the Go CPI's wall time"):
 *
 *   npx tsx bench/create-env-timing.ts --bosh <bosh CLI> --manifest <create-env manifest>
 *       [--label NAME] [--work DIR] [--vars-store FILE] [--home DIR] [-v name=value …] [-o ops.yml …]
 *
 * Steps: first deploy, no-change redeploy, `--recreate`, `delete-env` (always attempted). The first
 * deploy runs with a fresh HOME (unless --home), so the CLI compiles the CPI release's packages as on
 * an operator's first create-env. The CLI runs with `--tty` so it prints its stage lines, and every
 * stage line is timed here from when it starts to when it ends (the CLI's own stamps are whole
 * seconds). Prints per step: wall time, the `installing CPI` stage, the rest ("deploy part"), and
 * each stage; writes timings.json into the work directory. The manifest's paths must be absolute.
 * Nothing here knows which CPI runs: building releases and preparing engines is the caller's work.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

interface Stage {
  line: string;
  ms: number;
}

interface StepResult {
  step: string;
  code: number;
  wallMs: number;
  /** Top-level `Started X` … `Finished X` phases (validating, installing CPI, deploying, …). */
  phases: Record<string, number>;
  stages: Stage[];
}

const args = process.argv.slice(2);
const single = (name: string): string | undefined => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : undefined;
};
const repeated = (flag: string): string[] =>
  args.flatMap((a, i) => (a === flag && args[i + 1] ? [flag, args[i + 1] as string] : []));

const bosh = single('bosh');
const manifestArg = single('manifest');
if (!bosh || !manifestArg) {
  console.error('usage: create-env-timing.ts --bosh <CLI> --manifest <file> [--label L] [--work DIR] …');
  process.exit(2);
}
const manifest = resolve(manifestArg);
const label = single('label') ?? 'create-env';
const work = resolve(single('work') ?? mkdtempSync('/var/tmp/create-env-timing-'));
mkdirSync(work, { recursive: true });
const home = resolve(single('home') ?? join(work, 'home'));
mkdirSync(home, { recursive: true });
const state = join(work, 'state.json');
const varsStore = resolve(single('vars-store') ?? join(work, 'creds.yml'));
const extra = [...repeated('-v'), ...repeated('-o')];

const HMS = /\((\d\d):(\d\d):(\d\d)\)$/;
const short = (line: string) =>
  line
    .trim()
    .replace(/'([\w.-]+)\/[0-9a-f]{40,64}'/g, "'$1'")
    .replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, '…')
    .slice(0, 90);

/** Runs one CLI command, stamping every stdout line from its first byte to its newline. */
function timed(step: string, cliArgs: string[]): Promise<StepResult> {
  const started = performance.now();
  const log = join(work, `${step.replace(/\W+/g, '-')}.log`);
  return new Promise((done) => {
    const child = spawn(bosh as string, ['--tty', '-n', ...cliArgs], {
      env: { ...process.env, HOME: home, BOSH_NON_INTERACTIVE: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stages: Stage[] = [];
    const phaseStart = new Map<string, number>();
    const phases: Record<string, number> = {};
    let text = '';
    let current = '';
    let currentStart = 0;
    const endLine = (at: number) => {
      const line = current;
      current = '';
      const started = line.match(/^Started (.+)$/);
      if (started?.[1]) phaseStart.set(started[1], at);
      const finished = line.match(/^Finished (.+) \(\d\d:\d\d:\d\d\)$/);
      const from = finished?.[1] ? phaseStart.get(finished[1]) : undefined;
      if (finished?.[1] && from !== undefined) phases[finished[1]] = at - from;
      else if (HMS.test(line)) stages.push({ line: short(line), ms: at - currentStart });
    };
    const onData = (chunk: Buffer) => {
      const at = performance.now();
      const s = chunk.toString();
      text += s;
      for (const ch of s) {
        if (ch === '\n') endLine(at);
        else {
          if (current === '') currentStart = at;
          current += ch;
        }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d: Buffer) => {
      text += d.toString();
    });
    child.on('close', (code) => {
      if (current) endLine(performance.now());
      writeFileSync(log, text);
      done({ step, code: code ?? 1, wallMs: performance.now() - started, phases, stages });
    });
  });
}

const s = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`);
const common = ['--state', state, '--vars-store', varsStore, ...extra];
const results: StepResult[] = [];

function print(r: StepResult) {
  const install = r.phases['installing CPI'];
  const deployPart = install === undefined ? undefined : r.wallMs - install;
  console.log(
    `${label}: ${r.step}: ${s(r.wallMs)} (exit ${r.code})` +
      (install === undefined ? '' : `; installing CPI ${s(install)}, the rest ${s(deployPart)}`),
  );
  for (const [phase, ms] of Object.entries(r.phases)) console.log(`    ${s(ms).padStart(8)}  [${phase}]`);
  for (const st of r.stages) console.log(`    ${s(st.ms).padStart(8)}  ${st.line}`);
}

async function step(name: string, cliArgs: string[]): Promise<boolean> {
  const r = await timed(name, cliArgs);
  results.push(r);
  print(r);
  return r.code === 0;
}

try {
  console.log(`${label}: work dir ${work}, HOME ${home}`);
  (await step('first deploy', ['create-env', manifest, ...common])) &&
    (await step('again (no changes)', ['create-env', manifest, ...common])) &&
    (await step('--recreate', ['create-env', manifest, ...common, '--recreate']));
} finally {
  await step('delete-env', ['delete-env', manifest, ...common]);
  writeFileSync(join(work, 'timings.json'), JSON.stringify({ label, manifest, results }, null, 2));
  const row = results.map((r) => `${r.step} ${s(r.wallMs)}${r.code ? ' FAILED' : ''}`).join(', ');
  console.log(`${label}: ${row}`);
  process.exitCode = results.some((r) => r.code !== 0) ? 1 : 0;
}
