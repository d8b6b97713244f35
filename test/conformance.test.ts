import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { REPO } from './support/cpi.ts';

/**
 * Runs the conformance suite in its default (CI-sized) mode against this repository's CPI and
 * fails if any check fails. The suite prints `category: N passed, N failed` per category and
 * `N passed, N failed` last; both are read here so a failure names its categories.
 */
test('conformance suite (default mode) passes against bin/cpi', { timeout: 15 * 60_000 }, async () => {
  const out: string[] = [];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'conformance/run.ts'], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (c: Buffer) => {
      out.push(c.toString());
      process.stdout.write(c);
    });
    child.stderr.on('data', (c: Buffer) => process.stderr.write(c));
    child.on('error', reject);
    child.on('close', resolve);
  });
  const text = out.join('');
  const final = /^(\d+) passed, (\d+) failed$/m.exec(text.trimEnd().split('\n').at(-1) ?? '');
  assert.ok(final, 'the suite did not end with its "N passed, N failed" line');
  const failedCategories = [...text.matchAll(/^([a-z ]+): (\d+) passed, (\d+) failed$/gm)]
    .filter((m) => Number(m[3]) > 0)
    .map((m) => `${m[1]} (${m[3]} failed)`);
  assert.equal(Number(final[2]), 0, `failing categories: ${failedCategories.join(', ')}`);
  assert.ok(Number(final[1]) > 0, 'no check passed');
  assert.equal(code, 0, `the suite exited with ${code}`);
});
