import fc from 'fast-check';
import { short } from '../../lib/assert.ts';
import type { Suite } from '../../lib/env.ts';
import { describeDiff, isEmpty, type Snapshot, settledDiff, snapshot } from '../../lib/state.ts';
import type { Fixture } from './corpus.ts';
import { type Kind, SIGNATURES, validArgs } from './corpus.ts';
import {
  ANY,
  DISK_NOT_FOUND,
  type Expect,
  FALSE_OR_ERROR,
  judge,
  NULL_OR_ERROR,
  VM_NOT_FOUND,
} from './expect.ts';
/** Property-based inputs (fast-check): random bytes, random JSON, wrong-typed arguments, random IDs. */
export async function fuzz(suite: Suite, f: Fixture): Promise<void> {
  const { cpi, reporter } = suite;
  const runs = Math.max(8, Math.floor(suite.scale.fuzzRuns / 4));
  let baseline: Snapshot = await snapshot(suite.scope);
  const observe = async (input: string | Buffer, expect: Expect, label: string) => {
    const run = await cpi.raw(input, { label: `fuzz: ${label}`, timeoutMs: 60_000 });
    const problem = judge(run, expect);
    const d = await settledDiff(suite.scope, baseline, 800);
    if (!isEmpty(d)) {
      baseline = await snapshot(suite.scope);
      return `changed state:\n${describeDiff(d)}`;
    }
    return problem;
  };
  const property = async (
    name: string,
    arb: fc.Arbitrary<{ input: string | Buffer; expect: Expect; label: string }>,
  ) => {
    await reporter.check('bad input', `property (${runs} runs): ${name}`, async () => {
      await fc.assert(
        fc.asyncProperty(arb, async ({ input, expect, label }) => {
          const problem = await observe(input, expect, label);
          if (problem) throw new Error(problem);
        }),
        { numRuns: runs, endOnFailure: true },
      );
    });
  };

  await property(
    'random bytes on stdin get a well-formed CpiError',
    fc
      .uint8Array({ minLength: 0, maxLength: 512 })
      .map((b) => ({ input: Buffer.from(b), expect: ANY, label: 'bytes' })),
  );
  await property(
    'random JSON documents get a well-formed error',
    fc
      .jsonValue({ maxDepth: 4 })
      .map((v) => ({ input: JSON.stringify(v), expect: ANY, label: 'json' }))
      .filter(({ input }) => !/"method"/.test(input)),
  );
  const wrongFor: Record<Kind, fc.Arbitrary<unknown>> = {
    str: fc.oneof(
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 2 }),
      fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 2 }),
    ),
    cid: fc.oneof(
      fc.constant(''),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.string(), { maxLength: 2 }),
      fc.dictionary(fc.string(), fc.string(), { maxKeys: 2 }),
    ),
    obj: fc.oneof(
      fc.string(),
      fc.integer(),
      fc.boolean(),
      fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 2 }),
    ),
    int: fc.oneof(
      fc.string(),
      fc.integer({ max: 0 }),
      fc.double({ noInteger: true, noDefaultInfinity: true, noNaN: true }),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.integer(), { maxLength: 2 }),
    ),
    list: fc.oneof(
      fc.string(),
      fc.integer(),
      fc.boolean(),
      fc.dictionary(fc.string(), fc.string(), { maxKeys: 2 }),
    ),
    cidOrNull: fc.oneof(
      fc.integer(),
      fc.boolean(),
      fc.array(fc.string(), { maxLength: 2 }),
      fc.dictionary(fc.string(), fc.string(), { maxKeys: 2 }),
    ),
    size: fc.oneof(
      fc.string(),
      fc.integer(),
      fc.record({
        cpu: fc.oneof(fc.string(), fc.integer({ max: 0 })),
        ram: fc.integer({ min: 1, max: 4096 }),
        ephemeral_disk_size: fc.integer({ min: 0, max: 4096 }),
      }),
    ),
  };
  const methods = Object.keys(SIGNATURES);
  await property(
    'a known method with at least one wrong-typed argument is refused and creates nothing',
    fc.constantFrom(...methods).chain((method) => {
      const kinds = SIGNATURES[method] as Kind[];
      return fc.tuple(fc.constant(method), fc.integer({ min: 0, max: kinds.length - 1 })).chain(([m, i]) =>
        wrongFor[kinds[i] as Kind].map((wrong) => {
          const args = validArgs(m, f, suite);
          args[i] = wrong;
          return {
            input: cpi.requestText(m, args),
            expect: ANY,
            label: `${m} arg ${i + 1} = ${short(wrong, 40)}`,
          };
        }),
      );
    }),
  );
  const hostileFragments = fc.constantFrom(
    '../',
    '..',
    '/',
    '$(',
    ')',
    '`',
    ';',
    '|',
    '&',
    '\n',
    '\u0000',
    '*',
    ' ',
    "'",
    '"',
    '\\',
    'vm-',
    'disk-',
    'snap-',
    suite.pwnedMarker,
    'touch ',
    '%2f',
  );
  const randomId = fc.oneof(
    fc.string({ minLength: 1, maxLength: 80, unit: 'grapheme' }),
    fc
      .array(fc.oneof(hostileFragments, fc.string({ maxLength: 8 })), { minLength: 1, maxLength: 12 })
      .map((parts) => parts.join(''))
      .filter((s) => s !== ''),
  );
  const byMethod: Array<[string, (id: string) => unknown[], Expect]> = [
    ['delete_vm', (id) => [id], VM_NOT_FOUND],
    ['delete_disk', (id) => [id], DISK_NOT_FOUND],
    ['has_vm', (id) => [id], FALSE_OR_ERROR],
    ['has_disk', (id) => [id], FALSE_OR_ERROR],
    ['get_disks', (id) => [id], ANY],
    ['attach_disk', (id) => [f.vm, id], ANY],
    ['detach_disk', (id) => [f.vm, id], ANY],
    ['snapshot_disk', (id) => [id, {}], ANY],
    ['delete_snapshot', (id) => [id], NULL_OR_ERROR],
    ['delete_stemcell', (id) => [id], NULL_OR_ERROR],
  ];
  await property(
    'random and hostile IDs: not-found answers, nothing created, nothing touched',
    fc.tuple(fc.integer({ min: 0, max: byMethod.length - 1 }), randomId).map(([i, id]) => {
      const [method, args, expect] = byMethod[i] as (typeof byMethod)[number];
      return { input: cpi.requestText(method, args(id)), expect, label: `${method}(${short(id, 40)})` };
    }),
  );
}
