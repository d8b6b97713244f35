/**
 * Conformance and fault suite for BOSH CPIs. Treats the CPI as a black box (a command and a
 * config) and checks it against protocol.md, then against the faults a real Director produces.
 *
 *   npm run conformance -- [--cpi "<command>"] [--config <cpi.json>] [--stemcell <image>] [--full]
 *
 * Without --cpi/--config it runs this repository's bin/cpi with a config it writes itself (a fresh
 * data_dir under /var/lib) and a busybox stemcell it builds. The last line is `N passed, N failed`.
 */
import { runBadInput } from './checks/bad-input.ts';
import { runConcurrency } from './checks/concurrency.ts';
import { finishFraming, runContract } from './checks/contract.ts';
import { runDataSafety } from './checks/data-safety.ts';
import { runEngineRestart } from './checks/engine-restart.ts';
import { runFaults } from './checks/faults.ts';
import { runHostEscape } from './checks/host-escape.ts';
import { runSecrets } from './checks/secrets.ts';
import { parseArgs, type Suite, setUp, tearDown } from './lib/env.ts';
import { Reporter } from './lib/report.ts';

const PHASES: Array<[string, (suite: Suite) => Promise<void>]> = [
  ['contract', runContract],
  ['bad input', runBadInput],
  ['data safety', runDataSafety],
  ['concurrency', runConcurrency],
  ['faults', runFaults],
  ['engine restart', runEngineRestart],
  ['host escape', runHostEscape],
];

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const reporter = new Reporter();
  const started = Date.now();
  let suite: Suite | undefined;
  try {
    suite = await setUp(opts, reporter);
    for (const [name, run] of PHASES) {
      if (opts.only && !opts.only.has(name)) continue;
      const t0 = Date.now();
      reporter.log(`\n== ${name}`);
      try {
        await run(suite);
      } catch (e) {
        reporter.fail(
          name === 'engine restart' ? 'faults' : (name as 'contract'),
          `${name}: the phase stopped early`,
          (e as Error).stack ?? String(e),
        );
      }
      reporter.log(`   (${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    }
    reporter.log('\n== secrets (over everything the CPI printed during the run)');
    if (!opts.only || opts.only.has('secrets'))
      await runSecrets(suite).catch((e: unknown) =>
        reporter.fail('secrets', 'secrets: the phase stopped early', (e as Error).stack ?? String(e)),
      );
    reporter.log('\n== framing (every response of the run)');
    await finishFraming(suite, !opts.only || opts.only.has('contract'));
  } catch (e) {
    reporter.fail('contract', 'suite set-up', (e as Error).stack ?? String(e));
  } finally {
    if (suite) {
      reporter.log('\n== clean-up');
      try {
        for (const note of await tearDown(suite)) reporter.log(`   ${note}`);
      } catch (e) {
        reporter.log(`   clean-up failed: ${(e as Error).message}`);
      }
    }
  }
  reporter.log(`\n(run took ${((Date.now() - started) / 1000).toFixed(0)} s)`);
  for (const line of reporter.summary()) reporter.log(line);
  return reporter.failed() ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.stdout.write('0 passed, 1 failed\n');
    process.exit(2);
  },
);
