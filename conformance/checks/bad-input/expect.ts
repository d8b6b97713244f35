import { short } from '../../lib/assert.ts';
import type { CpiRun } from '../../lib/cpi.ts';

/**
 * What a malformed request must get: an error (optionally of given types), or one of a few
 * harmless answers where the contract allows them (has_vm of a nonsense ID may say false).
 */
export type Expect = { error: string[] | 'any'; alsoOk?: Array<false | null> };

export interface Case {
  name: string;
  input: string | Buffer;
  expect: Expect;
}

export const ANY: Expect = { error: 'any' };
export const CPI_ERROR: Expect = { error: ['Bosh::Clouds::CpiError'] };
export const VM_NOT_FOUND: Expect = { error: ['Bosh::Clouds::VMNotFound'] };
export const DISK_NOT_FOUND: Expect = { error: ['Bosh::Clouds::DiskNotFound'] };
export const FALSE_OR_ERROR: Expect = { error: 'any', alsoOk: [false] };
export const NULL_OR_ERROR: Expect = { error: 'any', alsoOk: [null] };

/** Judges one run against its expectation; returns the problem or undefined. */
export function judge(run: CpiRun, expect: Expect): string | undefined {
  if (run.framing.length) return `framing: ${run.framing.join('; ')}`;
  const res = run.response;
  if (!res) return 'no response';
  if (res.error) {
    if (expect.error !== 'any' && !expect.error.includes(res.error.type))
      return `expected ${expect.error.join(' or ')}, got ${res.error.type}: ${res.error.message}`;
    return undefined;
  }
  if (expect.alsoOk?.some((v) => v === res.result)) return undefined;
  return `succeeded with ${short(res.result, 200)} where an error was due`;
}
