import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { createBridge, forceCleanup, newDataDir, qemuConfig, removeConfigs } from './qemu/support/host.ts';
import { REPO } from './support/cpi.ts';

/**
 * Runs the conformance suite in its default (CI-sized) mode against this repository's CPI and
 * fails if any check fails. The suite prints `category: N passed, N failed` per category and
 * `N passed, N failed` last; both are read here so a failure names its categories.
 */
/** Runs conformance/run.ts with `args`; returns what it printed and its exit code. */
async function runSuite(args: string[]): Promise<{ text: string; code: number | null }> {
  const out: string[] = [];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'conformance/run.ts', ...args], {
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
  return { text: out.join(''), code };
}

/** Per-category passed/failed counts, and a check that nothing failed. */
function assertAllPassed(text: string, code: number | null): Map<string, number> {
  const final = /^(\d+) passed, (\d+) failed$/m.exec(text.trimEnd().split('\n').at(-1) ?? '');
  assert.ok(final, 'the suite did not end with its "N passed, N failed" line');
  const categories = [...text.matchAll(/^([a-z ]+): (\d+) passed, (\d+) failed$/gm)];
  const failedCategories = categories.filter((m) => Number(m[3]) > 0).map((m) => `${m[1]} (${m[3]} failed)`);
  assert.equal(Number(final[2]), 0, `failing categories: ${failedCategories.join(', ')}`);
  assert.ok(Number(final[1]) > 0, 'no check passed');
  assert.equal(code, 0, `the suite exited with ${code}`);
  return new Map(categories.map((m) => [m[1] as string, Number(m[2])]));
}

test('conformance suite (default mode) passes against bin/cpi', { timeout: 15 * 60_000 }, async () => {
  const { text, code } = await runSuite([]);
  assertAllPassed(text, code);
});

test('conformance faults and data safety pass against a QEMU config', { timeout: 15 * 60_000 }, async () => {
  const dataDir = newDataDir();
  const bridge = createBridge();
  try {
    const config = qemuConfig(dataDir, bridge);
    const { text, code } = await runSuite(['--config', config, '--only', 'faults,data safety']);
    const passed = assertAllPassed(text, code);
    assert.ok((passed.get('faults') ?? 0) >= 5, `faults passed only ${passed.get('faults')} checks`);
    assert.ok((passed.get('data safety') ?? 0) >= 4, `data safety passed only ${passed.get('data safety')}`);
  } finally {
    removeConfigs();
    forceCleanup(dataDir, bridge);
  }
});
