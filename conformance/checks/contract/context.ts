import { randomUUID } from 'node:crypto';
import type { Suite } from '../../lib/env.ts';

/** What every part of the contract checks works with. */
export interface ContractRun {
  suite: Suite;
  /** Runs one check in the contract category; false when it failed. */
  c(name: string, fn: () => unknown): Promise<boolean>;
  /** A check that only applies to the Docker CPI (skipped for others). */
  dockerOnly(name: string, fn: () => unknown): Promise<boolean>;
}

/** What the checks created, removed at the end whatever happened. */
export interface Created {
  vms: string[];
  disks: string[];
  snaps: string[];
}

/** An ID of a kind that no CPI has. */
export const missing = (kind: string) => `${kind}-${randomUUID()}`;
