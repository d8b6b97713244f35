import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { bunBinary } from '../../scripts/bun-binary.mjs';

const REPO = join(import.meta.dirname, '..', '..');
const SCENARIOS = join(REPO, 'test/support/unix-socket-scenarios.ts');

/** The scenarios' report on one runtime: Node through tsx, or the Bun binary the build compiles with. */
function report(runtime: 'node' | 'bun'): Record<string, Record<string, unknown>> {
  const [cmd, args] =
    runtime === 'bun' ? [bunBinary(), [SCENARIOS]] : [process.execPath, ['--import', 'tsx', SCENARIOS]];
  const out = execFileSync(cmd, args, { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  const parsed = JSON.parse(out.trim().split('\n').at(-1) as string);
  assert.equal(parsed.runtime, runtime);
  return parsed;
}

for (const runtime of ['bun', 'node'] as const) {
  test(`unix sockets behave as net.Socket does (${runtime})`, () => {
    const r = report(runtime);
    assert.deepEqual(r.largeWrite, { acceptedAtOnce: false, drained: true, bytes: 8 << 20, intact: true });
    assert.deepEqual(r.pauseResume, { bytes: 4 << 20, intact: true, dataWhilePaused: 0 });
    const idle = r.idleTimeout as { firedAfter: number; firedAfterOff: boolean };
    assert.ok(
      idle.firedAfter >= 140 && idle.firedAfter < 2000,
      `idle timeout fired after ${idle.firedAfter} ms`,
    );
    assert.equal(idle.firedAfterOff, false);
    assert.deepEqual(r.destroyCloses, {
      closes: 1,
      closedBeforeReturn: false,
      destroyedAtOnce: true,
      writeAfterDestroy: false,
    });
    assert.deepEqual(r.peerEnds, { events: ['data:bye', 'end', 'close'] });
    assert.deepEqual(r.connectFailure, { code: 'ENOENT' });
    assert.deepEqual(r.onceAndOff, { onceCalls: 1, removedCalls: 0 });
  });
}
