import type { Suite } from '../../lib/env.ts';
import { pool } from '../../lib/pool.ts';
import { describeDiff, isEmpty, settledDiff, snapshot } from '../../lib/state.ts';
import { type Case, judge } from './expect.ts';
/** Runs cases in batches; a batch that changes state is re-run case by case to name the culprit. */
export async function runCases(suite: Suite, cases: Case[], prefix: string): Promise<void> {
  const { cpi, reporter } = suite;
  const BATCH = 30;
  for (let start = 0; start < cases.length; start += BATCH) {
    const batch = cases.slice(start, start + BATCH);
    const before = await snapshot(suite.scope);
    const problems = new Map<number, string>();
    await pool(batch, 4, async (c, i) => {
      const run = await cpi.raw(c.input, { label: `${prefix}${c.name}`, timeoutMs: 60_000 });
      const p = judge(run, c.expect);
      if (p) problems.set(i, p);
    });
    const d = await settledDiff(suite.scope, before);
    const changedBy = new Map<number, string>();
    if (!isEmpty(d)) {
      for (const [i, c] of batch.entries()) {
        const b = await snapshot(suite.scope);
        await cpi.raw(c.input, { label: `${prefix}${c.name} (again, alone)`, timeoutMs: 60_000 });
        const di = await settledDiff(suite.scope, b, 500);
        if (!isEmpty(di)) changedBy.set(i, describeDiff(di));
      }
      if (changedBy.size === 0)
        reporter.fail(
          'bad input',
          `cases ${start + 1}-${start + batch.length} changed state, no single case reproduces it`,
          describeDiff(d),
        );
    }
    for (const [i, c] of batch.entries()) {
      const p = problems.get(i);
      const changed = changedBy.get(i);
      const name = `${prefix}${c.name}`;
      if (p || changed)
        reporter.fail(
          'bad input',
          name,
          [p, changed && `changed state:\n${changed}`].filter(Boolean).join('\n'),
        );
      else reporter.pass('bad input', name, true);
    }
  }
}
